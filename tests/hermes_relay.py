#!/usr/bin/env python3
"""Drives the real Hermes relay client (hermes-agent 0.19.0, installed from PyPI by
scripts/test.sh) the way the gateway boots it: GATEWAY_RELAY_* in the environment,
register_relay_adapter(), create_adapter("relay"), connect(). No monkeypatching.

Commands arrive as JSON lines on stdin; every result and every MessageEvent the adapter hands
to its message handler is printed as one JSON line on stdout:
  {"cmd": "connect"}                        -> {"event": "connected", "descriptor": {...}}
                                               or {"event": "connect_failed", "error": "..."}
  {"cmd": "send", "chat_id", "text"}        -> {"event": "sent", "success", "message_id", "error"}
  {"cmd": "chat_info", "chat_id"}           -> {"event": "chat_info", "info": {...}}
  {"cmd": "disconnect"}                     -> {"event": "disconnected"}
  {"cmd": "dial", "ttl": N, "origin": str?} -> {"event": "dial", "status": int}
      (a bare upgrade with a token from Hermes' own auth.make_upgrade_token, N seconds to live)
  {"cmd": "send_policy"}                    -> {"event": "policy", "declared": bool}
      (Hermes' own send_relay_policy(), from its config.yaml under $HERMES_HOME)
  {"cmd": "pairing", "op": "approve"|"revoke"|"is_approved", "platform", "arg"}
                                            -> {"event": "pairing", "result": ...}
      (Hermes' own gateway.pairing.PairingStore under $HERMES_HOME, with its .env loaded into
      the environment first, as the hermes CLI does at start)
"""

import asyncio
import json
import os
import sys


def emit(**fields):
    print(json.dumps(fields), flush=True)


async def main():
    from gateway.config import PlatformConfig
    from gateway.platform_registry import platform_registry
    from gateway.relay import register_relay_adapter, relay_url
    from gateway.relay.ws_transport import _ws_dial_url

    adapter = None

    async def on_message(event):
        src = event.source
        emit(
            event="message",
            text=event.text,
            message_id=event.message_id,
            platform=getattr(src.platform, "value", str(src.platform)),
            chat_id=src.chat_id,
            chat_type=src.chat_type,
            user_id=src.user_id,
            user_id_alt=src.user_id_alt,
            user_name=src.user_name,
            reply_to=event.reply_to_message_id,
        )
        return None

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        raw = await reader.readline()
        if not raw:
            break
        cmd = json.loads(raw)
        name = cmd["cmd"]
        try:
            if name == "connect":
                assert register_relay_adapter(), "GATEWAY_RELAY_URL is not set"
                adapter = platform_registry.create_adapter("relay", PlatformConfig(enabled=True))
                adapter.set_message_handler(on_message)
                ok = await adapter.connect()
                if ok:
                    d = adapter.descriptor
                    emit(event="connected", descriptor={
                        "platform": d.platform, "label": d.label,
                        "max_message_length": d.max_message_length,
                        "supports_edit": d.supports_edit, "len_unit": d.len_unit,
                        "markdown_dialect": d.markdown_dialect,
                    })
                else:
                    emit(event="connect_failed", error="connect() returned False")
            elif name == "send":
                r = await adapter.send(cmd["chat_id"], cmd["text"])
                emit(event="sent", success=r.success, message_id=r.message_id, error=r.error)
            elif name == "chat_info":
                emit(event="chat_info", info=await adapter.get_chat_info(cmd["chat_id"]))
            elif name == "disconnect":
                await adapter.disconnect()
                emit(event="disconnected")
            elif name == "dial":
                import websockets
                from gateway.relay.auth import make_upgrade_token

                token = make_upgrade_token(
                    os.environ["GATEWAY_RELAY_ID"], os.environ["GATEWAY_RELAY_SECRET"], cmd["ttl"]
                )
                headers = {"Authorization": f"Bearer {token}"}
                if cmd.get("origin"):
                    headers["Origin"] = cmd["origin"]
                try:
                    async with websockets.connect(
                        _ws_dial_url(relay_url()), additional_headers=headers
                    ):
                        emit(event="dial", status=101)
                except websockets.exceptions.InvalidStatus as e:
                    emit(event="dial", status=e.response.status_code)
            elif name == "send_policy":
                from gateway.relay import send_relay_policy

                emit(event="policy", declared=send_relay_policy())
            elif name == "pairing":
                from hermes_cli.env_loader import load_hermes_dotenv
                from gateway.pairing import PairingStore

                load_hermes_dotenv(hermes_home=os.environ["HERMES_HOME"])
                store = PairingStore()
                op, platform, arg = cmd["op"], cmd["platform"], cmd["arg"]
                if op == "approve":
                    result = store.approve_code(platform, arg)
                elif op == "revoke":
                    result = store.revoke(platform, arg)
                else:
                    result = store.is_approved(platform, arg)
                emit(event="pairing", op=op, result=result)
            else:
                emit(event="error", error=f"unknown command {name}")
        except Exception as e:  # report, keep serving: the test decides
            emit(event="connect_failed" if name == "connect" else "error", error=repr(e))
    if adapter is not None:
        await adapter.disconnect()


asyncio.run(main())
