"""What the scripts that run one of Hermes' own adapters for a test share: JSON lines on
stdout, the line a received message becomes, connecting or saying why not, running until the
test closes stdin, and exit 1 with {"event": "error", "error"} on any failure."""

import asyncio
import json
import sys


def emit(**fields):
    print(json.dumps(fields, ensure_ascii=False), flush=True)


def emit_message(event):
    """A MessageEvent the adapter handed to the gateway, as the tests read it."""
    emit(
        event="message",
        text=event.text,
        chat_id=event.source.chat_id,
        user_id=event.source.user_id,
        message_id=event.message_id,
    )


async def answer(adapter, event, text, **options):
    """The adapter's own send() of `text` to the event's chat; says how it went."""
    result = await adapter.send(event.source.chat_id, text, **options)
    emit(event="sent", success=bool(result.success), error=result.error)


async def serve(adapter, handle_message, ready):
    """Hands the adapter's messages to `handle_message` (in place of the gateway's handler),
    connects, and serves until stdin closes; the exit code."""
    adapter.handle_message = handle_message
    if not await connect(adapter, ready):
        return 1
    await serve_until_stdin_closes(adapter)
    return 0


async def connect(adapter, ready):
    """The adapter's connect(); `ready` is said once it has connected."""
    if not await adapter.connect():
        emit(event="error", error="connect() returned False")
        return False
    emit(event=ready)
    return True


async def serve_until_stdin_closes(adapter):
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await adapter.disconnect()


def run(main):
    """Runs the coroutine function `main` and exits with what it returns."""
    try:
        sys.exit(asyncio.run(main()))
    except Exception as exc:  # the test reads why
        emit(event="error", error=f"{type(exc).__name__}: {exc}")
        sys.exit(1)
