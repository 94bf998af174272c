#!/usr/bin/env python3
"""Behaves like the Hermes WhatsApp adapter against a bridge's HTTP API, with the standard
library only: wait for /health to report connected, poll /messages once a second until the
expected message arrives, then /typing, /send (quoting it) and /send-media. Prints a JSON report
of every answer on stdout; exits 0 when the message was polled and the reply was sent."""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:  # non-2xx: the bridge's JSON error body
        return json.loads(e.read() or b"null")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--expect", required=True)
    p.add_argument("--reply", required=True)
    p.add_argument("--media")
    p.add_argument("--timeout", type=float, default=90)
    args = p.parse_args()
    base = f"http://127.0.0.1:{args.port}"
    deadline = time.monotonic() + args.timeout
    report = {}

    while time.monotonic() < deadline:
        try:
            health = call(base, "GET", "/health")
            if health.get("status") == "connected":
                report["health"] = health
                break
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(1)

    polled = None
    while polled is None and time.monotonic() < deadline:
        for message in call(base, "GET", "/messages") or []:
            if message.get("body") == args.expect:
                polled = message
        if polled is None:
            time.sleep(1)  # the adapter polls once a second
    report["polled"] = polled
    if polled is not None:
        chat = polled["chatId"]
        report["typing"] = call(base, "POST", "/typing", {"chatId": chat})
        report["send"] = call(base, "POST", "/send", {"chatId": chat, "message": args.reply, "replyTo": polled["messageId"]})
        if args.media:
            report["send_media"] = call(base, "POST", "/send-media", {"chatId": chat, "filePath": args.media, "mediaType": "image", "caption": "a picture"})

    json.dump(report, sys.stdout)
    ok = polled is not None and (report.get("send") or {}).get("success") is True
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
