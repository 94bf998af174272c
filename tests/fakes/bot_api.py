#!/usr/bin/env python3
"""A local fake of Telegram's Bot API, for the tests that need more of it than crabline serves.

Written from the Bot API's documentation (method names, parameters, result objects, the
`{"ok", "result" | "error_code", "description"}` envelope, update offsets) and held to it by a
test running Hermes' own Telegram adapter (python-telegram-bot) against this server. What it
adds to crabline: `getChat`, `getFile` and file downloads, photos and documents sent in, replies,
edits, bots as senders, and mention entities set by the server as Telegram does. Standard
library only. Listens on 127.0.0.1 (port 0 unless told); writes a ready file (JSON: api_root,
bot_token, bot_username, admin_url, admin_token, recorder) once serving.

Bot side:    POST|GET /bot<token>/<method>, parameters as JSON, form fields or multipart.
             getMe getUpdates sendMessage editMessageText sendChatAction setMessageReaction
             getChat getFile send{Photo,Document,Video,Audio,Voice,Animation} deleteMessage
             setMyCommands deleteMyCommands getMyCommands deleteWebhook getWebhookInfo
             answerCallbackQuery; anything else is 404 "Not Found".
Files:       GET /file/bot<token>/<file_path>
Admin side (header X-Admin-Token):
             POST /admin/message {chat_id, from_id?, text?, chat_type?, title?, first_name?,
                                  is_bot?, reply_to?, photo_b64?, document_b64?, file_name?,
                                  mime_type?, thread_id?}  -> the update served
             POST /admin/edit    {chat_id, message_id, text}  -> an edited_message update
             GET  /admin/sent    every call recorded (also in the recorder, one JSON a line)
"""

import argparse
import base64
import email.parser
import email.policy
import hashlib
import json
import os
import re
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlparse

from ready import announce

# Parameters the Bot API takes as JSON-serialized objects when sent as form fields.
JSON_FIELDS = {
    "reply_parameters", "reaction", "reply_markup", "entities", "caption_entities",
    "link_preview_options", "allowed_updates", "commands", "scope",
}
CHAT_ACTIONS = {
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
}
# ReactionTypeEmoji's documented set.
REACTIONS = set(
    "👍 👎 ❤ 🔥 🥰 👏 😁 🤔 🤯 😱 🤬 😢 🎉 🤩 🤮 💩 🙏 👌 🕊 🤡 🥱 🥴 😍 🐳 ❤‍🔥 🌚 🌭 💯 🤣 ⚡ 🍌 🏆 💔 🤨 😐 🍓 🍾 💋 🖕 😈 😴 "
    "😭 🤓 👻 👨‍💻 👀 🎃 🙈 😇 😨 🤝 ✍ 🤗 🫡 🎅 🎄 ☃ 💅 🤪 🗿 🆒 💘 🙉 🦄 😘 💊 🙊 😎 👾 🤷‍♂ 🤷 🤷‍♀ 😡".split()
)
MEDIA_METHODS = {
    "sendphoto": "photo", "senddocument": "document", "sendvideo": "video",
    "sendaudio": "audio", "sendvoice": "voice", "sendanimation": "animation",
}
TEXT_UNITS = 4096
CAPTION_UNITS = 1024


def units(text):
    """Telegram's lengths and offsets are in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


class Refused(Exception):
    def __init__(self, description, code=400):
        super().__init__(description)
        self.code = code
        self.description = description


class State:
    def __init__(self, token, username, recorder):
        self.token = token
        self.bot = {
            "id": int(token.split(":")[0]), "is_bot": True, "first_name": "Fake Bot",
            "username": username,
        }
        self.recorder = recorder
        self.lock = threading.Condition()
        self.updates = []
        self.next_update = 1
        self.chats = {}  # id -> Chat
        self.messages = {}  # (chat id, message id) -> Message
        self.next_message = {}  # chat id -> next message id
        self.files = {}  # file_id -> {bytes, path, unique}
        self.polls = 0  # bumped by each getUpdates: an older waiting poll then answers 409

    def record(self, entry):
        entry = dict(entry, at=time.time())
        with self.lock:
            with open(self.recorder, "a", encoding="utf-8") as f:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    # Called with the lock held.
    def message_id(self, chat_id):
        n = self.next_message.get(chat_id, 1)
        self.next_message[chat_id] = n + 1
        return n

    def chat(self, raw):
        try:
            chat_id = int(raw)
        except (TypeError, ValueError):
            raise Refused("Bad Request: chat not found")
        chat = self.chats.get(chat_id)
        if chat is None:
            raise Refused("Bad Request: chat not found")
        return chat

    def store_file(self, data, kind, name=None):
        file_id = f"{kind}-{secrets.token_hex(8)}"
        ext = os.path.splitext(name or "")[1] or {"photo": ".jpg", "voice": ".ogg"}.get(kind, ".bin")
        self.files[file_id] = {
            "bytes": data,
            "path": f"{kind}s/file_{len(self.files)}{ext}",
            "unique": secrets.token_hex(6),
        }
        return file_id

    def media_object(self, kind, file_id, name=None, mime=None):
        f = self.files[file_id]
        base = {"file_id": file_id, "file_unique_id": f["unique"], "file_size": len(f["bytes"])}
        if kind == "photo":
            return [dict(base, width=640, height=480)]
        if kind in ("video", "animation"):
            base.update(width=640, height=480, duration=1)
        if kind in ("audio", "voice"):
            base["duration"] = 1
        if name:
            base["file_name"] = name
        if mime:
            base["mime_type"] = mime
        return base

    def push(self, kind, message):
        update = {"update_id": self.next_update, kind: message}
        self.next_update += 1
        self.updates.append(update)
        self.lock.notify_all()
        return update


def entities_of(text, bot_username):
    """What Telegram's servers mark in a text they receive: mentions and a leading command."""
    found = []
    for m in re.finditer(r"(?<![\w@])@\w{3,32}", text):
        found.append({"type": "mention", "offset": units(text[: m.start()]), "length": units(m.group())})
    m = re.match(r"/\w+(@\w+)?", text)
    if m:
        found.append({"type": "bot_command", "offset": 0, "length": units(m.group())})
    return found


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    state: State = None
    admin_token = ""

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json"):
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a poll it replaced, a shutdown)

    def raw_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def params(self, query):
        """The call's parameters (files as {file_name, bytes, mime}), however they were sent."""
        params = {k: v[0] for k, v in parse_qs(query).items()}
        body = self.raw_body()
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("application/json"):
            params.update(json.loads(body or b"{}"))
        elif ctype.startswith("application/x-www-form-urlencoded"):
            params.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
        elif ctype.startswith("multipart/form-data"):
            head = f"Content-Type: {ctype}\r\n\r\n".encode()
            parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
            for part in parsed.iter_parts():
                name = part.get_param("name", header="content-disposition")
                data = part.get_payload(decode=True) or b""
                if part.get_filename() is not None:
                    params[name] = {
                        "file_name": part.get_filename(), "bytes": data,
                        "mime": part.get_content_type(),
                    }
                else:
                    params[name] = data.decode()
        for k in JSON_FIELDS & params.keys():
            if isinstance(params[k], str):
                params[k] = json.loads(params[k])
        return params

    def do_GET(self):
        self.route()

    def do_POST(self):
        self.route()

    def route(self):
        url = urlparse(self.path)
        # Clients may percent-encode the token's colon (httpx does); the server decodes paths.
        url = url._replace(path=unquote(url.path))
        s = self.state
        if url.path.startswith("/admin/"):
            return self.admin(url.path[len("/admin/"):])
        m = re.fullmatch(r"/file/bot([^/]+)/(.+)", url.path)
        if m:
            f = next((f for f in s.files.values() if f["path"] == m.group(2)), None)
            ok = secrets.compare_digest(m.group(1), s.token) and f is not None
            s.record({"download": m.group(2), "ok": ok})
            if not ok:
                return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return self.answer(200, f["bytes"], "application/octet-stream")
        m = re.fullmatch(r"/bot([^/]+)/(\w+)", url.path)
        if not m:
            return self.answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if not secrets.compare_digest(m.group(1), s.token):
            self.raw_body()
            return self.answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        method = m.group(2)
        try:
            params = self.params(url.query)
        except (ValueError, UnicodeDecodeError):
            return self.answer(400, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse parameters"})
        try:
            result = self.call(method.lower(), params)
        except Refused as r:
            s.record({"method": method, "params": shown(params), "ok": False, "error": r.description})
            return self.answer(r.code, {"ok": False, "error_code": r.code, "description": r.description})
        if method.lower() != "getupdates" or result:
            s.record({"method": method, "params": shown(params), "ok": True, "result": result})
        return self.answer(200, {"ok": True, "result": result})

    def call(self, method, p):
        s = self.state
        if method == "getupdates":
            return self.get_updates(p)
        with s.lock:
            if method == "getme":
                return dict(s.bot, can_join_groups=True, can_read_all_group_messages=False,
                            supports_inline_queries=False)
            if method == "sendmessage":
                chat = s.chat(p.get("chat_id"))
                text = p.get("text") or ""
                if not text.strip():
                    raise Refused("Bad Request: message text is empty")
                if units(text) > TEXT_UNITS:
                    raise Refused("Bad Request: message is too long")
                return self.outgoing(chat, p, {"text": text})
            if method in MEDIA_METHODS:
                kind = MEDIA_METHODS[method]
                chat = s.chat(p.get("chat_id"))
                caption = p.get("caption") or ""
                if units(caption) > CAPTION_UNITS:
                    raise Refused("Bad Request: message caption is too long")
                given = p.get(kind)
                if isinstance(given, dict):
                    file_id = s.store_file(given["bytes"], kind, given["file_name"])
                    name, mime = given["file_name"], given["mime"]
                elif isinstance(given, str) and given in s.files:
                    file_id, name, mime = given, None, None
                else:
                    raise Refused(f"Bad Request: there is no {kind} in the request")
                fields = {kind: s.media_object(kind, file_id, name if kind != "photo" else None, mime if kind != "photo" else None)}
                if caption:
                    fields["caption"] = caption
                return self.outgoing(chat, p, fields)
            if method == "editmessagetext":
                chat = s.chat(p.get("chat_id"))
                key = (chat["id"], int(p.get("message_id") or 0))
                old = s.messages.get(key)
                if old is None or old.get("from", {}).get("id") != s.bot["id"]:
                    raise Refused("Bad Request: message to edit not found")
                text = p.get("text") or ""
                if not text.strip():
                    raise Refused("Bad Request: message text is empty")
                if text == old.get("text"):
                    raise Refused("Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message")
                old.update(text=text, edit_date=int(time.time()))
                return old
            if method == "sendchataction":
                s.chat(p.get("chat_id"))
                if p.get("action") not in CHAT_ACTIONS:
                    raise Refused("Bad Request: wrong parameter action in request")
                return True
            if method == "setmessagereaction":
                chat = s.chat(p.get("chat_id"))
                key = (chat["id"], int(p.get("message_id") or 0))
                if key not in s.messages:
                    raise Refused("Bad Request: message to react not found")
                reaction = p.get("reaction") or []
                for r in reaction:
                    if r.get("type") != "emoji" or r.get("emoji") not in REACTIONS:
                        raise Refused("Bad Request: REACTION_INVALID")
                s.messages[key]["reactions"] = [r["emoji"] for r in reaction]
                return True
            if method == "getchat":
                chat = s.chat(p.get("chat_id"))
                return dict(
                    chat, accent_color_id=0, max_reaction_count=11,
                    accepted_gift_types={
                        "unlimited_gifts": False, "limited_gifts": False, "unique_gifts": False,
                        "premium_subscription": False, "gifts_from_channels": False,
                    },
                )
            if method == "getfile":
                f = s.files.get(p.get("file_id") or "")
                if f is None:
                    raise Refused("Bad Request: invalid file_id")
                return {"file_id": p["file_id"], "file_unique_id": f["unique"],
                        "file_size": len(f["bytes"]), "file_path": f["path"]}
            if method == "deletemessage":
                chat = s.chat(p.get("chat_id"))
                if s.messages.pop((chat["id"], int(p.get("message_id") or 0)), None) is None:
                    raise Refused("Bad Request: message to delete not found")
                return True
            if method in ("setmycommands", "deletemycommands", "deletewebhook",
                          "answercallbackquery"):
                return True
            if method == "getmycommands":
                return []
            if method == "getwebhookinfo":
                return {"url": "", "has_custom_certificate": False,
                        "pending_update_count": len(s.updates)}
        raise Refused("Not Found: method not found", 404)

    def outgoing(self, chat, p, fields):
        """A message the bot sent to `chat`, kept so it can be edited, replied to, reacted to."""
        s = self.state
        reply = p.get("reply_parameters") or {}
        reply_id = reply.get("message_id", p.get("reply_to_message_id"))
        message = {"message_id": s.message_id(chat["id"]), "date": int(time.time()),
                   "chat": chat, "from": s.bot}
        if reply_id is not None:
            target = s.messages.get((chat["id"], int(reply_id)))
            if target is None and not (reply.get("allow_sending_without_reply")
                                       or p.get("allow_sending_without_reply")):
                raise Refused("Bad Request: message to be replied not found")
            if target is not None:
                message["reply_to_message"] = target
        if p.get("message_thread_id") is not None:
            message["message_thread_id"] = int(p["message_thread_id"])
        message.update(fields)
        s.messages[(chat["id"], message["message_id"])] = message
        return message

    def get_updates(self, p):
        s = self.state
        offset = int(p.get("offset") or 0)
        limit = min(max(int(p.get("limit") or 100), 1), 100)
        timeout = max(int(p.get("timeout") or 0), 0)
        deadline = time.time() + timeout
        with s.lock:
            s.polls += 1
            mine = s.polls
            s.lock.notify_all()
            if offset:
                s.updates = [u for u in s.updates if u["update_id"] >= offset]
            while not s.updates and time.time() < deadline:
                s.lock.wait(timeout=max(0.0, deadline - time.time()))
                if s.polls != mine:
                    raise Refused("Conflict: terminated by other getUpdates request; make sure that only one bot instance is running", 409)
            return s.updates[:limit]

    # ---- admin ---------------------------------------------------------------------------

    def admin(self, what):
        body = self.raw_body()
        if not secrets.compare_digest(self.headers.get("X-Admin-Token", ""), self.admin_token):
            return self.answer(403, {"error": "admin token"})
        s = self.state
        if what == "sent":
            try:
                with open(s.recorder, encoding="utf-8") as f:
                    return self.answer(200, [json.loads(l) for l in f if l.strip()])
            except FileNotFoundError:
                return self.answer(200, [])
        p = json.loads(body or b"{}")
        with s.lock:
            if what == "message":
                return self.answer(200, self.inject(p))
            if what == "edit":
                key = (int(p["chat_id"]), int(p["message_id"]))
                message = s.messages.get(key)
                if message is None:
                    return self.answer(404, {"error": "no such message"})
                edited = dict(message, text=p["text"], edit_date=int(time.time()))
                edited.pop("entities", None)
                marked = entities_of(p["text"], s.bot["username"])
                if marked:
                    edited["entities"] = marked
                s.messages[key] = edited
                return self.answer(200, s.push("edited_message", edited))
        return self.answer(404, {"error": f"no admin action {what}"})

    def inject(self, p):
        """A message someone sent: the chat becomes known, as Telegram would have it."""
        s = self.state
        chat_id = int(p["chat_id"])
        sender_id = int(p.get("from_id") or chat_id)
        kind = p.get("chat_type") or ("private" if chat_id > 0 else "group")
        sender = {"id": sender_id, "is_bot": bool(p.get("is_bot")),
                  "first_name": p.get("first_name") or "Tester"}
        if kind == "private":
            chat = {"id": chat_id, "type": "private", "first_name": sender["first_name"]}
        else:
            chat = {"id": chat_id, "type": kind, "title": p.get("title") or "A group"}
        s.chats[chat_id] = chat
        message = {"message_id": s.message_id(chat_id), "date": int(time.time()), "chat": chat,
                   "from": sender}
        if p.get("thread_id") is not None:
            message["message_thread_id"] = int(p["thread_id"])
            message["is_topic_message"] = True
        if p.get("reply_to") is not None:
            target = s.messages.get((chat_id, int(p["reply_to"])))
            if target is not None:
                message["reply_to_message"] = {k: v for k, v in target.items() if k != "reply_to_message"}
        text = p.get("text") or ""
        field = "text"
        for kind_ in ("photo", "document"):
            if p.get(f"{kind_}_b64") is not None:
                data = base64.b64decode(p[f"{kind_}_b64"])
                name = p.get("file_name") if kind_ == "document" else None
                file_id = s.store_file(data, kind_, name or "photo.jpg")
                message[kind_] = s.media_object(kind_, file_id, name, p.get("mime_type"))
                field = "caption"
        if text:
            message[field] = text
            marked = entities_of(text, s.bot["username"])
            if marked:
                message["entities" if field == "text" else "caption_entities"] = marked
        s.messages[(chat_id, message["message_id"])] = message
        return s.push("message", message)


def shown(params):
    """Parameters as recorded: a file by its name, size and digest, never its bytes."""
    out = {}
    for k, v in params.items():
        if isinstance(v, dict) and "bytes" in v:
            out[k] = {"file_name": v["file_name"], "size": len(v["bytes"]), "mime": v["mime"],
                      "sha256": hashlib.sha256(v["bytes"]).hexdigest()}
        else:
            out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--recorder", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--username", default="bk_fake_bot")
    args = ap.parse_args()
    token = f"{secrets.randbelow(10**9) + 10**9}:{secrets.token_urlsafe(26)}"
    Handler.state = State(token, args.username, args.recorder)
    Handler.admin_token = secrets.token_hex(16)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    base = f"http://127.0.0.1:{server.server_address[1]}"
    ready = {
        "api_root": base, "bot_token": token, "bot_username": args.username,
        "admin_url": f"{base}/admin", "admin_token": Handler.admin_token,
        "recorder": args.recorder,
    }
    announce(args.ready_file, ready)
    server.serve_forever()


if __name__ == "__main__":
    main()
