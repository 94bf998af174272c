#!/usr/bin/env python3
"""A local fake of WeCom (企业微信) for tests, benchmarks and the demo, both ways in:

- the AI Bot (智能机器人) WebSocket, `ws://…/ws`: `aibot_subscribe` (bot id and secret checked),
  application `ping`s answered, `aibot_msg_callback` / `aibot_event_callback` pushed from the
  admin side, `aibot_respond_msg` / `aibot_send_msg` and the chunked media upload
  (`aibot_upload_media_init/chunk/finish`, MD5 checked) recorded and answered;
- a self-built app (自建应用): the server API (`/cgi-bin/gettoken`, `/cgi-bin/message/send`) and
  WeCom's side of the callbacks (the admin side encrypts a message with the app's keys,
  BizMsgCrypt, and POSTs it to the app's callback URL).

Written from the protocol as Hermes' WeCom adapters use it (frames, commands, errcodes, the
callback crypto); held to those adapters by tests that run them against it. Needs aiohttp and
cryptography (both in the test venv). Listens on 127.0.0.1, port 0 unless told; writes a ready
file (JSON: ws_url, api_root, media_root, admin_url, admin_token and the credentials) once
serving.

Admin side (header X-Admin-Token), JSON bodies:
  POST /admin/bot/inject   {from, chattype?: single|group, chatid?, text?, msgid?, image?: base64,
                            file?: base64, filename?, quote?: text, voice?: text, legacy?: bool}
                           → {req_id, msgid}; pushed to every subscribed socket, or (none
                           subscribed) queued for the next one
  POST /admin/bot/event    {eventtype, from?}
  POST /admin/bot/state    {sockets, queued}: subscribed sockets, pushes waiting for one
  POST /admin/bot/drop     close every socket
  POST /admin/bot/deaf     {on}: pings and requests go unanswered while on
  POST /admin/bot/refuse   {on}: subscriptions are refused (errcode 40058) while on
  POST /admin/callback     {url, from, content?, msgtype?, msgid?, nonce?, timestamp?, corp_id?,
                            sign_with?: another token, retries?, retry_delay_ms?}
                           → {status, body, attempts}
  POST /admin/api/expire   the current access token answers 42001 once
  POST /admin/api/refuse   {on}: gettoken refuses the secret (errcode 40001)
  GET  /admin/sent         everything recorded (also in the recorder file, one JSON a line)
"""

import argparse
import asyncio
import base64
import hashlib
import json
import os
import secrets
import struct
import time
import urllib.parse

from aiohttp import ClientSession, WSMsgType, web
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from ready import announce


def pkcs7(data, block=32):
    pad = block - len(data) % block
    return data + bytes([pad]) * pad


def aes_cbc(key, data, encrypt):
    cipher = Cipher(algorithms.AES(key), modes.CBC(key[:16]))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def signature(token, timestamp, nonce, encrypted):
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypted])).encode()).hexdigest()


class Fake:
    def __init__(self, recorder):
        self.recorder = recorder
        self.admin_token = secrets.token_hex(16)
        self.bot_id = "bot-" + secrets.token_hex(4)
        self.bot_secret = "bsec-" + secrets.token_hex(12)
        self.corp_id = "ww" + secrets.token_hex(8)
        self.corp_secret = "csec-" + secrets.token_hex(12)
        self.agent_id = 1000002
        self.cb_token = "cbtok" + secrets.token_hex(6)
        self.aes_key = base64.b64encode(os.urandom(32)).decode()[:43]
        self.sockets = set()
        # Pushed while no bot was subscribed: delivered to the next that subscribes.
        self.queued = []
        self.deaf = False
        self.refuse_subscribe = False
        self.refuse_secret = False
        self.access_token = None
        self.expire_next = False
        self.uploads = {}
        self.media = {}
        self.next_msgid = 1
        self.base = None

    def record(self, entry):
        entry = dict(entry, at=time.time())
        with open(self.recorder, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    # ---- the AI Bot socket ----------------------------------------------------------------

    async def ws(self, request):
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=4 << 20)
        await ws.prepare(request)
        subscribed = False
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                try:
                    frame = json.loads(msg.data)
                except ValueError:
                    continue
                cmd = frame.get("cmd")
                req_id = (frame.get("headers") or {}).get("req_id", "")
                body = frame.get("body") or {}
                if cmd == "aibot_subscribe":
                    ok = (body.get("bot_id") == self.bot_id and body.get("secret") == self.bot_secret
                          and not self.refuse_subscribe)
                    self.record({"kind": "subscribe", "ok": ok})
                    if ok:
                        subscribed = True
                        self.sockets.add(ws)
                        await ws.send_json({"headers": {"req_id": req_id}, "errcode": 0, "errmsg": "ok"})
                        queued, self.queued = self.queued, []
                        for frame in queued:
                            await ws.send_json(frame)
                    else:
                        await ws.send_json({"headers": {"req_id": req_id}, "errcode": 40058,
                                            "errmsg": "invalid bot_id or secret"})
                        await ws.close()
                    continue
                if not subscribed or self.deaf:
                    continue
                answer = {"headers": {"req_id": req_id}, "errcode": 0, "errmsg": "ok"}
                if cmd == "ping":
                    pass
                elif cmd in ("aibot_respond_msg", "aibot_send_msg"):
                    self.record({"kind": cmd, "req_id": req_id, "body": body})
                elif cmd == "aibot_upload_media_init":
                    upload_id = "up-" + secrets.token_hex(6)
                    self.uploads[upload_id] = dict(body, chunks={})
                    answer["body"] = {"upload_id": upload_id}
                elif cmd == "aibot_upload_media_chunk":
                    up = self.uploads.get(body.get("upload_id"))
                    if up is None:
                        answer.update(errcode=40007, errmsg="unknown upload_id")
                    else:
                        up["chunks"][int(body.get("chunk_index", -1))] = base64.b64decode(body.get("base64_data", ""))
                elif cmd == "aibot_upload_media_finish":
                    up = self.uploads.pop(body.get("upload_id"), None)
                    data = b"".join(up["chunks"][i] for i in sorted(up["chunks"])) if up else b""
                    ok = up is not None and len(data) == up.get("total_size") and \
                        hashlib.md5(data).hexdigest() == up.get("md5") and \
                        sorted(up["chunks"]) == list(range(up.get("total_chunks", 0)))
                    media_id = "media-" + secrets.token_hex(6)
                    self.record({"kind": "upload", "ok": ok, "size": len(data), "chunks": len(up["chunks"]) if up else 0,
                                 "type": up.get("type") if up else None, "filename": up.get("filename") if up else None,
                                 "media_id": media_id})
                    if ok:
                        answer["body"] = {"media_id": media_id, "type": up.get("type"), "created_at": int(time.time())}
                    else:
                        answer.update(errcode=40009, errmsg="upload does not match its md5 or size")
                else:
                    answer.update(errcode=40008, errmsg=f"unknown cmd {cmd}")
                await ws.send_json(answer)
        finally:
            self.sockets.discard(ws)
        return ws

    def media_ref(self, data):
        """Encrypts `data` with a fresh per-message key; the URL and key a callback names."""
        key = os.urandom(32)
        media_id = secrets.token_hex(8)
        self.media[media_id] = aes_cbc(key, pkcs7(data), True)
        return {"url": f"{self.base}/media/{media_id}", "aeskey": base64.b64encode(key).decode().rstrip("=")}

    async def media_get(self, request):
        data = self.media.get(request.match_info["id"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")

    async def push(self, frame):
        if not self.sockets:
            self.queued.append(frame)
        for ws in list(self.sockets):
            try:
                await ws.send_json(frame)
            except Exception:
                self.sockets.discard(ws)

    # ---- the server API of a self-built app -----------------------------------------------

    async def gettoken(self, request):
        q = request.query
        if q.get("corpid") != self.corp_id or q.get("corpsecret") != self.corp_secret or self.refuse_secret:
            self.record({"kind": "gettoken", "ok": False})
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        self.access_token = "at-" + secrets.token_hex(12)
        self.record({"kind": "gettoken", "ok": True})
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": self.access_token, "expires_in": 7200})

    async def message_send(self, request):
        token = request.query.get("access_token")
        if self.expire_next and token == self.access_token:
            self.expire_next = False
            self.access_token = None
            return web.json_response({"errcode": 42001, "errmsg": "access_token expired"})
        if not token or token != self.access_token:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        body = await request.json()
        msgid = f"msg{self.next_msgid}"
        self.next_msgid += 1
        self.record({"kind": "message_send", "body": body, "msgid": msgid})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    # ---- admin ----------------------------------------------------------------------------

    def authorized(self, request):
        return secrets.compare_digest(request.headers.get("X-Admin-Token", ""), self.admin_token)

    async def admin(self, request):
        if not self.authorized(request):
            return web.json_response({"error": "admin token"}, status=401)
        what = request.match_info["what"]
        body = await request.json() if request.can_read_body else {}
        if what == "bot/inject":
            return web.json_response(await self.inject(body))
        if what == "bot/event":
            req_id = "evt-" + secrets.token_hex(6)
            await self.push({"cmd": "aibot_event_callback", "headers": {"req_id": req_id},
                             "body": {"msgid": "e" + secrets.token_hex(6), "msgtype": "event",
                                      "from": {"userid": body.get("from", "")},
                                      "event": {"eventtype": body.get("eventtype", "enter_chat")}}})
            return web.json_response({"req_id": req_id})
        if what == "bot/state":
            return web.json_response({"sockets": len(self.sockets), "queued": len(self.queued)})
        if what == "bot/drop":
            for ws in list(self.sockets):
                await ws.close()
            return web.json_response({"dropped": True})
        if what == "bot/deaf":
            self.deaf = bool(body.get("on"))
            return web.json_response({"deaf": self.deaf})
        if what == "bot/refuse":
            self.refuse_subscribe = bool(body.get("on"))
            return web.json_response({"refuse": self.refuse_subscribe})
        if what == "callback":
            return web.json_response(await self.callback(body))
        if what == "api/expire":
            self.expire_next = True
            return web.json_response({"expire_next": True})
        if what == "api/refuse":
            self.refuse_secret = bool(body.get("on"))
            return web.json_response({"refuse": self.refuse_secret})
        return web.json_response({"error": "unknown"}, status=404)

    async def sent(self, request):
        if not self.authorized(request):
            return web.json_response({"error": "admin token"}, status=401)
        try:
            with open(self.recorder, encoding="utf-8") as f:
                return web.json_response([json.loads(line) for line in f if line.strip()])
        except FileNotFoundError:
            return web.json_response([])

    async def inject(self, b):
        msgid = b.get("msgid") or f"m{self.next_msgid}"
        self.next_msgid += 1
        req_id = "cb-" + secrets.token_hex(6)
        group = b.get("chattype") == "group"
        body = {"msgid": msgid, "aibotid": self.bot_id, "chattype": "group" if group else "single",
                "from": {"userid": b["from"]}}
        if group:
            body["chatid"] = b.get("chatid", "group-1")
        if b.get("image") and b.get("text") is not None:
            body["msgtype"] = "mixed"
            body["mixed"] = {"msg_item": [
                {"msgtype": "text", "text": {"content": b["text"]}},
                {"msgtype": "image", "image": self.media_ref(base64.b64decode(b["image"]))}]}
        elif b.get("image"):
            body["msgtype"] = "image"
            body["image"] = self.media_ref(base64.b64decode(b["image"]))
        elif b.get("file"):
            body["msgtype"] = "file"
            body["file"] = dict(self.media_ref(base64.b64decode(b["file"])), filename=b.get("filename", "file.bin"))
        elif b.get("voice") is not None:
            body["msgtype"] = "voice"
            body["voice"] = {"content": b["voice"]}
        else:
            body["msgtype"] = "text"
            body["text"] = {"content": b.get("text", "")}
        if b.get("quote") is not None:
            body["quote"] = {"msgtype": "text", "text": {"content": b["quote"]}}
        cmd = "aibot_callback" if b.get("legacy") else "aibot_msg_callback"
        await self.push({"cmd": cmd, "headers": {"req_id": req_id}, "body": body})
        return {"req_id": req_id, "msgid": msgid, "sockets": len(self.sockets)}

    async def callback(self, b):
        """WeCom's side of a self-built app's callback: encrypt, sign, POST; with `retries`, a
        POST that is not answered 200 is sent again after `retry_delay_ms` (as WeCom retries),
        signed afresh each time."""
        corp = b.get("corp_id", self.corp_id)
        created = int(time.time())
        kind = b.get("msgtype", "text")
        msgid = b.get("msgid") or str(10_000_000 + self.next_msgid)
        self.next_msgid += 1
        inner = (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName>"
                 f"<FromUserName><![CDATA[{b['from']}]]></FromUserName>"
                 f"<CreateTime>{created}</CreateTime><MsgType><![CDATA[{kind}]]></MsgType>"
                 f"<Content><![CDATA[{b.get('content', '')}]]></Content>"
                 f"<MsgId>{msgid}</MsgId><AgentID>{self.agent_id}</AgentID></xml>")
        raw = inner.encode()
        key = base64.b64decode(self.aes_key + "=")
        attempts = 1 + int(b.get("retries", 0))
        answer = {}
        for attempt in range(attempts):
            plain = os.urandom(16) + struct.pack(">I", len(raw)) + raw + corp.encode()
            encrypted = base64.b64encode(aes_cbc(key, pkcs7(plain), True)).decode()
            timestamp = str(b.get("timestamp", int(time.time())))
            nonce = b.get("nonce") or secrets.token_hex(5)
            sig = signature(b.get("sign_with", self.cb_token), timestamp, nonce, encrypted)
            envelope = (f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName>"
                        f"<Encrypt><![CDATA[{encrypted}]]></Encrypt>"
                        f"<AgentID><![CDATA[{self.agent_id}]]></AgentID></xml>")
            query = urllib.parse.urlencode({"msg_signature": sig, "timestamp": timestamp, "nonce": nonce})
            try:
                async with ClientSession() as s:
                    async with s.post(f"{b['url']}?{query}", data=envelope.encode(),
                                      headers={"Content-Type": "text/xml"}) as r:
                        answer = {"status": r.status, "body": await r.text(), "msgid": msgid,
                                  "nonce": nonce, "timestamp": timestamp, "attempts": attempt + 1}
            except Exception as exc:
                answer = {"status": 0, "body": str(exc), "msgid": msgid, "attempts": attempt + 1}
            if answer["status"] == 200:
                break
            if attempt + 1 < attempts:
                await asyncio.sleep(int(b.get("retry_delay_ms", 5000)) / 1000)
        return answer


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ready-file", required=True)
    p.add_argument("--recorder", required=True)
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    fake = Fake(a.recorder)
    app = web.Application(client_max_size=8 << 20)
    app.router.add_get("/ws", fake.ws)
    app.router.add_get("/media/{id}", fake.media_get)
    app.router.add_get("/cgi-bin/gettoken", fake.gettoken)
    app.router.add_post("/cgi-bin/message/send", fake.message_send)
    app.router.add_get("/admin/sent", fake.sent)
    app.router.add_post("/admin/{what:.+}", fake.admin)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", a.port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    fake.base = f"http://127.0.0.1:{port}"
    ready = {
        "ws_url": f"ws://127.0.0.1:{port}/ws", "api_root": fake.base, "admin_url": f"{fake.base}/admin",
        "admin_token": fake.admin_token, "bot_id": fake.bot_id, "bot_secret": fake.bot_secret,
        "corp_id": fake.corp_id, "corp_secret": fake.corp_secret, "agent_id": fake.agent_id,
        "callback_token": fake.cb_token, "aes_key": fake.aes_key, "recorder": a.recorder,
    }
    announce(a.ready_file, ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
