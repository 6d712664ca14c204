//! Runs one per-packet operation N times, for instruction counting (CPU time
//! on the shared machine is too noisy to compare runs; instruction counts are
//! not, as rustls's ci-bench argues):
//!
//! ```text
//! cargo build --release -p uturn-rtp --example icount
//! for n in 0 100000; do perf stat -x, -e instructions:u target/release/examples/icount rewrite $n; done
//! ```
//! (instructions at n=100000 minus at n=0) / 100000 = instructions per call.

use std::hint::black_box;

use uturn_rtp::rtcp::{self, parse_compound, ReportBlock, SenderInfo};
use uturn_rtp::rtp::{self, ExtIdMap, Rewrite};

/// The benchmark's packet: 1200 octets, one-byte extensions ids 2, 3, 4.
fn video_packet() -> Vec<u8> {
    let mut buf = vec![
        0x90, 0x60, 0x12, 0x34, 0x00, 0x01, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, //
        0xbe, 0xde, 0x00, 0x03, 0x22, 0x01, 0x02, 0x03, 0x31, 0x00, 0x07, 0x40, b'0', 0x00, 0x00,
        0x00,
    ];
    buf.extend_from_slice(&[0x10, 0x00, 0x9d]);
    buf.resize(1200, 0xab);
    buf
}

fn compound() -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let block = ReportBlock::default();
    let info = SenderInfo::default();
    let mut at = rtcp::write_sr(&mut buf, &info, &[block]).unwrap();
    at += rtcp::write_sdes_cname(&mut buf[at..], 1, "4TOk42mSjXCkVIa6").unwrap();
    at += rtcp::write_pli(&mut buf[at..], 1, 2).unwrap();
    at += rtcp::write_nack(&mut buf[at..], 1, 2, &[100, 101, 105, 140]).unwrap();
    buf.truncate(at);
    buf
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_default();
    let n: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let src = video_packet();
    let rtcp = compound();
    let mut dst = vec![0u8; 1500];
    let mut ext_ids = ExtIdMap::new();
    ext_ids.map(2, 3).map(3, 5);
    let rw = Rewrite {
        ssrc: 0xaabb_ccdd,
        payload_type: 98,
        ext_ids,
    };
    let mut sum = 0usize;
    for _ in 0..n {
        sum += match what.as_str() {
            "rewrite" => {
                rtp::rewrite(black_box(&src), black_box(&mut dst), black_box(&rw)).unwrap_or(0)
            }
            "copy" => {
                dst[..src.len()].copy_from_slice(black_box(&src));
                src.len()
            }
            "rtcp" => parse_compound(black_box(&rtcp))
                .filter(|p| p.is_ok())
                .count(),
            _ => 0,
        };
    }
    println!("{sum}");
}
