#!/usr/bin/env bash
# Builds every fuzz target and runs each for N seconds (default 15, so the
# nine targets stay under three minutes) from its checked-in seed corpus;
# exits non-zero as soon as one finds a crash.
#
#   fuzz/smoke.sh [SECONDS]
#
# Works on the stable toolchain: `-s none` builds without a sanitizer, so
# cargo-fuzz needs no nightly-only flag (libFuzzer's coverage
# instrumentation uses stable codegen options). Needs `cargo install
# cargo-fuzz`. New inputs go to a scratch directory, so the seed corpus
# in fuzz/corpus/ stays as checked in; a crash is left in
# fuzz/artifacts/<target>/ and printed with the command to reproduce it.
set -euo pipefail

seconds="${1:-15}"
cd "$(dirname "$0")"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
    exit 2
fi

targets=(stun_message channel_data send_indication)
if grep -q '^name = "turn_server"' Cargo.toml; then
    targets+=(turn_server)
fi
# The media relay's parsers and state machines (docs/media.md).
targets+=(sdp_answer rtp_rtcp srtp_unprotect dtls_endpoint media_engine)

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    mkdir -p "$scratch/$target" "corpus/$target"
    # The first corpus directory receives new inputs; the seeds are only read.
    cargo fuzz run -s none "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1
done
echo "fuzz smoke: ${#targets[@]} targets ran ${seconds}s each without a crash"
