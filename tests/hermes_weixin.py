#!/usr/bin/env python3
"""Runs Hermes' own Weixin adapter (hermes-agent 0.19.0, from PyPI in target/hermes-venv)
against an iLink server — our fake, in the tests — the way the gateway builds it: a
PlatformConfig with the token, the account id and the base URL. No monkeypatching of the
protocol: only the message handler is Hermes' gateway's, replaced by one that prints the event.

Prints JSON lines on stdout:
  {"event": "connected"}
  {"event": "message", "text", "chat_id", "user_id", "message_id"}   (the first message)
  {"event": "sent", "success", "error"}                              (its reply, REPLY)
and exits 0; on any failure {"event": "error", "error"} and exit 1.

Environment: HERMES_HOME (a temporary one), ILINK_BASE_URL, ILINK_TOKEN, ILINK_ACCOUNT_ID,
REPLY (the text to answer with).
"""

import asyncio
import os

from hermes_harness import answer, connect, emit_message, run


async def main():
    from gateway.config import PlatformConfig
    from gateway.platforms.weixin import WeixinAdapter

    os.environ.setdefault("WEIXIN_ALLOW_ALL_USERS", "true")
    config = PlatformConfig(
        enabled=True,
        token=os.environ["ILINK_TOKEN"],
        extra={
            "account_id": os.environ["ILINK_ACCOUNT_ID"],
            "base_url": os.environ["ILINK_BASE_URL"],
            "dm_policy": "open",
            # Hermes batches texts for 3 s; the test need not wait that long.
            "text_batch_delay_seconds": 0.1,
        },
    )
    adapter = WeixinAdapter(config)
    got = asyncio.get_running_loop().create_future()

    async def handle_message(event):
        if not got.done():
            got.set_result(event)

    adapter.handle_message = handle_message
    if not await connect(adapter, "connected"):
        return 1
    try:
        event = await asyncio.wait_for(got, timeout=30)
        emit_message(event)
        await answer(adapter, event, os.environ.get("REPLY", "reply"))
    finally:
        await adapter.disconnect()
    return 0


if __name__ == "__main__":
    run(main)
