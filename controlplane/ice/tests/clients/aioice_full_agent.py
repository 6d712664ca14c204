"""A full ICE agent (aioice, PyPI, used by aiortc) against uturn's ICE-lite agent.

Prints, one line each on stdout:
  CREDS <ufrag> <pwd>             its credentials, for the lite side's agent
  CONNECTED <controlling|controlled>  once aioice has a nominated pair
  RECEIVED <text>                 the lite side's answer to "ping"
and exits 0, or exits non-zero with aioice's error on stderr.
"""

import argparse
import asyncio
import sys

import aioice
import aioice.ice

# aioice leaves 127.0.0.1 out of its host candidates; the test must stay on
# loopback, so it gathers exactly that one.
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidate", required=True, help="the lite side's a=candidate value")
    parser.add_argument("--ufrag", required=True)
    parser.add_argument("--pwd", required=True)
    parser.add_argument("--controlled", action="store_true", help="start in the wrong role")
    args = parser.parse_args()

    conn = aioice.Connection(
        ice_controlling=not args.controlled, components=1, use_ipv4=True, use_ipv6=False
    )
    # The answer said a=ice-lite.
    conn.remote_is_lite = True
    await conn.gather_candidates()
    print("CREDS", conn.local_username, conn.local_password, flush=True)

    conn.remote_username = args.ufrag
    conn.remote_password = args.pwd
    prefix = "candidate:"
    if not args.candidate.startswith(prefix):
        print(f"bad candidate line {args.candidate!r}", file=sys.stderr)
        return 2
    # aioice's own SDP parser reads the line uturn generated.
    await conn.add_remote_candidate(aioice.Candidate.from_sdp(args.candidate[len(prefix):]))
    await conn.add_remote_candidate(None)

    await asyncio.wait_for(conn.connect(), 30)
    print("CONNECTED", "controlling" if conn.ice_controlling else "controlled", flush=True)
    await conn.send(b"ping")
    data = await asyncio.wait_for(conn.recv(), 30)
    print("RECEIVED", data.decode(), flush=True)
    await conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
