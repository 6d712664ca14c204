//! Writing SDES (RFC 3550 §6.5, CNAME item §6.5.1) and BYE (§6.6). Every
//! compound the relay sends carries a CNAME (RFC 3550 §6.1); a BYE tells a
//! viewer its stream ended. Parsing hands both through as raw packets.
//!
//! ```text
//! SDES: header(SC=1, PT=202) | SSRC | CNAME=1 | length | text ... | 0 ... (to a word)
//! BYE:  header(SC=n, PT=203) | n x SSRC
//! ```

use super::{packet_type, write_header, HEADER_LEN};
use crate::Error;

/// SDES item type CNAME (RFC 3550 §6.5.1).
const CNAME: u8 = 1;

/// Writes an SDES packet with one chunk holding `ssrc`'s CNAME and returns
/// its length. The chunk ends with a null octet and zeros up to the next
/// word (RFC 3550 §6.5: an END item, then padding). The CNAME is at most
/// 255 octets ([`Error::ItemTooLong`]).
pub fn write_sdes_cname(dst: &mut [u8], ssrc: u32, cname: &str) -> Result<usize, Error> {
    let text = cname.as_bytes();
    let text_len = u8::try_from(text.len()).map_err(|_| Error::ItemTooLong)?;
    // SSRC, item type, item length, text, at least one null octet.
    let chunk = (4 + 2 + text.len() + 1).next_multiple_of(4);
    let total = HEADER_LEN + chunk;
    let out = dst.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    write_header(out, 1, packet_type::SDES, total)?;
    let (item_head, rest) = out[HEADER_LEN..].split_at_mut(6);
    item_head[0..4].copy_from_slice(&ssrc.to_be_bytes());
    item_head[4..6].copy_from_slice(&[CNAME, text_len]);
    let (out_text, end) = rest.split_at_mut(text.len());
    out_text.copy_from_slice(text);
    end.fill(0);
    Ok(total)
}

/// Writes a BYE for `ssrcs` (at most 31, [`Error::TooManyReports`]) with no
/// reason text and returns its length.
pub fn write_bye(dst: &mut [u8], ssrcs: &[u32]) -> Result<usize, Error> {
    let count = u8::try_from(ssrcs.len())
        .ok()
        .filter(|&n| n <= 31)
        .ok_or(Error::TooManyReports)?;
    let total = HEADER_LEN + 4 * ssrcs.len();
    let out = dst.get_mut(..total).ok_or(Error::BufferTooSmall)?;
    write_header(out, count, packet_type::BYE, total)?;
    for (ssrc, word) in ssrcs.iter().zip(out[HEADER_LEN..].chunks_exact_mut(4)) {
        word.copy_from_slice(&ssrc.to_be_bytes());
    }
    Ok(total)
}
