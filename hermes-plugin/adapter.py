"""One Hermes platform adapter per platform bridgekeeper runs, all talking through the one
`bridgekeeper run` child (`child.py`). The access decision is bridgekeeper's: a message reaches
this adapter only once bridgekeeper's policy let it in (strangers got bridgekeeper's pairing
code and never reach Hermes), so the adapter says its authorization is upstream and Hermes does
not judge the sender a second time.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Callable, Dict, Optional

from gateway.config import Platform, PlatformConfig
from gateway.platforms.base import BasePlatformAdapter, MessageEvent, MessageType, SendResult

from . import translate
from .child import Bridgekeeper

logger = logging.getLogger(__name__)


class BridgekeeperAdapter(BasePlatformAdapter):
    def __init__(self, config: PlatformConfig, facts: translate.Facts, child: Bridgekeeper) -> None:
        super().__init__(config, Platform(facts.platform))
        self.facts = facts
        self.child = child
        self.own_ids: frozenset = frozenset()
        self.MAX_MESSAGE_LENGTH = facts.text_limit
        self.SUPPORTS_MESSAGE_EDITING = facts.edits

    @property
    def authorization_is_upstream(self) -> bool:
        return True

    @property
    def message_len_fn(self) -> Callable[[str], int]:
        return translate.utf16_len if self.facts.text_unit == "utf16" else len

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self, *, is_reconnect: bool = False) -> bool:
        if not await self.child.attach(self.facts.platform, self):
            self._set_fatal_error("bridgekeeper_unavailable", "bridgekeeper did not start", retryable=True)
            return False
        state = self.child.state_of(self.facts.platform)
        if state is not None and state.get("state") in translate.TERMINAL:
            await self.on_state(state)
            return False
        self._mark_connected()
        logger.info("bridgekeeper: serving %s (%s)", self.facts.platform, self.facts.because)
        return True

    async def disconnect(self) -> None:
        await self.child.detach(self.facts.platform)
        self._mark_disconnected()

    # -- what the child hands over ----------------------------------------------------------

    async def on_inbound(self, message: dict) -> None:
        source = self.build_source(**translate.source_fields(message, self.facts))
        event = MessageEvent(
            message_type=MessageType(translate.message_type(message)),
            source=source,
            raw_message=message,
            **translate.event_fields(message, self.own_ids),
        )
        await self.handle_message(event)

    async def on_state(self, event: dict) -> None:
        state = str(event.get("state"))
        why = translate.TERMINAL.get(state)
        if why is None or self.has_fatal_error:
            return
        logger.error("bridgekeeper: %s is %s: %s", self.facts.platform, state, why)
        self._set_fatal_error(state, f"{self.facts.label}: {why}", retryable=False)
        await self._notify_fatal_error()

    def on_account(self, event: dict) -> None:
        self.own_ids = translate.account_ids(event)

    # -- outbound ---------------------------------------------------------------------------

    async def _command(self, kind: str, **fields: Any) -> dict:
        return await self.child.request(kind, self.facts.platform, **fields)

    async def send(
        self,
        chat_id: str,
        content: str,
        reply_to: Optional[str] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> SendResult:
        thread = (metadata or {}).get("thread_id")
        first: Optional[SendResult] = None
        chunks = self.truncate_message(content, self.MAX_MESSAGE_LENGTH, len_fn=self.message_len_fn)
        for i, chunk in enumerate(chunks):
            result = await self._command(
                "send_text", chat=chat_id, text=chunk, reply_to=reply_to if i == 0 else None, thread=thread
            )
            sent = SendResult(**translate.send_outcome(result))
            if not sent.success:
                if (result.get("error") or {}).get("unconfirmed"):
                    logger.warning("bridgekeeper: %s send unconfirmed: %s", self.facts.platform, result["error"])
                return sent
            first = first or sent
        return first or SendResult(success=True)

    async def edit_message(
        self, chat_id: str, message_id: str, content: str, *, finalize: bool = False
    ) -> SendResult:
        if "edit" not in self.facts.ops:
            return SendResult(success=False, error="Not supported")
        result = await self._command("edit", chat=chat_id, message_id=message_id, text=content)
        return SendResult(**translate.send_outcome(result))

    async def delete_message(self, chat_id: str, message_id: str) -> bool:
        if "delete" not in self.facts.ops:
            return False
        result = await self._command("delete", chat=chat_id, message_id=message_id)
        return bool(result.get("ok"))

    # Typing is not waited for: nothing depends on its result, and Hermes awaits these between
    # a reply and the end of the turn, where a wait holds back the chat's next message.
    async def send_typing(self, chat_id: str, metadata: Any = None) -> None:
        if "typing" in self.facts.ops:
            self.child.hand(self._command("typing", chat=chat_id, state="composing"))

    async def stop_typing(self, chat_id: str) -> None:
        if "typing" in self.facts.ops:
            self.child.hand(self._command("typing", chat=chat_id, state="paused"))

    async def get_chat_info(self, chat_id: str) -> Dict[str, Any]:
        if "chat_info" not in self.facts.ops:
            return translate.chat_info(chat_id, {"ok": False})
        return translate.chat_info(chat_id, await self._command("chat_info", chat=chat_id))

    async def _send_file(
        self, kind: str, chat_id: str, path: str, caption: Optional[str], file_name: Optional[str] = None
    ) -> Optional[SendResult]:
        """A file sent as the platform's own media message; `None` when the connector cannot,
        so that Hermes' own fallback (the path as text) happens."""
        if "send_media" not in self.facts.ops:
            return None
        result = await self._command(
            "send_media",
            chat=chat_id,
            path=os.path.abspath(path),
            kind=translate.MEDIA_KINDS[kind],
            caption=caption or None,
            file_name=file_name,
        )
        return SendResult(**translate.send_outcome(result))

    async def send_image_file(self, chat_id, image_path, caption=None, reply_to=None, metadata=None, **kwargs):
        sent = await self._send_file("image", chat_id, image_path, caption)
        return sent or await super().send_image_file(chat_id, image_path, caption, reply_to, metadata, **kwargs)

    async def send_image(self, chat_id, image_url, caption=None, reply_to=None, metadata=None):
        # A URL is the network's to fetch, not ours; a local file goes as a photo.
        local = image_url[len("file://"):] if image_url.startswith("file://") else image_url
        if os.path.isabs(local) and os.path.isfile(local):
            sent = await self._send_file("image", chat_id, local, caption)
            if sent is not None:
                return sent
        return await super().send_image(chat_id, image_url, caption, reply_to, metadata)

    async def send_voice(self, chat_id, audio_path, caption=None, reply_to=None, metadata=None, **kwargs):
        sent = await self._send_file("voice", chat_id, audio_path, caption)
        return sent or await super().send_voice(chat_id, audio_path, caption, reply_to, metadata, **kwargs)

    async def send_video(self, chat_id, video_path, caption=None, reply_to=None, metadata=None, **kwargs):
        sent = await self._send_file("video", chat_id, video_path, caption)
        return sent or await super().send_video(chat_id, video_path, caption, reply_to, metadata, **kwargs)

    async def send_document(
        self, chat_id, file_path, caption=None, file_name=None, reply_to=None, metadata=None, **kwargs
    ):
        sent = await self._send_file("document", chat_id, file_path, caption, file_name)
        return sent or await super().send_document(chat_id, file_path, caption, file_name, reply_to, metadata, **kwargs)

    async def send_animation(self, chat_id, animation_url, caption=None, reply_to=None, metadata=None):
        if os.path.isabs(animation_url) and os.path.isfile(animation_url):
            sent = await self._send_file("animation", chat_id, animation_url, caption)
            if sent is not None:
                return sent
        return await super().send_animation(chat_id, animation_url, caption, reply_to, metadata)
