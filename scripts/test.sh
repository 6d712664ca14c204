#!/usr/bin/env bash
# The whole test suite, as the README says and .ci/run calls it.
#
# 1. installs what the integration tests start for real (coTURN's clients,
#    Chromium + chromedriver, the Python TURN client, cargo-fuzz);
# 2. format and lint gates;
# 3. every unit, integration and doc test of the workspace;
# 4. a short smoke run of every fuzz target.
#
# Needs root (apt-get; the dataplane tests need nothing else). Set
# FUZZ_SECONDS=0 to skip the fuzz smoke run while iterating locally.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> installing test dependencies"
bash scripts/install-test-deps.sh

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test"
cargo test --workspace --all-targets --no-fail-fast
cargo test --workspace --doc

if [ "${FUZZ_SECONDS:-15}" != "0" ]; then
    echo "==> fuzz smoke run (${FUZZ_SECONDS:-15}s per target)"
    bash fuzz/smoke.sh "${FUZZ_SECONDS:-15}"
fi
echo "==> all tests passed"
