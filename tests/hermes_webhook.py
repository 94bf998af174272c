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

import json
import os

from hermes_harness import answer, emit_message, run, serve


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
        emit_message(event)
        await answer(adapter, event, "reply from the agent")

    return await serve(adapter, handle_message, "listening")


if __name__ == "__main__":
    run(main)
