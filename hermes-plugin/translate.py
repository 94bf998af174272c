"""bridgekeeper's gateway-link lines as Hermes' types, and back. Pure: no I/O, no Hermes import.

The link's `inbound` message (bridgekeeper's PROTOCOL.md) carries the network's own ids, the
same Hermes' adapters use (Telegram's numeric chat and user ids, WhatsApp JIDs, iLink user ids,
`<corp>:<user>` for a WeCom app, `webhook:<route>:<delivery>`), so they go into Hermes'
session source unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

# A media kind of the link as Hermes' `MessageType` value.
MESSAGE_TYPES = {
    "image": "photo",
    "video": "video",
    "gif": "video",
    "audio": "audio",
    "voice": "voice",
    "document": "document",
    "sticker": "sticker",
    "location": "location",
}

# What `send_media` is told for each of Hermes' media sends.
MEDIA_KINDS = {
    "image": "image",
    "voice": "voice",
    "video": "video",
    "document": "document",
    "animation": "gif",
}

# Error codes of the link for a command that was never written to the network: safe to try
# again. Everything else either may have gone out (`connector_exited`, `timeout` are
# unconfirmed) or will not succeed on a retry.
RETRYABLE = frozenset({"queue_full", "rate_limited"})

# Connector states after which bridgekeeper will not start the connector again by itself.
TERMINAL = {
    "needs_relink": "the account's login is gone: link it again (bridgekeeper whatsapp link / weixin link)",
    "needs_token": "the network refused the credential: fix the token in Hermes' settings",
    "conflict": "another client took over the account's connection",
    "failed": "bridgekeeper gave up restarting the connector (see bridge.log)",
}


@dataclass(frozen=True)
class Facts:
    """What bridgekeeper says of a platform it runs (`bridgekeeper platforms --json`)."""

    platform: str
    label: str
    because: str
    text_limit: int
    text_unit: str
    edits: bool
    groups: bool
    direct_chat_type: str
    ops: frozenset

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> "Facts":
        return cls(
            platform=str(v["platform"]),
            label=str(v.get("label") or v["platform"]),
            because=str(v.get("because") or ""),
            text_limit=int(v.get("text_limit") or 4096),
            text_unit=str(v.get("text_unit") or "chars"),
            edits=bool(v.get("edits")),
            groups=bool(v.get("groups")),
            direct_chat_type=str(v.get("direct_chat_type") or "dm"),
            ops=frozenset(v.get("ops") or ()),
        )


def served(answer: Mapping[str, Any]) -> list:
    """The platforms in `bridgekeeper platforms --json`'s answer, as `Facts`."""
    return [Facts.from_json(p) for p in answer.get("platforms") or []]


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def message_type(message: Mapping[str, Any]) -> str:
    """Hermes' `MessageType` value for an inbound message."""
    media = message.get("media") or {}
    kind = MESSAGE_TYPES.get(str(media.get("kind") or ""))
    if kind:
        return kind
    if str(message.get("text") or "").startswith("/"):
        return "command"
    return "text"


def source_fields(message: Mapping[str, Any], facts: Facts) -> dict:
    """The keyword arguments of `BasePlatformAdapter.build_source` for an inbound message."""
    group = bool(message.get("is_group"))
    sender_alt = message.get("sender_alt")
    return {
        "chat_id": str(message["chat"]),
        # A direct chat is named after the person, as Hermes' own adapters name it.
        "chat_name": message.get("chat_name") or (None if group else message.get("push_name")) or None,
        "chat_type": "group" if group else facts.direct_chat_type,
        "user_id": str(message["sender"]),
        # Hermes' Weixin and WeCom adapters, whose networks give no name, use the id.
        "user_name": message.get("push_name") or str(message["sender"]),
        "thread_id": message.get("thread") or None,
        "user_id_alt": sender_alt or None,
        # In a direct chat the chat is the sender, so the sender's other id is the chat's.
        "chat_id_alt": None if group else (sender_alt or None),
        "message_id": str(message["id"]),
        "is_bot": bool(message.get("sender_is_bot")),
    }


def context_text(lines: Sequence[Mapping[str, Any]]) -> Optional[str]:
    """A group's lines bridgekeeper held back for want of a mention, as Hermes' channel context
    (oldest first, one `name: text` a line)."""
    said = [f"{line.get('sender_name') or line.get('sender')}: {line.get('text', '')}" for line in lines]
    return "\n".join(said) if said else None


def event_fields(message: Mapping[str, Any], own_ids: frozenset) -> dict:
    """The keyword arguments of `MessageEvent` besides `source` and `message_type`."""
    media = message.get("media") or {}
    fields: dict = {
        "text": str(message.get("text") or media.get("caption") or ""),
        "message_id": str(message["id"]),
        "media_urls": [],
        "media_types": [],
    }
    if media.get("path"):
        fields["media_urls"] = [str(media["path"])]
        fields["media_types"] = [str(media.get("mime") or media.get("kind") or "")]
    quoted = message.get("quoted")
    if quoted:
        author = quoted.get("sender")
        fields["reply_to_message_id"] = str(quoted.get("id"))
        fields["reply_to_text"] = quoted.get("text")
        fields["reply_to_author_id"] = author
        # The connector says so where it knows its own ids; else the ids `account` gave.
        fields["reply_to_is_own_message"] = bool(quoted.get("from_me")) or (
            bool(author) and author in own_ids
        )
    context = context_text(message.get("context") or [])
    if context:
        fields["channel_context"] = context
    return fields


def account_ids(account: Mapping[str, Any]) -> frozenset:
    """Every id the linked account goes by (an `account` event): a quote of any is a quote of
    the agent's own message."""
    keys = ("phone", "lid", "user_id", "username")
    return frozenset(str(account[k]) for k in keys if account.get(k))


def send_outcome(result: Mapping[str, Any]) -> dict:
    """`SendResult`'s keyword arguments for the link's `result` of a send."""
    if result.get("ok"):
        ids = (result.get("data") or {}).get("message_ids") or []
        return {"success": True, "message_id": str(ids[0]) if ids else None, "raw_response": {"message_ids": ids}}
    error = result.get("error") or {}
    code = str(error.get("code") or "failed")
    if error.get("unconfirmed"):
        # Hermes resends a failed send (again, or as plain text) unless its error reads as a
        # timeout, which "may have already been delivered". An unconfirmed send is that case;
        # its own message is left out, lest a word in it ("network") read as worth retrying.
        return {
            "success": False,
            "error": f"{code}: unconfirmed, like a send that timed out: it may have been sent",
            "retryable": False,
        }
    said = f"{code}: {error.get('message') or ''}".rstrip(": ")
    return {"success": False, "error": said, "retryable": code in RETRYABLE}


def chat_info(chat_id: str, result: Mapping[str, Any]) -> dict:
    """`get_chat_info`'s answer from the link's `chat_info` result."""
    data = (result.get("data") or {}) if result.get("ok") else {}
    return {
        "chat_id": chat_id,
        "name": data.get("name") or chat_id,
        "type": "group" if data.get("is_group") else "dm",
        "participants": data.get("participants") or [],
    }


def mask(identity: str) -> str:
    """An identity as bridgekeeper's logs show it: its last four characters."""
    return "…" + identity[-4:] if len(identity) > 4 else "…"
