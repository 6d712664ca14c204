//! The cost of a stream's fan-out (issue 5's target: ≤ 2 µs per packet per
//! viewer): one 1200-octet SRTP video packet from the publisher through
//! `StreamRouter` to 1, 10 and 50 viewers, for both SRTP profiles. Timed
//! per packet: unprotect once, cache, then per viewer rewrite + protect,
//! and draining every transmit. Protecting the publisher's packets is done
//! untimed, ahead of each batch.
//!
//! `cargo bench -p uturn-media --bench fanout`; criterion's throughput
//! (elements = viewers) gives the time per packet per viewer. On a busy
//! machine the means move with the other load, so each configuration also
//! prints the fastest of many short batches (`min`), the number least
//! disturbed by other processes.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use uturn_media::router::{PublisherSpec, StreamRouter, TrackMap, ViewerSpec};
use uturn_rtp::keyframe::VideoCodec;
use uturn_sdp::MediaKind;
use uturn_srtp::{DtlsSrtpKeys, MasterKeys, Profile, SrtpContext};

/// Length of the publisher's RTP packet, header and extensions included.
const PACKET_LEN: usize = 1200;
/// Publisher packets protected (untimed) ahead of each timed batch.
const BATCH: u64 = 256;
/// Batches of `MIN_BATCH` packets timed for the `min` line.
const MIN_BATCHES: usize = 300;
const MIN_BATCH: u64 = 32;
const VIDEO_SSRC: u32 = 0x0bad_cafe;
const VP8: u8 = 96;
const ABS_SEND_TIME: &str = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time";
const TWCC: &str = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn master(profile: Profile, seed: u8) -> MasterKeys {
    MasterKeys::new(profile, &[seed; 16], &vec![seed; profile.salt_len()]).unwrap()
}

fn video_track(pt: u8, ssrc: u32, abs_id: u8, twcc_id: u8) -> TrackMap {
    TrackMap {
        kind: MediaKind::Video,
        mid: "1".to_owned(),
        payload_type: pt,
        rtx_payload_type: Some(pt + 1),
        ssrc: Some(ssrc),
        rtx_ssrc: Some(ssrc + 1),
        clock_rate: 90_000,
        codec: VideoCodec::Vp8,
        extensions: vec![
            (ABS_SEND_TIME.to_owned(), abs_id),
            (TWCC.to_owned(), twcc_id),
        ],
        nack: true,
        pli: true,
        fir: true,
    }
}

/// A VP8 packet of `PACKET_LEN` octets with abs-send-time (id 2) and
/// transport-cc (id 3) one-byte extensions.
fn packet(seq: u16, keyframe: bool) -> Vec<u8> {
    let mut p = vec![0x90, VP8];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 3000).to_be_bytes());
    p.extend_from_slice(&VIDEO_SSRC.to_be_bytes());
    p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x02, 0x22, 1, 2, 3, 0x31, 0, 9, 0]);
    // RFC 7741 descriptor (S = 1), then the frame tag: P = 0 is a keyframe.
    p.push(0x10);
    if keyframe {
        p.extend_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x80, 0x02, 0xe0, 0x01]);
    } else {
        p.extend_from_slice(&[0x11, 0x02, 0x00]);
    }
    p.resize(PACKET_LEN, 0x5a);
    p
}

/// A router with `viewers` viewers whose video has started, and the
/// publisher that feeds it.
struct Fanout {
    router: StreamRouter,
    /// The publisher's sending context.
    tx: SrtpContext,
    now: Instant,
    seq: u16,
    datagrams: Vec<Vec<u8>>,
}

impl Fanout {
    fn new(profile: Profile, viewers: u64) -> Fanout {
        let now = Instant::now();
        let keys = DtlsSrtpKeys {
            local: master(profile, 1),
            remote: master(profile, 2),
        };
        let publisher = PublisherSpec {
            local: addr(3478),
            remote: addr(5000),
            keys: keys.clone(),
            tracks: vec![video_track(VP8, VIDEO_SSRC, 2, 3)],
            rtcp_ssrc: 1,
        };
        let mut router = StreamRouter::new(now, publisher, (now, SystemTime::now()));
        for id in 0..viewers {
            // Half the viewers number things differently from the publisher.
            let (pt, abs, twcc) = if id % 2 == 0 {
                (VP8, 2, 3)
            } else {
                (100, 5, 7)
            };
            router.attach_viewer(
                now,
                ViewerSpec {
                    id,
                    local: addr(3478),
                    remote: addr(10_000 + id as u16),
                    keys: master(profile, 10 + id as u8),
                    tracks: vec![video_track(pt, 0x1000 + id as u32 * 2, abs, twcc)],
                    cname: format!("viewer-{id}"),
                },
            );
        }
        let mut fanout = Fanout {
            router,
            tx: SrtpContext::new(&keys.remote),
            now,
            seq: 0,
            datagrams: Vec::new(),
        };
        // The keyframe that starts every viewer's video.
        let keyframe = fanout.protect(&packet(0, true));
        fanout
            .router
            .handle_publisher_datagram(now, &keyframe)
            .unwrap();
        while fanout.router.poll_transmit().is_some() {}
        fanout
    }

    fn protect(&mut self, plain: &[u8]) -> Vec<u8> {
        let mut buf = plain.to_vec();
        buf.resize(plain.len() + 16, 0);
        let n = self.tx.protect_rtp(&mut buf, plain.len()).unwrap();
        buf.truncate(n);
        buf
    }

    /// Protects the next `n` publisher packets (not timed), then times
    /// routing them and draining every transmit.
    fn run(&mut self, n: u64) -> Duration {
        let mut datagrams = std::mem::take(&mut self.datagrams);
        datagrams.clear();
        for _ in 0..n {
            self.seq = self.seq.wrapping_add(1);
            datagrams.push(self.protect(&packet(self.seq, false)));
        }
        let start = Instant::now();
        for datagram in &datagrams {
            self.now += Duration::from_millis(1);
            self.router
                .handle_publisher_datagram(self.now, datagram)
                .unwrap();
            while let Some(t) = self.router.poll_transmit() {
                black_box(t.contents);
            }
        }
        let elapsed = start.elapsed();
        self.datagrams = datagrams;
        assert_eq!(self.router.stats().send_failures, 0);
        elapsed
    }
}

fn fanout(c: &mut Criterion) {
    for (name, profile) in [
        ("gcm", Profile::AeadAes128Gcm),
        ("cm_hmac_sha1_80", Profile::Aes128CmSha1_80),
    ] {
        let mut group = c.benchmark_group(format!("fanout_{name}"));
        group.measurement_time(Duration::from_secs(4));
        for viewers in [1u64, 10, 50] {
            group.throughput(Throughput::Elements(viewers));
            group.bench_function(BenchmarkId::new("viewers", viewers), |b| {
                let mut fanout = Fanout::new(profile, viewers);
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(BATCH);
                        left -= n;
                        total += fanout.run(n);
                    }
                    total
                });
            });
            let mut fanout = Fanout::new(profile, viewers);
            let best = (0..MIN_BATCHES)
                .map(|_| fanout.run(MIN_BATCH))
                .min()
                .unwrap_or_default();
            eprintln!(
                "fanout_{name}/viewers/{viewers}: min {:.0} ns per packet per viewer",
                best.as_nanos() as f64 / (MIN_BATCH * viewers) as f64
            );
        }
        group.finish();
    }
}

criterion_group!(benches, fanout);
criterion_main!(benches);
