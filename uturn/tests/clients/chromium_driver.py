#!/usr/bin/env python3
"""Drives Debian's headless Chromium (via chromedriver and selenium) through
chromium_relay.html: two RTCPeerConnections that may only use the TURN relay.

Driven by uturn/tests/chromium.rs. Serves the page from a local HTTP server
(getUserMedia needs a secure context; http://127.0.0.1 is one), waits for
the page's verdict and prints `RESULT {json}`. Exits 0 only if the page
reports success within --timeout seconds.
"""

import argparse
import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.parse

# Never let Selenium Manager try to download a browser or driver: the tests
# use Debian's chromium and chromium-driver.
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_directory(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--turn", required=True, help="e.g. turn:127.0.0.1:3478?transport=udp")
    p.add_argument("--user", required=True)
    p.add_argument("--cred", required=True)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()

    httpd = serve_directory(HERE)
    query = urllib.parse.urlencode({"turn": args.turn, "user": args.user, "cred": args.cred})
    url = f"http://127.0.0.1:{httpd.server_address[1]}/chromium_relay.html?{query}"

    with tempfile.TemporaryDirectory(prefix="uturn-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        service = Service(executable_path=args.chromedriver)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            driver.get(url)
            deadline = time.monotonic() + args.timeout
            result = None
            while time.monotonic() < deadline:
                result = driver.execute_script("return window.relayResult")
                if result is not None:
                    break
                time.sleep(0.25)
            if result is None:
                status = driver.execute_script("return window.relayStatus || null")
                result = {"ok": False, "error": f"timed out after {args.timeout}s", "status": status}
            result["log"] = driver.execute_script(
                "return document.getElementById('log').textContent"
            )
        finally:
            driver.quit()
            httpd.shutdown()

    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if result.get("ok") else 1)


if __name__ == "__main__":
    main()
