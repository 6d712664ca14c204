#!/bin/bash
# The media relay's fan-out cost (docs/benchmarks.md "Media relay fan-out"),
# with the viewers on loopback and behind a TUN device, in the same run.
#
# Starts uturn with one worker pinned to CPU 0 and runs `uturn-media-load
# --spin` pinned to CPU 1, once per network:
#
#   loopback  peers on 127.0.0.1 sockets. The kernel runs each viewer's
#             receive path inside the relay's sendmsg, so it is charged to
#             the relay's CPU.
#   tun       peers behind a TUN device (uturn-media-load --tun): the
#             relay's datagrams leave through the device like through a NIC
#             without offloads and the generator reads them on its own core.
#
# and prints one JSON summary per run, plus a line per run with
# relay_us_per_packet_per_viewer. Needs root (the TUN device).
#
# Builds nothing: give it the directory holding `uturn` and
# `uturn-media-load` (default target/release; build them with
# `cargo build --release -p uturn -p uturn-bench --bins`).
#
# Usage: bench/scripts/media-fanout.sh [BIN_DIR] [-- extra uturn-media-load flags]
# Environment (optional): STREAMS (4), VIEWERS (50), PROFILE
#   (aead-aes128-gcm | aes128-cm-sha1-80), DURATION (10), NETS ("loopback tun"),
#   RELAY_FLAGS (extra uturn flags, e.g. "--backend epoll").
set -euo pipefail

BIN=${1:-target/release}
shift || true
[ "${1:-}" = "--" ] && shift
STREAMS=${STREAMS:-4}
VIEWERS=${VIEWERS:-50}
PROFILE=${PROFILE:-aead-aes128-gcm}
DURATION=${DURATION:-10}
NETS=${NETS:-loopback tun}
TUN=utfan0
TUN_HOST=10.232.0.1
TUN_PEERS=10.232.0.2
PORT=34791
API=127.0.0.1:18091

for tool in uturn uturn-media-load; do
    [ -x "$BIN/$tool" ] || { echo "media-fanout: no $BIN/$tool (build it first)" >&2; exit 2; }
done
if [ "$(id -u)" != 0 ] && [[ " $NETS " == *" tun "* ]]; then
    echo "media-fanout: the tun run needs root (or NETS=loopback)" >&2
    exit 2
fi

relay=
cleanup() {
    [ -n "$relay" ] && kill "$relay" 2>/dev/null && wait "$relay" 2>/dev/null
    ip link del "$TUN" 2>/dev/null || true
}
trap cleanup EXIT

run() { # NET LISTEN_IP [generator flags]
    local net=$1 ip=$2
    shift 2
    taskset -c 0 "$BIN/uturn" --listen "$ip:$PORT" --relay-ip "$ip" --realm test \
        --user alice:secret --api "$API" --threads 1 --log-level warn ${RELAY_FLAGS:-} \
        > /tmp/media-fanout-relay.log 2>&1 &
    relay=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/${API%:*}/${API#*:}") 2>/dev/null && break
        sleep 0.1
    done
    local out
    out=$(taskset -c 1 "$BIN/uturn-media-load" --api "http://$API" --streams "$STREAMS" \
        --viewers "$VIEWERS" --profile "$PROFILE" --duration "$DURATION" \
        --relay-pid "$relay" --spin "$@")
    kill "$relay"
    wait "$relay" 2>/dev/null || true
    relay=
    echo "$out"
    echo "$net: $(echo "$out" | grep -o '"relay_us_per_packet_per_viewer": [0-9.]*') \
$(echo "$out" | grep -o '"delivery_ratio": [0-9.]*')"
}

for net in $NETS; do
    case $net in
        loopback) run loopback 127.0.0.1 "$@" ;;
        tun)
            ip link del "$TUN" 2>/dev/null || true
            ip tuntap add dev "$TUN" mode tun
            ip addr add "$TUN_HOST/24" dev "$TUN"
            # The device's ring holds txqueuelen packets: room for a
            # burst to every viewer while the generator is busy.
            ip link set "$TUN" txqueuelen 10000 up
            run tun "$TUN_HOST" --tun "$TUN" --bind "$TUN_PEERS" "$@"
            ip link del "$TUN"
            ;;
        *) echo "media-fanout: unknown network $net" >&2; exit 2 ;;
    esac
done
