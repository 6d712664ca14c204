#!/usr/bin/env python3
"""Relays UDP through a TURN server with aioice's TURN client (PyPI `aioice`),
an implementation independent of uturn, to an echo peer in this script.

Driven by uturn/tests/python_client.rs. Exits 0 and prints `RESULT {json}`
when every message came back intact and the peer saw it from the relayed
address; exits 1 with a reason otherwise.

Credentials come either from --username/--password, or from uturn's HTTP
credential API (--api http://HOST:PORT, POST /?service=turn&username=NAME),
whose JSON answer is checked as well.
"""

import argparse
import asyncio
import json
import sys
import urllib.request

from aioice import turn


class EchoPeer(asyncio.DatagramProtocol):
    """The peer: echoes each datagram and remembers where it came from."""

    def __init__(self):
        self.transport = None
        self.sources = set()

    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.sources.add(addr)
        self.transport.sendto(data, addr)


class Inbox(asyncio.DatagramProtocol):
    """What the TURN client receives from peers through the relay."""

    def __init__(self):
        self.queue = asyncio.Queue()

    def datagram_received(self, data, addr):
        self.queue.put_nowait((data, addr))


def fail(reason):
    print(f"FAIL {reason}", flush=True)
    sys.exit(1)


def fetch_credentials(api, name):
    """POST /?service=turn&username=NAME and check the JSON contract."""
    req = urllib.request.Request(
        f"{api}/?service=turn&username={name}", data=b"", method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status != 200:
            fail(f"API answered {resp.status}")
        body = json.load(resp)
    for field, kind in (("username", str), ("password", str), ("ttl", int), ("uris", list)):
        if not isinstance(body.get(field), kind):
            fail(f"API JSON field {field!r} missing or not {kind.__name__}: {body}")
    expiry, sep, user = body["username"].partition(":")
    if sep != ":" or user != name or not expiry.isdigit():
        fail(f"API username is not EXPIRY:{name}: {body['username']!r}")
    if body["ttl"] <= 0 or not body["password"]:
        fail(f"API ttl/password unusable: {body}")
    if not any(isinstance(u, str) and u.startswith("turn:") for u in body["uris"]):
        fail(f"API uris has no turn: URI: {body['uris']}")
    return body


async def run(args):
    loop = asyncio.get_running_loop()
    host, port = args.server.rsplit(":", 1)
    api_body = None
    if args.api:
        api_body = fetch_credentials(args.api, args.api_user)
        username, password = api_body["username"], api_body["password"]
    else:
        username, password = args.username, args.password

    peer_transport, peer = await loop.create_datagram_endpoint(
        EchoPeer, local_addr=(args.peer_ip, 0)
    )
    peer_addr = peer_transport.get_extra_info("sockname")

    transport, inbox = await asyncio.wait_for(
        turn.create_turn_endpoint(
            Inbox,
            server_addr=(host, int(port)),
            username=username,
            password=password,
            transport="udp",
        ),
        timeout=args.timeout,
    )
    relayed = transport.get_extra_info("sockname")
    try:
        for i in range(args.count):
            payload = f"msg {i}:".encode() + bytes((i * 7 + j) % 256 for j in range(args.size))
            transport.sendto(payload, peer_addr)
            try:
                data, addr = await asyncio.wait_for(inbox.queue.get(), timeout=args.timeout)
            except asyncio.TimeoutError:
                fail(f"message {i} did not come back within {args.timeout}s")
            if data != payload:
                fail(f"message {i} came back altered ({len(data)} vs {len(payload)} bytes)")
            if tuple(addr) != tuple(peer_addr):
                fail(f"message {i} came back from {addr}, not the peer {peer_addr}")
    finally:
        transport.close()
        peer_transport.close()
    # The peer must only ever have seen the relayed transport address.
    if peer.sources != {tuple(relayed)}:
        fail(f"peer saw sources {peer.sources}, expected only the relay {relayed}")
    print(
        "RESULT "
        + json.dumps(
            {
                "relayed": list(relayed),
                "echoed": args.count,
                "api": api_body,
            }
        ),
        flush=True,
    )


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--server", required=True, help="TURN server HOST:PORT")
    p.add_argument("--username")
    p.add_argument("--password")
    p.add_argument("--api", help="credential API base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--api-user", default="py")
    p.add_argument("--peer-ip", default="127.0.0.1", help="address the echo peer binds")
    p.add_argument("--count", type=int, default=20)
    p.add_argument("--size", type=int, default=200)
    p.add_argument("--timeout", type=float, default=10.0)
    args = p.parse_args()
    if not args.api and not (args.username and args.password):
        p.error("need --api or --username and --password")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
