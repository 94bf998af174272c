"""The one `bridgekeeper run` child of the gateway, which every adapter of this plugin talks
through over the gateway link (JSON lines on its stdin and stdout).

It starts when the first adapter connects and stops when the last one disconnects. If it dies
unasked, it is started again with growing waits, and Hermes' log says so. No orphan is left:
bridgekeeper stops when its stdin closes, which the kernel does when the gateway dies however
it dies.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from pathlib import Path
from typing import Any, Optional, Protocol

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
# A request's wait beyond bridgekeeper's own command timeout, which answers it first.
REQUEST_TIMEOUT_S = 75.0
# How long a clean stop may take: bridgekeeper's own ladder gives each connector 5 s on
# stdin's end and 3 s on SIGTERM.
STOP_WAIT_S = 10.0
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
# A child that ran this long before dying starts the backoff over.
HEALTHY_AFTER_S = 60.0
# The longest line bridgekeeper writes to its gateway (its default limit, 4 MiB) and more.
LINE_LIMIT = 8 * 1024 * 1024
# Messages for a platform whose adapter has not connected yet are held, up to this many.
HELD_PER_PLATFORM = 1000


class Listener(Protocol):
    """An adapter, as the child hands it what its connector said."""

    async def on_inbound(self, message: dict) -> None: ...

    async def on_state(self, event: dict) -> None: ...

    def on_account(self, event: dict) -> None: ...


class Bridgekeeper:
    """The `bridgekeeper run` process: started, watched and stopped for the adapters."""

    def __init__(self, binary: str, home: Path, served: tuple = ()) -> None:
        self.binary = binary
        self.home = home
        # The platforms bridgekeeper would run from Hermes' settings (`platforms --json`).
        self.served = tuple(served)
        self.starts = 0
        self._listeners: dict = {}
        self._held: dict = {}
        self._states: dict = {}
        self._pending: dict = {}
        self._ids = itertools.count(1)
        self._process: Optional[asyncio.subprocess.Process] = None
        self._ready = asyncio.Event()
        self._task: Optional[asyncio.Task] = None
        self._handing: set = set()
        self._stopping = False

    @property
    def pid(self) -> Optional[int]:
        return self._process.pid if self._process and self._process.returncode is None else None

    def state_of(self, connector: str) -> Optional[dict]:
        return self._states.get(connector)

    async def attach(self, connector: str, listener: Listener) -> bool:
        """Serves `connector`'s messages to `listener`, starting the child if it is not running;
        whether bridgekeeper said it is ready in time."""
        self._listeners[connector] = listener
        if self._task is None or self._task.done():
            self._stopping = False
            self._ready.clear()
            self._task = asyncio.get_running_loop().create_task(self._keep_running())
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            logger.error("bridgekeeper: `%s run` did not say it was ready in %.0f s", self.binary, READY_TIMEOUT_S)
            return False
        for message in self._held.pop(connector, []):
            await listener.on_inbound(message)
        return True

    async def detach(self, connector: str) -> None:
        """`connector`'s adapter is gone; the child stops with the last one."""
        self._listeners.pop(connector, None)
        if not self._listeners:
            await self.stop()

    async def request(self, kind: str, connector: str, **fields: Any) -> dict:
        """One command of the gateway link; its `result` line (an `error` of our own when the
        child is not there to answer)."""
        try:
            await asyncio.wait_for(self._ready.wait(), READY_TIMEOUT_S)
        except asyncio.TimeoutError:
            return _failure("bridgekeeper_unavailable", "bridgekeeper is not running")
        process = self._process
        if process is None or process.stdin is None:
            return _failure("bridgekeeper_unavailable", "bridgekeeper is not running")
        ident = f"hermes-{next(self._ids)}"
        answer = asyncio.get_running_loop().create_future()
        self._pending[ident] = answer
        line = {"id": ident, "type": kind, "connector": connector}
        line.update({k: v for k, v in fields.items() if v is not None})
        try:
            process.stdin.write((json.dumps(line, ensure_ascii=False) + "\n").encode())
            await process.stdin.drain()
            return await asyncio.wait_for(answer, REQUEST_TIMEOUT_S)
        except (BrokenPipeError, ConnectionResetError):
            return _failure("bridgekeeper_exited", "bridgekeeper exited before it answered", unconfirmed=True)
        except asyncio.TimeoutError:
            return _failure("timeout", "bridgekeeper did not answer", unconfirmed=True)
        finally:
            self._pending.pop(ident, None)

    async def stop(self) -> None:
        """Closes the child's stdin (bridgekeeper then stops its connectors and exits); SIGTERM,
        then SIGKILL, if it takes too long."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            for signal, wait in ((None, STOP_WAIT_S), ("terminate", 3.0), ("kill", 3.0)):
                if signal:
                    getattr(process, signal)()
                try:
                    await asyncio.wait_for(process.wait(), wait)
                    break
                except asyncio.TimeoutError:
                    continue
            logger.info("bridgekeeper: stopped (exit %s)", process.returncode)
        if self._task is not None:
            # A task between two starts is only sleeping out its backoff.
            done, _ = await asyncio.wait({self._task}, timeout=1.0)
            if not done:
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _keep_running(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping:
            started = loop.time()
            code = await self._run_once()
            if self._stopping:
                return
            if loop.time() - started >= HEALTHY_AFTER_S:
                failures = 0
            delay = min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2**failures)
            failures += 1
            logger.warning(
                "bridgekeeper: `bridgekeeper run` exited unasked (%s); starting it again in %.0f s", code, delay
            )
            await asyncio.sleep(delay)

    def _only(self) -> list:
        """`run --platforms` for the platforms Hermes enables, when it enables fewer than
        bridgekeeper would run: a WhatsApp session Hermes leaves off (no `WHATSAPP_ENABLED`)
        is then not connected by bridgekeeper either. Empty: run them all."""
        try:
            from gateway.config import load_gateway_config

            enabled = {str(p.value) for p in load_gateway_config().get_connected_platforms()}
        except Exception as e:  # an older or newer Hermes: run what bridgekeeper would
            logger.debug("bridgekeeper: cannot ask Hermes which platforms it enables: %s", e)
            return []
        only = [p for p in self.served if p in enabled]
        left = [p for p in self.served if p not in enabled]
        if not only or not left:
            return []
        logger.info(
            "bridgekeeper: not running %s: bridgekeeper could, but Hermes does not enable it",
            ", ".join(left),
        )
        return ["--platforms", ",".join(only)]

    async def _run_once(self) -> Optional[int]:
        env = dict(os.environ, HERMES_HOME=str(self.home))
        try:
            process = await asyncio.create_subprocess_exec(
                self.binary,
                "run",
                *self._only(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
                limit=LINE_LIMIT,
            )
        except OSError as e:
            logger.error("bridgekeeper: cannot start %s: %s", self.binary, e)
            return None
        self._process = process
        self.starts += 1
        logger.info("bridgekeeper: started `bridgekeeper run` (pid %s) for %s", process.pid, self.home)
        stderr = asyncio.get_running_loop().create_task(_log_stderr(process.stderr))
        try:
            assert process.stdout is not None
            while True:
                try:
                    raw = await process.stdout.readline()
                except ValueError:
                    logger.warning("bridgekeeper: a line longer than %d bytes was skipped", LINE_LIMIT)
                    continue
                if not raw:
                    break
                try:
                    event = json.loads(raw)
                except ValueError:
                    logger.warning("bridgekeeper: a line that is not JSON was skipped")
                    continue
                if isinstance(event, dict):
                    await self._on_event(event)
        finally:
            self._ready.clear()
            code = await process.wait()
            await asyncio.gather(stderr, return_exceptions=True)
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_result(
                        _failure("bridgekeeper_exited", "bridgekeeper exited before it answered", unconfirmed=True)
                    )
        return code

    def hand(self, work: Any) -> None:
        """Runs `work` in a task of its own, kept until done: what an adapter does with an event
        (Hermes may answer a message, or tear an adapter down, by sending through this child,
        whose results the reader must be free to read), or a command nobody waits for."""
        task = asyncio.get_running_loop().create_task(work)
        self._handing.add(task)
        task.add_done_callback(self._handing.discard)

    async def _on_event(self, event: dict) -> None:
        kind = event.get("type")
        connector = str(event.get("connector") or "")
        if kind == "result":
            answer = self._pending.get(str(event.get("id")))
            if answer is not None and not answer.done():
                answer.set_result(event)
        elif kind == "inbound":
            listener = self._listeners.get(connector)
            message = event.get("message") or {}
            if listener is not None:
                self.hand(listener.on_inbound(message))
            else:
                held = self._held.setdefault(connector, [])
                if not held:
                    logger.warning(
                        "bridgekeeper: a %s message came and Hermes runs no %s adapter: it is held until "
                        "one connects (is the platform enabled in Hermes' settings?)",
                        connector, connector,
                    )
                if len(held) < HELD_PER_PLATFORM:
                    held.append(message)
                else:
                    logger.error("bridgekeeper: %s has no adapter and %d messages waiting: one dropped", connector, len(held))
        elif kind == "ready":
            logger.info("bridgekeeper: ready, running %s", ", ".join(event.get("connectors") or []) or "nothing")
            self._ready.set()
        elif kind == "connector_state":
            self._states[connector] = event
            listener = self._listeners.get(connector)
            if listener is not None:
                self.hand(listener.on_state(event))
        elif kind == "account":
            listener = self._listeners.get(connector)
            if listener is not None:
                listener.on_account(event)
        elif kind == "connection":
            status = event.get("status") or {}
            logger.info("bridgekeeper: %s connection %s %s", connector, status.get("state"), status.get("reason") or "")
        elif kind == "pairing_requested":
            user = str(event.get("user") or "")
            platform = event.get("platform") or connector
            logger.info(
                "bridgekeeper: a stranger (%s) on %s was sent a pairing code; approve it with "
                "`hermes pairing approve %s CODE` or `bridgekeeper pairing approve %s CODE`",
                "…" + user[-4:], platform, platform, platform,
            )
        elif kind == "alert":
            logger.warning("bridgekeeper alert %s (%s): %s", event.get("code"), connector or "-", event.get("message"))
        elif kind == "qr":
            logger.warning("bridgekeeper: %s wants linking: run `bridgekeeper whatsapp link`", connector)
        elif kind == "line_error":
            logger.warning("bridgekeeper refused a line of ours: %s", event.get("message"))


async def _log_stderr(stream: Optional[asyncio.StreamReader]) -> None:
    """bridgekeeper's own stderr (its start-up lines, never a secret) into Hermes' log."""
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:
            continue
        if not raw:
            return
        logger.info("%s", raw.decode(errors="replace").rstrip())


def _failure(code: str, message: str, unconfirmed: bool = False) -> dict:
    error: dict = {"code": code, "message": message}
    if unconfirmed:
        error["unconfirmed"] = True
    return {"ok": False, "error": error}
