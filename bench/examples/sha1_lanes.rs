//! Would hashing two viewers' packets at once make HMAC-SHA1 cheaper?
//!
//! ```sh
//! cargo run --release -p uturn-bench --example sha1_lanes
//! ```
//!
//! AES-CM + HMAC-SHA1-80 spends most of its time in SHA-1's compression
//! function (docs/benchmarks.md, "Media relay fan-out"), and the fan-out
//! computes one independent HMAC per viewer over packets of the same
//! length. The CPU's SHA extensions run one SHA-1 stream at the latency of
//! `SHA1RNDS4`; if the instruction's throughput is better than its
//! latency, interleaving independent streams ("lanes") would hash more
//! per second. No well-kept crate offers a multi-lane SHA-1, so this
//! measures it before anyone writes one: a compression function with the
//! SHA extensions over 1, 2, 3 or 4 lanes in lockstep, checked against the
//! `sha1` crate's (which uturn uses, with the same instructions), on
//! 1280-octet messages (20 blocks, the inner hash of a 1200-octet packet's
//! tag). Reported: nanoseconds per message, best of five rounds. This is a
//! measurement only; the relay does not use it.

#[cfg(target_arch = "x86_64")]
fn main() {
    x86::main();
}

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("sha1_lanes: x86-64 only");
    std::process::exit(2);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::time::Instant;

    const INITIAL: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    const BLOCKS: usize = 20;
    const MESSAGES: usize = 200_000;

    pub fn main() {
        if !(std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse4.1")
            && std::arch::is_x86_feature_detected!("ssse3"))
        {
            eprintln!("sha1_lanes: this CPU has no SHA extensions");
            std::process::exit(2);
        }
        let messages: Vec<Vec<u8>> = (0..4usize)
            .map(|lane| {
                (0..BLOCKS * 64)
                    .map(|i| (i * 7 + lane * 13) as u8)
                    .collect()
            })
            .collect();
        check(&messages);
        let mut best = [f64::MAX; 5];
        for _ in 0..5 {
            best[0] = best[0].min(time_crate(&messages[0]));
            best[1] = best[1].min(time_lanes::<1>(&messages));
            best[2] = best[2].min(time_lanes::<2>(&messages));
            best[3] = best[3].min(time_lanes::<3>(&messages));
            best[4] = best[4].min(time_lanes::<4>(&messages));
        }
        println!(
            "ns per {}-octet message: sha1 crate {:.0}, 1 lane {:.0}, 2 lanes {:.0}, 3 lanes {:.0}, 4 lanes {:.0}",
            BLOCKS * 64,
            best[0],
            best[1],
            best[2],
            best[3],
            best[4]
        );
    }

    /// The `sha1` crate's compression of `message` from the initial state.
    fn reference(message: &[u8]) -> [u32; 5] {
        let blocks: Vec<sha1::digest::generic_array::GenericArray<u8, _>> = message
            .chunks_exact(64)
            .map(|b| *sha1::digest::generic_array::GenericArray::from_slice(b))
            .collect();
        let mut state = INITIAL;
        sha1::compress(&mut state, &blocks);
        state
    }

    /// Every lane count computes what the crate computes, for every lane.
    fn check(messages: &[Vec<u8>]) {
        let want: Vec<[u32; 5]> = messages.iter().map(|m| reference(m)).collect();
        let mut one = [INITIAL];
        lanes::<1>(&mut one, [&messages[0]]);
        let mut four = [INITIAL; 4];
        lanes::<4>(
            &mut four,
            [&messages[0], &messages[1], &messages[2], &messages[3]],
        );
        if one[0] != want[0] || four.as_slice() != want.as_slice() {
            eprintln!("sha1_lanes: the lanes disagree with the sha1 crate");
            std::process::exit(1);
        }
    }

    fn time_crate(message: &[u8]) -> f64 {
        let start = Instant::now();
        let mut sink = 0u32;
        for _ in 0..MESSAGES {
            sink ^= reference(std::hint::black_box(message))[0];
        }
        std::hint::black_box(sink);
        start.elapsed().as_nanos() as f64 / MESSAGES as f64
    }

    fn time_lanes<const N: usize>(messages: &[Vec<u8>]) -> f64 {
        let inputs: [&[u8]; N] = std::array::from_fn(|lane| messages[lane].as_slice());
        let rounds = MESSAGES / N;
        let start = Instant::now();
        let mut sink = 0u32;
        for _ in 0..rounds {
            let mut states = [INITIAL; N];
            lanes::<N>(&mut states, std::hint::black_box(inputs));
            sink ^= states[0][0];
        }
        std::hint::black_box(sink);
        start.elapsed().as_nanos() as f64 / (rounds * N) as f64
    }

    /// Compresses each lane's whole blocks into its state, the lanes in
    /// lockstep.
    fn lanes<const N: usize>(states: &mut [[u32; 5]; N], messages: [&[u8]; N]) {
        let blocks = messages[0].len() / 64;
        assert!(messages.iter().all(|m| m.len() == blocks * 64));
        // SAFETY: main() checked the CPU's features; every lane has `blocks`
        // whole blocks (asserted).
        #[allow(unsafe_code)]
        unsafe {
            lanes_sha_ni::<N>(states, messages, blocks)
        }
    }

    /// SHA-1 (FIPS 180-4 §6.1.2) with the SHA extensions: ABCD in one vector
    /// (A in the top lane), E in the top lane of another; each group of four
    /// rounds takes four schedule words, the next four computed with
    /// `SHA1MSG1`/`SHA1MSG2` from the previous sixteen.
    #[allow(unsafe_code)]
    #[target_feature(enable = "sha,sse4.1,ssse3")]
    unsafe fn lanes_sha_ni<const N: usize>(
        states: &mut [[u32; 5]; N],
        messages: [&[u8]; N],
        blocks: usize,
    ) {
        use std::arch::x86_64::*;
        // Reverses the 16 octets: big-endian words, word 0 in the top lane.
        let reverse = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0a0b_0c0d_0e0f);
        let mut abcd = [_mm_setzero_si128(); N];
        let mut e_state = [_mm_setzero_si128(); N];
        for lane in 0..N {
            abcd[lane] = _mm_shuffle_epi32(_mm_loadu_si128(states[lane].as_ptr().cast()), 0x1b);
            e_state[lane] = _mm_set_epi32(states[lane][4] as i32, 0, 0, 0);
        }
        for block in 0..blocks {
            let abcd_before = abcd;
            let e_before = e_state;
            let mut words = [[_mm_setzero_si128(); 4]; N];
            let mut e = [_mm_setzero_si128(); N];
            for lane in 0..N {
                let at = messages[lane].as_ptr().add(block * 64);
                for (i, w) in words[lane].iter_mut().enumerate() {
                    *w = _mm_shuffle_epi8(_mm_loadu_si128(at.add(16 * i).cast()), reverse);
                }
                e[lane] = _mm_add_epi32(e_state[lane], words[lane][0]);
            }
            let mut previous = abcd;
            for lane in 0..N {
                abcd[lane] = _mm_sha1rnds4_epu32::<0>(abcd[lane], e[lane]);
            }
            macro_rules! four_rounds {
                ($group:expr, $function:literal) => {
                    for lane in 0..N {
                        let w = &mut words[lane];
                        let next = if $group < 4 {
                            w[$group % 4]
                        } else {
                            let x = _mm_sha1msg1_epu32(w[$group % 4], w[($group + 1) % 4]);
                            let x = _mm_xor_si128(x, w[($group + 2) % 4]);
                            w[$group % 4] = _mm_sha1msg2_epu32(x, w[($group + 3) % 4]);
                            w[$group % 4]
                        };
                        e[lane] = _mm_sha1nexte_epu32(previous[lane], next);
                        previous[lane] = abcd[lane];
                        abcd[lane] = _mm_sha1rnds4_epu32::<$function>(abcd[lane], e[lane]);
                    }
                };
            }
            four_rounds!(1, 0);
            four_rounds!(2, 0);
            four_rounds!(3, 0);
            four_rounds!(4, 0);
            four_rounds!(5, 1);
            four_rounds!(6, 1);
            four_rounds!(7, 1);
            four_rounds!(8, 1);
            four_rounds!(9, 1);
            four_rounds!(10, 2);
            four_rounds!(11, 2);
            four_rounds!(12, 2);
            four_rounds!(13, 2);
            four_rounds!(14, 2);
            four_rounds!(15, 3);
            four_rounds!(16, 3);
            four_rounds!(17, 3);
            four_rounds!(18, 3);
            four_rounds!(19, 3);
            for lane in 0..N {
                e_state[lane] = _mm_sha1nexte_epu32(previous[lane], e_before[lane]);
                abcd[lane] = _mm_add_epi32(abcd[lane], abcd_before[lane]);
            }
        }
        for lane in 0..N {
            _mm_storeu_si128(
                states[lane].as_mut_ptr().cast(),
                _mm_shuffle_epi32(abcd[lane], 0x1b),
            );
            states[lane][4] = _mm_extract_epi32(e_state[lane], 3) as u32;
        }
    }
}
