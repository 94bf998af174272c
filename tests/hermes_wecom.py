#!/usr/bin/env python3
"""Runs one of Hermes' own WeCom adapters (hermes-agent 0.19.0, from PyPI in target/hermes-venv)
against a WeCom server — our fake, in the tests — the way the gateway builds it: a PlatformConfig
with the credentials. Only the message handler is Hermes' gateway's, replaced by one that
prints the event and answers it through the adapter's own send().

MODE=bot: the AI Bot adapter (`plugins/platforms/wecom/adapter.py`) dials WECOM_WS_URL.
MODE=callback: the self-built app adapter (`callback_adapter.py`) serves its callback on
CALLBACK_PORT; its calls to qyapi.weixin.qq.com are routed to API_ROOT (as a hosts-file entry
would: the same requests, another address), since the adapter names that host in its code.

Prints JSON lines on stdout:
  {"event": "connected"}
  {"event": "message", "text", "chat_id", "user_id", "message_id"}   (each message)
  {"event": "sent", "success", "error"}                              (its reply)
and runs until stdin closes; on a failure {"event": "error", "error"} and exit 1.
"""

import asyncio
import os

from hermes_harness import answer, emit_message, run, serve


def route_wecom_api_to(root):
    import httpx

    target = httpx.URL(root)
    original = httpx.AsyncHTTPTransport.handle_async_request

    async def routed(self, request):
        if request.url.host == "qyapi.weixin.qq.com":
            request.url = request.url.copy_with(scheme=target.scheme, host=target.host, port=target.port)
        return await original(self, request)

    httpx.AsyncHTTPTransport.handle_async_request = routed


async def main():
    from gateway.config import PlatformConfig

    mode = os.environ["MODE"]
    if mode == "bot":
        from plugins.platforms.wecom.adapter import WeComAdapter

        os.environ.setdefault("WECOM_ALLOW_ALL_USERS", "true")
        os.environ.setdefault("HERMES_WECOM_TEXT_BATCH_DELAY_SECONDS", "0")
        adapter = WeComAdapter(PlatformConfig(enabled=True, extra={
            "bot_id": os.environ["WECOM_BOT_ID"],
            "secret": os.environ["WECOM_SECRET"],
            "websocket_url": os.environ["WECOM_WS_URL"],
            "dm_policy": "open",
        }))
    else:
        from plugins.platforms.wecom.callback_adapter import WecomCallbackAdapter

        route_wecom_api_to(os.environ["API_ROOT"])
        adapter = WecomCallbackAdapter(PlatformConfig(enabled=True, extra={
            "host": "127.0.0.1",
            "port": int(os.environ["CALLBACK_PORT"]),
            "corp_id": os.environ["CORP_ID"],
            "corp_secret": os.environ["CORP_SECRET"],
            "agent_id": os.environ["AGENT_ID"],
            "token": os.environ["CALLBACK_TOKEN"],
            "encoding_aes_key": os.environ["AES_KEY"],
        }))

    # As the gateway's handler does, the answer runs on its own: the AI Bot adapter reads its
    # socket in the same task that hands a message over, so waiting here would hold the reply.
    async def handle_message(event):
        emit_message(event)
        reply = answer(adapter, event, "reply from hermes", reply_to=event.message_id)
        tasks.add(asyncio.create_task(reply))

    tasks = set()
    return await serve(adapter, handle_message, "connected")


if __name__ == "__main__":
    run(main)
