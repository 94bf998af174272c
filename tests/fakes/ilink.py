#!/usr/bin/env python3
"""A local fake of Tencent's iLink Bot API (personal WeChat), for tests, benchmarks and the demo.

Written from the protocol as Hermes' Weixin adapter uses it (endpoints, headers, ret/errcode
values, the get_updates_buf cursor, context tokens); held to that adapter by a test that runs it
against this server. Standard library only. Listens on 127.0.0.1, port 0 unless told; writes a
ready file (JSON: base_url, admin_url, admin_token, token, account_id, recorder) once serving.

iLink side:  POST ilink/bot/getupdates | sendmessage | sendtyping | getconfig | getuploadurl,
             GET ilink/bot/get_bot_qrcode | get_qrcode_status
CDN side:    POST c2c/upload?encrypted_query_param=…&filekey=… (answers x-encrypted-param),
             GET c2c/download?encrypted_query_param=…
             A sendmessage naming an uploaded file is checked: the file is decrypted with the
             item's aes_key (AES-128-ECB, with `cryptography` when this Python has it) and its
             MD5 compared with getuploadurl's rawfilemd5 (recorded as media[].md5_ok).
Admin side (header X-Admin-Token):
             POST /admin/inject   {from_user_id, text, context_token?, room_id?, message_id?}
             POST /admin/expire   the session: every call answers errcode -14 until /admin/renew
             POST /admin/renew
             POST /admin/ratelimit {count}: the next `count` calls answer ret -2
             GET  /admin/sent     what was recorded (also in the recorder file, one JSON a line)
"""

import argparse
import base64
import hashlib
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ready import announce

SESSION_EXPIRED = -14
RATE_LIMITED = -2


class State:
    def __init__(self, token, account_id, recorder, longpoll_ms):
        self.token = token
        self.account_id = account_id
        self.recorder = recorder
        self.longpoll_ms = longpoll_ms
        self.messages = []
        self.expired = False
        self.rate_limit_left = 0
        self.qr_polls = {}
        # filekey -> what getuploadurl was told; download param -> ciphertext
        self.uploads = {}
        self.cdn = {}
        self.lock = threading.Condition()
        self.next_id = 7_000_000_000

    def record(self, entry):
        entry = dict(entry, at=time.time())
        with self.lock:
            with open(self.recorder, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes: without this, Nagle and the client's delayed ACK
    # add ~40 ms to every answer.
    disable_nagle_algorithm = True
    state: State = None  # set by main
    admin_token = ""

    def log_message(self, *args):
        pass

    def answer(self, status, body):
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            return None

    # ---- iLink ---------------------------------------------------------------------------

    def refused(self):
        """The answer for a call the session cannot make, or None when it may go on."""
        s = self.state
        if self.headers.get("AuthorizationType") != "ilink_bot_token":
            return {"ret": -1, "errcode": -1, "errmsg": "missing AuthorizationType"}
        auth = self.headers.get("Authorization", "")
        if not secrets.compare_digest(auth, f"Bearer {s.token}") or s.expired:
            return {"ret": SESSION_EXPIRED, "errcode": SESSION_EXPIRED, "errmsg": "session timeout"}
        with s.lock:
            if s.rate_limit_left > 0:
                s.rate_limit_left -= 1
                return {"ret": RATE_LIMITED, "errcode": RATE_LIMITED, "errmsg": "frequency limit"}
        return None

    def do_POST(self):
        url = urlparse(self.path)
        path = url.path.lstrip("/")
        if path.startswith("admin/"):
            return self.admin_post(path[len("admin/"):])
        if path == "c2c/upload":
            return self.cdn_upload({k: v[0] for k, v in parse_qs(url.query).items()})
        payload = self.body()
        if payload is None:
            return self.answer(400, {"ret": -1, "errmsg": "body is not JSON"})
        refusal = self.refused()
        if refusal is not None:
            return self.answer(200, refusal)
        s = self.state
        if path == "ilink/bot/getupdates":
            return self.get_updates(payload)
        if path == "ilink/bot/sendmessage":
            msg = payload.get("msg") or {}
            items = msg.get("item_list") or []
            text = "".join(
                (i.get("text_item") or {}).get("text", "") for i in items if i.get("type") == 1
            )
            s.record(
                {
                    "endpoint": "sendmessage",
                    "to": msg.get("to_user_id"),
                    "text": text,
                    "context_token": msg.get("context_token"),
                    "client_id": msg.get("client_id"),
                    "items": items,
                    "media": [self.check_media(i) for i in items if i.get("type") != 1],
                }
            )
            return self.answer(200, {"ret": 0})
        if path == "ilink/bot/getuploadurl":
            filekey = str(payload.get("filekey") or "")
            if not filekey:
                return self.answer(200, {"ret": -1, "errmsg": "no filekey"})
            with s.lock:
                s.uploads[filekey] = payload
            return self.answer(200, {"ret": 0, "upload_param": f"up-{filekey}"})
        if path == "ilink/bot/getconfig":
            user = payload.get("ilink_user_id") or ""
            return self.answer(200, {"ret": 0, "typing_ticket": f"ticket-{user}"})
        if path == "ilink/bot/sendtyping":
            s.record(
                {
                    "endpoint": "sendtyping",
                    "to": payload.get("ilink_user_id"),
                    "typing_ticket": payload.get("typing_ticket"),
                    "status": payload.get("status"),
                }
            )
            return self.answer(200, {"ret": 0})
        return self.answer(404, {"ret": -1, "errmsg": f"no such endpoint {path}"})

    def cdn_upload(self, query):
        s = self.state
        filekey = query.get("filekey", "")
        if query.get("encrypted_query_param") != f"up-{filekey}" or filekey not in s.uploads:
            return self.answer(400, {"error": "unknown upload"})
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length)
        param = f"dl-{filekey}"
        with s.lock:
            s.cdn[param] = data
        self.send_response(200)
        self.send_header("x-encrypted-param", param)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def check_media(self, item):
        """What the peer would get: the file decrypted with the item's key, its MD5 checked."""
        s = self.state
        inner = next((v for k, v in item.items() if k.endswith("_item")), {}) or {}
        media = inner.get("media") or {}
        param = media.get("encrypt_query_param", "")
        found = {"type": item.get("type"), "param": param, "md5_ok": None}
        data = s.cdn.get(param)
        if data is None:
            found["error"] = "no such CDN file"
            return found
        try:
            from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        except ImportError:
            return found
        raw = base64.b64decode(media.get("aes_key", ""))
        key = bytes.fromhex(raw.decode("ascii")) if len(raw) == 32 else raw
        dec = Cipher(algorithms.AES(key), modes.ECB()).decryptor()
        plain = dec.update(data) + dec.finalize()
        plain = plain[: -plain[-1]] if plain and 1 <= plain[-1] <= 16 else plain
        upload = s.uploads.get(param[len("dl-"):], {})
        found["md5_ok"] = hashlib.md5(plain).hexdigest() == upload.get("rawfilemd5")
        found["size"] = len(plain)
        return found

    def get_updates(self, payload):
        s = self.state
        try:
            cursor = int(payload.get("get_updates_buf") or 0)
        except (TypeError, ValueError):
            cursor = 0
        deadline = time.time() + s.longpoll_ms / 1000
        with s.lock:
            while len(s.messages) <= cursor and time.time() < deadline and not s.expired:
                s.lock.wait(timeout=max(0.0, deadline - time.time()))
            batch = s.messages[cursor : cursor + 100]
        return self.answer(
            200,
            {
                "ret": 0,
                "msgs": batch,
                "get_updates_buf": str(cursor + len(batch)),
                "longpolling_timeout_ms": s.longpoll_ms,
            },
        )

    def do_GET(self):
        url = urlparse(self.path)
        path = url.path.lstrip("/")
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        s = self.state
        if path == "c2c/download":
            data = s.cdn.get(query.get("encrypted_query_param", ""))
            if data is None:
                return self.answer(404, {"error": "no such CDN file"})
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if path == "admin/sent":
            if not self.admin_ok():
                return
            try:
                with open(s.recorder, encoding="utf-8") as f:
                    lines = [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                lines = []
            return self.answer(200, lines)
        if path == "ilink/bot/get_bot_qrcode":
            code = "qr-" + secrets.token_hex(4)
            with s.lock:
                s.qr_polls[code] = 0
            return self.answer(200, {"qrcode": code, "qrcode_img_content": f"https://fake.ilink/qr/{code}"})
        if path == "ilink/bot/get_qrcode_status":
            code = query.get("qrcode", "")
            with s.lock:
                if code not in s.qr_polls:
                    return self.answer(200, {"status": "expired"})
                s.qr_polls[code] += 1
                polls = s.qr_polls[code]
            if polls == 1:
                return self.answer(200, {"status": "wait"})
            if polls == 2:
                return self.answer(200, {"status": "scaned"})
            return self.answer(
                200,
                {
                    "status": "confirmed",
                    "ilink_bot_id": s.account_id,
                    "bot_token": s.token,
                    "baseurl": f"http://{self.headers.get('Host')}",
                    "ilink_user_id": "owner@im.wechat",
                },
            )
        return self.answer(404, {"ret": -1, "errmsg": f"no such endpoint {path}"})

    # ---- admin ---------------------------------------------------------------------------

    def admin_ok(self):
        if not secrets.compare_digest(self.headers.get("X-Admin-Token", ""), self.admin_token):
            self.answer(403, {"error": "admin token"})
            return False
        return True

    def admin_post(self, what):
        if not self.admin_ok():
            return
        payload = self.body() or {}
        s = self.state
        with s.lock:
            if what == "inject":
                s.next_id += 1
                sender = payload.get("from_user_id") or "user@im.wechat"
                message = {
                    "seq": len(s.messages) + 1,
                    "message_id": payload.get("message_id") or s.next_id,
                    "from_user_id": sender,
                    "to_user_id": s.account_id,
                    "create_time_ms": int(time.time() * 1000),
                    "message_type": 1,
                    "message_state": 2,
                    "context_token": payload.get("context_token") or ("ctx-" + secrets.token_hex(6)),
                    "item_list": payload.get("item_list")
                    or [{"type": 1, "text_item": {"text": payload.get("text", "")}}],
                }
                if payload.get("room_id"):
                    message["room_id"] = payload["room_id"]
                s.messages.append(message)
                s.lock.notify_all()
                return self.answer(200, message)
            if what == "expire":
                s.expired = True
                s.lock.notify_all()
                return self.answer(200, {"ok": True})
            if what == "renew":
                s.expired = False
                return self.answer(200, {"ok": True})
            if what == "ratelimit":
                s.rate_limit_left = int(payload.get("count") or 1)
                return self.answer(200, {"ok": True})
        return self.answer(404, {"error": f"no admin action {what}"})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--recorder", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="")
    ap.add_argument("--account-id", default="fakebot@im.bot")
    ap.add_argument("--longpoll-ms", type=int, default=35_000)
    args = ap.parse_args()
    token = args.token or "ilink-" + secrets.token_hex(16)
    Handler.state = State(token, args.account_id, args.recorder, args.longpoll_ms)
    Handler.admin_token = secrets.token_hex(16)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    ready = {
        "base_url": base,
        "admin_url": f"{base}/admin",
        "cdn_base_url": f"{base}/c2c",
        "admin_token": Handler.admin_token,
        "token": token,
        "account_id": args.account_id,
        "recorder": args.recorder,
    }
    announce(args.ready_file, ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
