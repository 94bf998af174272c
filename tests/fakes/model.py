#!/usr/bin/env python3
"""A local fake of an OpenAI-compatible model server, so that the real Hermes gateway answers
messages offline in tests and benchmarks.

Written from the chat-completions wire format as Hermes' `provider: custom` client uses it: it
lists models, then POSTs /v1/chat/completions, streaming (server-sent events, `data: {chunk}`
lines and `data: [DONE]`) or not. The answer is decided by the last user message: where it holds
`ask:<word>`, the answer is `answer:<word>` (Hermes adds notes and sender names around what the
user wrote, so the test's word is looked for, not the whole text); else `answer:?`. Every
completion request is recorded (one JSON a line: the asked word, whether it streamed, how many
messages). Standard library only; listens on 127.0.0.1, port 0; writes a ready file (JSON:
base_url, model, recorder) once serving.
"""

import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ready import announce

MODEL = "fake-model"
ASK = re.compile(r"ask:([A-Za-z0-9_-]+)")


def last_user_text(messages):
    for m in reversed(messages):
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return content or ""
    return ""


def answer_for(messages):
    found = ASK.findall(last_user_text(messages))
    return f"answer:{found[-1]}" if found else "answer:?"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.rstrip("/").endswith("/models"):
            self.reply(200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]})
        else:
            self.reply(404, {"error": {"message": "not here", "type": "not_found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.reply(400, {"error": {"message": "not JSON", "type": "invalid_request_error"}})
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self.reply(404, {"error": {"message": "not here", "type": "not_found"}})
        messages = body.get("messages") or []
        text = answer_for(messages)
        stream = bool(body.get("stream"))
        self.server.record({"asked": text, "stream": stream, "messages": len(messages)})
        created = int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
        if not stream:
            return self.reply(200, {
                "id": "chatcmpl-fake", "object": "chat.completion", "created": created, "model": MODEL,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": usage,
            })
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": created, "model": MODEL}
        events = [
            dict(chunk, choices=[{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]),
            dict(chunk, choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=usage),
        ]
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder):
        super().__init__(("127.0.0.1", 0), Handler)
        self.recorder = recorder
        self.lock = threading.Lock()

    def record(self, entry):
        with self.lock, open(self.recorder, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(entry, at=time.time())) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready-file", required=True)
    parser.add_argument("--recorder", required=True)
    args = parser.parse_args()
    server = Server(args.recorder)
    base = f"http://127.0.0.1:{server.server_address[1]}/v1"
    announce(args.ready_file, {"base_url": base, "model": MODEL, "recorder": args.recorder})
    server.serve_forever()


if __name__ == "__main__":
    main()
