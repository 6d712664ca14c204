//! RTP header extension elements (RFC 8285): reading the one-byte (§4.2)
//! and two-byte (§4.3) forms, and the per-viewer map from the publisher's
//! local extension ids to the viewer's (the ids come from each side's
//! `a=extmap` lines, RFC 8285 §5).

/// The `defined by profile` value of the one-byte form (RFC 8285 §4.2).
pub const ONE_BYTE_PROFILE: u16 = 0xBEDE;

/// The two-byte form's profile: 0x100 in the top 12 bits, 4 application
/// bits below (RFC 8285 §4.3). uturn writes the application bits as 0.
pub const TWO_BYTE_PROFILE: u16 = 0x1000;

/// The one-byte form's id 15 stops the parsing of the whole block (RFC 8285 §4.2).
const ONE_BYTE_STOP_ID: u8 = 15;

/// Which RFC 8285 element layout a header-extension block uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionForm {
    /// Ids 1–14, values of 1–16 octets (RFC 8285 §4.2).
    OneByte,
    /// Ids 1–255, values of 0–255 octets (RFC 8285 §4.3).
    TwoByte,
}

impl ExtensionForm {
    /// The form named by an extension block's profile field, if RFC 8285's.
    pub fn from_profile(profile: u16) -> Option<Self> {
        if profile == ONE_BYTE_PROFILE {
            Some(Self::OneByte)
        } else if profile & 0xfff0 == TWO_BYTE_PROFILE {
            Some(Self::TwoByte)
        } else {
            None
        }
    }

    /// Whether an element with this id and value length can be written in this form.
    pub fn fits(self, id: u8, len: usize) -> bool {
        match self {
            Self::OneByte => (1..=14).contains(&id) && (1..=16).contains(&len),
            Self::TwoByte => id != 0 && len <= 255,
        }
    }

    /// Octets an element's id and length take before its value.
    pub fn element_header_len(self) -> usize {
        match self {
            Self::OneByte => 1,
            Self::TwoByte => 2,
        }
    }

    /// The profile field written for this form.
    pub fn profile(self) -> u16 {
        match self {
            Self::OneByte => ONE_BYTE_PROFILE,
            Self::TwoByte => TWO_BYTE_PROFILE,
        }
    }
}

/// Iterator over the `(id, value)` elements of an RFC 8285 extension block.
///
/// Padding octets (id 0) are skipped. A malformed element (a value running
/// past the block) or the one-byte form's reserved id 15 ends the iteration:
/// RFC 8285 §4.2 says to stop processing the block there, and what came
/// before stays usable.
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    data: &'a [u8],
    form: ExtensionForm,
}

impl<'a> Extensions<'a> {
    /// Elements of the block `data` (after the 4-octet block header) with
    /// profile field `profile`; empty when the profile is not RFC 8285's.
    pub fn new(profile: u16, data: &'a [u8]) -> Self {
        match ExtensionForm::from_profile(profile) {
            Some(form) => Self { data, form },
            None => Self::empty(),
        }
    }

    /// An iterator with no elements.
    pub fn empty() -> Self {
        Self {
            data: &[],
            form: ExtensionForm::OneByte,
        }
    }

    /// The block's form (meaningless for an empty iterator).
    pub fn form(&self) -> ExtensionForm {
        self.form
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (&first, rest) = self.data.split_first()?;
            let padding = match self.form {
                // Id 0 is reserved for padding (RFC 8285 §4.2); its length
                // nibble means nothing, so any such octet is one of padding.
                ExtensionForm::OneByte => first >> 4 == 0,
                ExtensionForm::TwoByte => first == 0,
            };
            if padding {
                // Padding octets may sit between and after elements (§4.2, §4.3).
                self.data = rest;
                continue;
            }
            let (id, len, rest) = match self.form {
                ExtensionForm::OneByte => {
                    let id = first >> 4;
                    if id == ONE_BYTE_STOP_ID {
                        self.data = &[];
                        return None;
                    }
                    // The 4-bit length field holds the value length minus one.
                    (id, usize::from(first & 0x0f) + 1, rest)
                }
                ExtensionForm::TwoByte => {
                    let Some((&len, rest)) = rest.split_first() else {
                        self.data = &[];
                        return None;
                    };
                    (first, usize::from(len), rest)
                }
            };
            let Some((value, rest)) = rest.split_at_checked(len) else {
                self.data = &[];
                return None;
            };
            self.data = rest;
            return Some((id, value));
        }
    }
}

/// Maps the publisher's local extension ids to a viewer's: a viewer's SDP
/// answer may number the same extension URI differently (RFC 8285 §5), and
/// extensions the viewer did not negotiate must not reach it.
///
/// A plain 256-entry table so the lookup per element is one load.
#[derive(Clone, PartialEq, Eq)]
pub struct ExtIdMap {
    /// `to[from]` is the viewer's id for publisher id `from`; 0 = dropped.
    to: [u8; 256],
}

impl ExtIdMap {
    /// Drops every extension; add the negotiated ones with [`ExtIdMap::map`].
    pub fn new() -> Self {
        Self { to: [0; 256] }
    }

    /// Keeps every extension under its own id (publisher and viewer agree).
    pub fn identity() -> Self {
        let mut to = [0; 256];
        for (id, slot) in (0..=u8::MAX).zip(to.iter_mut()) {
            *slot = id;
        }
        Self { to }
    }

    /// Publisher id `from` becomes viewer id `to`; `to == 0` drops it.
    /// Id 0 is padding in both forms and cannot be mapped.
    pub fn map(&mut self, from: u8, to: u8) -> &mut Self {
        if from != 0 {
            self.to[usize::from(from)] = to;
        }
        self
    }

    /// The viewer's id for publisher id `from`, `None` when dropped.
    pub fn get(&self, from: u8) -> Option<u8> {
        match self.to[usize::from(from)] {
            0 => None,
            to => Some(to),
        }
    }
}

impl Default for ExtIdMap {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ExtIdMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the kept ids: 256 zeros say nothing.
        f.debug_map()
            .entries((1..=u8::MAX).filter_map(|from| self.get(from).map(|to| (from, to))))
            .finish()
    }
}
