#!/usr/bin/env bash
# The one command behind docs/benchmarks.md: builds the workspace in release
# mode and runs the whole uturn-vs-coTURN comparison in network namespaces
# (needs root; uses sudo when not root). Extra arguments go to
# `uturn-testbed` (default: `compare`), e.g. `testbed/run.sh compare --quick`
# or `testbed/run.sh row 1 --relays uturn-uring,coturn`.
# Results: results/<UTC timestamp>/ (results.md, cpu.svg, raw/).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace
bin="${CARGO_TARGET_DIR:-target}/release/uturn-testbed"
[ "$#" -gt 0 ] || set -- compare

if [ "$(id -u)" -eq 0 ]; then
    exec "$bin" "$@"
else
    exec sudo "$bin" "$@"
fi
