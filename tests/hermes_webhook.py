#!/usr/bin/env python3
"""Runs Hermes' own webhook adapter (hermes-agent 0.19.0, from PyPI in target/hermes-venv) the
way the gateway builds it: a PlatformConfig whose extra holds host, port and routes. Only the
message handler is replaced, by one that prints the event and answers it through the
adapter's own send() (the route delivers to "log").

Prints JSON lines on stdout:
  {"event": "listening"}
  {"event": "message", "text", "chat_id", "user_id", "message_id"}   (each delivery)
  {"event": "sent", "success", "error"}                              (its reply)
and runs until stdin closes; on a failure {"event": "error", "error"} and exit 1.

Environment: HERMES_HOME (a temporary one), WEBHOOK_PORT, ROUTES (JSON: the routes mapping),
RATE_LIMIT (deliveries a minute, default Hermes' 30).
"""

import asyncio
import json
import os
import sys


def emit(**fields):
    print(json.dumps(fields, ensure_ascii=False), flush=True)


async def main():
    from gateway.config import PlatformConfig
    from gateway.platforms.webhook import WebhookAdapter

    config = PlatformConfig(
        enabled=True,
        extra={
            "host": "127.0.0.1",
            "port": int(os.environ["WEBHOOK_PORT"]),
            "routes": json.loads(os.environ["ROUTES"]),
            "rate_limit": int(os.environ.get("RATE_LIMIT", "30")),
        },
    )
    adapter = WebhookAdapter(config)

    async def handle_message(event):
        emit(
            event="message",
            text=event.text,
            chat_id=event.source.chat_id,
            user_id=event.source.user_id,
            message_id=event.message_id,
        )
        result = await adapter.send(event.source.chat_id, "reply from the agent")
        emit(event="sent", success=bool(result.success), error=result.error)

    adapter.handle_message = handle_message
    if not await adapter.connect():
        emit(event="error", error="connect() returned False")
        return 1
    emit(event="listening")
    # Until the test closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await adapter.disconnect()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except Exception as exc:  # the test reads why
        emit(event="error", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
