#!/bin/bash
# Memory per allocation of a running uturn, end to end.
#
# Starts uturn (2 workers) twice, with N_LOW and then N_HIGH live
# allocations made by `uturn-load` (each: 1 permission, 1 channel, a little
# ChannelData both ways), reads uturn's VmRSS when the load generator's
# measured window ends, and prints
#
#     (RSS(N_HIGH) - RSS(N_LOW)) / (established(N_HIGH) - established(N_LOW))
#
# in bytes: what one more allocation costs, fixed costs (binary, rings,
# buffers) cancelled out. Socket buffers are kernel memory and not in RSS.
# The window (45 s) outlasts the 40 s the set-up responses stay in the
# retransmission cache (RFC 8489 §6.3.1), so the cache is not counted.
#
# Builds nothing: give it the directory holding `uturn` and `uturn-load`
# (default target/release; build them with
# `cargo build --release -p uturn -p uturn-bench --bins`).
#
# Usage: bench/scripts/memory-per-allocation.sh [BIN_DIR]
# Environment (optional): N_LOW (1000), N_HIGH (11000), PORT (34780),
#   DURATION (45), MAX_BYTES (1024; exit 1 above it, 0 disables the check).
# Clients bind 127.0.0.2 and peers 127.0.0.3 so their ephemeral ports do not
# collide with relay ports on 127.0.0.1. Exit status: 0 ok, 1 over
# MAX_BYTES, 2 the measurement failed.
set -euo pipefail

BIN=${1:-target/release}
N_LOW=${N_LOW:-1000}
N_HIGH=${N_HIGH:-11000}
PORT=${PORT:-34780}
DURATION=${DURATION:-45}
MAX_BYTES=${MAX_BYTES:-1024}

fail() {
    echo "memory-per-allocation: $*" >&2
    exit 2
}

for b in uturn uturn-load; do
    [ -x "$BIN/$b" ] || fail "$BIN/$b not found or not executable (pass the binaries' directory)"
done
command -v python3 >/dev/null || fail "python3 is needed to read the load generator's JSON"
[ "$N_HIGH" -gt "$N_LOW" ] || fail "N_HIGH ($N_HIGH) must be larger than N_LOW ($N_LOW)"

WORK=$(mktemp -d)
RELAY_PID=
cleanup() {
    if [ -n "$RELAY_PID" ] && kill -0 "$RELAY_PID" 2>/dev/null; then
        kill -TERM "$RELAY_PID" 2>/dev/null || true
        wait "$RELAY_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# measure N: writes "ESTABLISHED RSS_KIB" to $WORK/result-N (runs in this
# shell, not a subshell, so `fail` and the EXIT trap see the relay's pid).
measure() {
    local n=$1
    "$BIN/uturn" --listen "127.0.0.1:$PORT" --relay-ip 127.0.0.1 --realm test \
        --user load:secret --allow-peer 127.0.0.0/8 --min-port 20000 --max-port 60000 \
        --threads 2 --log-level warn 2>"$WORK/uturn-$n.err" &
    RELAY_PID=$!
    sleep 1
    kill -0 "$RELAY_PID" 2>/dev/null || fail "uturn did not start: $(tail -3 "$WORK/uturn-$n.err")"
    # The load generator prints "@window-end" on stdout when the measured
    # window closes, with every session still live: sample RSS right then.
    "$BIN/uturn-load" --server "127.0.0.1:$PORT" --realm test --user load:secret \
        --sessions "$n" --payload 150 --kbps 1 --duration "$DURATION" --warmup 1 \
        --ramp-up 1 --setup-rate 3000 --no-progress --client-ip 127.0.0.2 \
        --peer-ip 127.0.0.3 --json "$WORK/load-$n.json" 2>"$WORK/load-$n.err" |
        while read -r line; do
            if [ "$line" = "@window-end" ]; then
                awk '/^VmRSS/ {print $2}' "/proc/$RELAY_PID/status" >"$WORK/rss-$n"
            fi
        done || fail "uturn-load failed (N=$n): $(tail -3 "$WORK/load-$n.err")"
    kill -0 "$RELAY_PID" 2>/dev/null || fail "uturn exited during the run (N=$n): $(tail -3 "$WORK/uturn-$n.err")"
    kill -TERM "$RELAY_PID"
    wait "$RELAY_PID" || true
    RELAY_PID=
    [ -s "$WORK/rss-$n" ] || fail "no @window-end seen (N=$n): $(tail -3 "$WORK/load-$n.err")"
    local est
    est=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['sessions_established'])" \
        "$WORK/load-$n.json") || fail "cannot read $WORK/load-$n.json"
    [ "$est" -ge $((n * 99 / 100)) ] || fail "only $est of $n sessions established"
    echo "$est $(cat "$WORK/rss-$n")" >"$WORK/result-$n"
}

measure "$N_LOW"
read -r est_low rss_low <"$WORK/result-$N_LOW"
echo "N=$N_LOW established=$est_low rss_kib=$rss_low"
measure "$N_HIGH"
read -r est_high rss_high <"$WORK/result-$N_HIGH"
echo "N=$N_HIGH established=$est_high rss_kib=$rss_high"
[ "$est_high" -gt "$est_low" ] || fail "no more sessions at N_HIGH than at N_LOW"

per=$(((rss_high - rss_low) * 1024 / (est_high - est_low)))
echo "bytes_per_allocation=$per"
if [ "$MAX_BYTES" -gt 0 ] && [ "$per" -gt "$MAX_BYTES" ]; then
    echo "memory-per-allocation: $per bytes per allocation is over the $MAX_BYTES-byte budget" >&2
    exit 1
fi
