#!/usr/bin/env python3
"""Drives Debian's headless Chromium (chromedriver + selenium) against uturn's
media relay, for uturn/tests/media_chromium.rs. Two modes:

  client  serves whip_client.html from a local HTTP server of its own (so the
          page is of another origin than uturn's API: every WHIP/WHEP request
          is cross-origin) and waits for the page's window.whipResult.
  demo    opens uturn's own demo page (GET / on --api), types a stream name,
          clicks "Publish camera" then "Watch", and samples the viewer's
          decoded frames twice.

Prints `RESULT {json}`; exits 0 only if the run completed (the test then
checks the numbers). The camera and microphone are Chromium's fake devices.
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

# Never let Selenium Manager download a browser or driver: the tests use
# Debian's chromium and chromium-driver.
os.environ.setdefault("SE_OFFLINE", "true")

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Five viewers decode at once on a small machine; background throttling
    # would starve the page's timers.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
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


def wait_for(driver, script, timeout):
    """Polls `script` until it returns something other than None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value is not None:
            return value
        time.sleep(0.25)
    return None


def run_client(driver, args):
    httpd = serve_directory(HERE)
    try:
        query = urllib.parse.urlencode(
            {
                "api": args.api,
                "stream": args.stream,
                "viewers": args.viewers,
                "late": "1" if args.late else "0",
                "leave": "1" if args.leave else "0",
            }
        )
        driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/whip_client.html?{query}")
        result = wait_for(driver, "return window.whipResult", args.timeout)
        if result is None:
            status = driver.execute_script("return window.whipStatus || null") or {}
            result = dict(status, ok=False, error=f"timed out after {args.timeout}s")
        result["log"] = driver.execute_script("return document.getElementById('log').textContent")
        return result
    finally:
        httpd.shutdown()


# Runs in the demo page: the viewer's inbound video and the states shown.
DEMO_STATS = """
const done = arguments[arguments.length - 1];
const demo = window.uturnDemo;
const out = {
  publishState: document.getElementById('publish-state').textContent,
  watchState: document.getElementById('watch-state').textContent,
  framesDecoded: 0,
  at: performance.now(),
};
const pc = demo && demo.viewer.pc;
if (!pc) { done(out); return; }
out.connection = pc.connectionState;
pc.getStats().then((report) => {
  report.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') out.framesDecoded = s.framesDecoded || 0;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') out.audioPackets = s.packetsReceived || 0;
  });
  const video = document.getElementById('remote');
  out.videoWidth = video.videoWidth;
  done(out);
}, (e) => { out.error = String(e); done(out); });
"""


def run_demo(driver, args):
    driver.set_script_timeout(10)
    driver.get(args.api + "/")
    field = driver.find_element("id", "stream")
    field.clear()
    field.send_keys(args.stream)
    driver.find_element("id", "publish").click()
    # The page enables "Stop" once the publisher's answer is in.
    published = wait_for(
        driver,
        "return document.getElementById('unpublish').disabled ? null : true",
        20,
    )
    result = {"ok": False, "published": bool(published)}
    if not published:
        result["error"] = "the demo page did not publish"
        result["stats"] = driver.execute_async_script(DEMO_STATS)
        return result
    driver.find_element("id", "watch").click()
    deadline = time.monotonic() + args.timeout
    first = None
    while time.monotonic() < deadline:
        stats = driver.execute_async_script(DEMO_STATS)
        if stats.get("framesDecoded", 0) > 0:
            first = stats
            break
        time.sleep(0.25)
    if first is None:
        result["error"] = "the demo page's viewer decoded no frame"
        result["stats"] = driver.execute_async_script(DEMO_STATS)
        return result
    time.sleep(2)
    result["first"] = first
    result["second"] = driver.execute_async_script(DEMO_STATS)
    result["streams"] = driver.find_element("id", "streams").text
    result["ok"] = True
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("mode", choices=["client", "demo"])
    p.add_argument("--api", required=True, help="uturn's HTTP base URL, http://127.0.0.1:PORT")
    p.add_argument("--stream", default="test")
    p.add_argument("--viewers", type=int, default=1)
    p.add_argument("--late", action="store_true")
    p.add_argument("--leave", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="uturn-whip-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        service = Service(executable_path=args.chromedriver)
        driver = webdriver.Chrome(options=options, service=service)
        try:
            if args.mode == "client":
                result = run_client(driver, args)
            else:
                result = run_demo(driver, args)
        except Exception as e:  # a selenium failure is a result too
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        finally:
            driver.quit()

    print("RESULT " + json.dumps(result), flush=True)
    sys.exit(0 if result.get("ok") else 1)


if __name__ == "__main__":
    main()
