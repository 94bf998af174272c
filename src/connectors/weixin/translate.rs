//! iLink messages to inbound messages, and texts to the messages iLink takes. Pure.

use bridge_protocol::message::{InboundMessage, Media, MediaKind, Quoted};
use serde_json::{Value, json};

/// Hermes' limit for one Weixin text message (characters).
pub const MAX_TEXT_CHARS: usize = 2000;

const ITEM_TEXT: i64 = 1;
const ITEM_IMAGE: i64 = 2;
const ITEM_VOICE: i64 = 3;
const ITEM_FILE: i64 = 4;
const ITEM_VIDEO: i64 = 5;
/// A message the bot sends (`message_type`), delivered whole (`message_state`).
const MSG_TYPE_BOT: i64 = 2;
const MSG_STATE_FINISH: i64 = 2;

/// Said as `download_error` until the file is fetched (or when it cannot be).
pub const MEDIA_NOT_FETCHED: &str =
    "the message names no CDN file bridgekeeper can fetch (only encrypt_query_param is followed)";

/// One iLink message, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub message: InboundMessage,
    /// The token every reply to this peer must echo, when the message carried one.
    pub context_token: Option<String>,
    /// Where the message's media is on the CDN, when it names a file to fetch.
    pub media_source: Option<MediaSource>,
}

/// A file on iLink's CDN and the key it is encrypted with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSource {
    pub query_param: String,
    pub key: Result<[u8; 16], String>,
}

/// Why an iLink message is not an inbound message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// No sender, or no message id to count it by.
    Unreadable,
}

fn text_of(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one message of a `getupdates` answer, for the account `account_id`. The account's own
/// messages are read too (`from_me`): the supervisor decides and records them, as every
/// connector leaves it to.
pub fn inbound(m: &Value, account_id: &str) -> Result<Read, Skip> {
    let sender = text_of(m, "from_user_id").ok_or(Skip::Unreadable)?;
    let from_me = sender == account_id;
    let id = text_of(m, "message_id")
        .or_else(|| text_of(m, "seq"))
        .ok_or(Skip::Unreadable)?;
    let room = text_of(m, "room_id").or_else(|| text_of(m, "chat_room_id"));
    let chat = room.clone().unwrap_or_else(|| sender.clone());
    let items: &[Value] = m
        .get("item_list")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let (text, quoted) = text_and_quote(items);
    let media = items.iter().find_map(media_of);
    let media_source = items.iter().find_map(media_source);
    let timestamp = m
        .get("create_time_ms")
        .and_then(Value::as_u64)
        .map_or(0, |ms| ms / 1000);
    Ok(Read {
        message: InboundMessage {
            id,
            chat,
            sender: sender.clone(),
            sender_alt: None,
            is_group: room.is_some(),
            chat_name: None,
            sender_is_bot: false,
            edited: false,
            from_me,
            push_name: None,
            text,
            media,
            mentions: Vec::new(),
            quoted,
            thread: None,
            timestamp,
            routed: None,
            context: Vec::new(),
        },
        context_token: text_of(m, "context_token"),
        media_source,
    })
}

/// The CDN file of a media item (as Hermes reads it: an image's `aeskey` in hex first, else
/// the media's base64 `aes_key`). A voice message with a transcript is not fetched.
fn media_source(item: &Value) -> Option<MediaSource> {
    use super::cdn::{parse_key_b64, parse_key_hex};
    let key = match item.get("type").and_then(Value::as_i64)? {
        ITEM_IMAGE => "image_item",
        ITEM_VIDEO => "video_item",
        ITEM_FILE => "file_item",
        ITEM_VOICE
            if item
                .pointer("/voice_item/text")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            "voice_item"
        }
        _ => return None,
    };
    let inner = item.get(key)?;
    let media = inner.get("media")?;
    let query_param = text_of(media, "encrypt_query_param")?;
    let key = match (text_of(inner, "aeskey"), text_of(media, "aes_key")) {
        (Some(hex), _) => parse_key_hex(&hex),
        (None, Some(b64)) => parse_key_b64(&b64),
        (None, None) => Err("the message gives no key for its media".into()),
    };
    Some(MediaSource { query_param, key })
}

/// The text (a voice message's transcript when there is no text) and the quoted message.
fn text_and_quote(items: &[Value]) -> (Option<String>, Option<Quoted>) {
    for item in items {
        if item.get("type").and_then(Value::as_i64) != Some(ITEM_TEXT) {
            continue;
        }
        let text = item
            .pointer("/text_item/text")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .filter(|t| !t.trim().is_empty());
        let quoted = item.get("ref_msg").map(|r| {
            let inner = r.get("message_item").cloned().unwrap_or(Value::Null);
            let (quoted_text, _) = text_and_quote(std::slice::from_ref(&inner));
            let title = r.get("title").and_then(Value::as_str).map(str::to_owned);
            Quoted {
                id: text_of(r, "message_id").unwrap_or_default(),
                sender: text_of(r, "from_user_id"),
                text: quoted_text.or(title),
                from_me: false,
            }
        });
        return (text, quoted);
    }
    let transcript = items.iter().find_map(|i| {
        (i.get("type").and_then(Value::as_i64) == Some(ITEM_VOICE))
            .then(|| i.pointer("/voice_item/text").and_then(Value::as_str))
            .flatten()
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned)
    });
    (transcript, None)
}

fn media_of(item: &Value) -> Option<Media> {
    let (kind, key) = match item.get("type").and_then(Value::as_i64)? {
        ITEM_IMAGE => (MediaKind::Image, "image_item"),
        ITEM_VOICE => (MediaKind::Voice, "voice_item"),
        ITEM_FILE => (MediaKind::Document, "file_item"),
        ITEM_VIDEO => (MediaKind::Video, "video_item"),
        _ => return None,
    };
    let inner = item.get(key);
    Some(Media {
        kind,
        mime: None,
        file_name: inner.and_then(|i| text_of(i, "file_name")),
        path: None,
        size: inner
            .and_then(|i| i.get("len").or_else(|| i.get("file_size")))
            .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok())),
        download_error: Some(MEDIA_NOT_FETCHED.into()),
    })
}

/// The `msg` of a `sendmessage` call: one text to `to`, with the peer's context token.
pub fn text_message(to: &str, text: &str, client_id: &str, context_token: Option<&str>) -> Value {
    let mut msg = json!({
        "from_user_id": "",
        "to_user_id": to,
        "client_id": client_id,
        "message_type": MSG_TYPE_BOT,
        "message_state": MSG_STATE_FINISH,
        "item_list": [{"type": ITEM_TEXT, "text_item": {"text": text}}],
    });
    if let Some(token) = context_token {
        msg["context_token"] = json!(token);
    }
    msg
}

/// `getuploadurl`'s `media_type` for a file of `kind` (audio other than voice goes as a file,
/// as in Hermes).
pub fn upload_media_type(kind: MediaKind) -> i64 {
    match kind {
        MediaKind::Image | MediaKind::Sticker | MediaKind::Gif => 1,
        MediaKind::Video => 2,
        _ => 3,
    }
}

/// The item of a `sendmessage` naming a file uploaded to the CDN.
pub fn media_item(
    kind: MediaKind,
    query_param: &str,
    key_for_api: &str,
    cipher_len: usize,
    plain_len: usize,
    name: &str,
) -> Value {
    let media =
        json!({"encrypt_query_param": query_param, "aes_key": key_for_api, "encrypt_type": 1});
    match upload_media_type(kind) {
        1 => json!({"type": ITEM_IMAGE, "image_item": {"media": media, "mid_size": cipher_len}}),
        2 => json!({"type": ITEM_VIDEO, "video_item": {"media": media, "video_size": cipher_len}}),
        _ => json!({"type": ITEM_FILE, "file_item": {"media": media, "file_name": name,
            "len": plain_len.to_string()}}),
    }
}

/// The messages a text is sent as: one while it fits in `MAX_TEXT_CHARS`, else cut on
/// paragraph, line or word boundaries; with `per_line` (Hermes'
/// `WEIXIN_SPLIT_MULTILINE_MESSAGES`) one per top-level line.
pub fn parts(text: &str, per_line: bool) -> Vec<String> {
    use crate::connectors::kit::text;
    let one = |_: char| 1;
    if per_line {
        text::split_per_line(text, MAX_TEXT_CHARS, one)
    } else {
        text::split(text, MAX_TEXT_CHARS, one)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOT: &str = "bot@im.bot";

    #[test]
    fn a_dm_becomes_an_inbound_message_with_its_context_token() {
        let m = json!({"message_id": 7000000001u64, "from_user_id": "alice@im.wechat",
            "to_user_id": BOT, "create_time_ms": 1_700_000_000_123i64, "context_token": "ctx-1",
            "item_list": [{"type": 1, "text_item": {"text": "hello"}}]});
        let read = inbound(&m, BOT).unwrap();
        assert_eq!(read.context_token.as_deref(), Some("ctx-1"));
        let msg = read.message;
        assert_eq!(
            (msg.id.as_str(), msg.chat.as_str(), msg.sender.as_str()),
            ("7000000001", "alice@im.wechat", "alice@im.wechat")
        );
        assert!(!msg.is_group);
        assert_eq!(msg.text.as_deref(), Some("hello"));
        assert_eq!(msg.timestamp, 1_700_000_000);
    }

    #[test]
    fn groups_quotes_voice_media_and_what_is_skipped() {
        let group = json!({"message_id": "9", "from_user_id": "bob", "room_id": "room-1",
            "item_list": [{"type": 1, "text_item": {"text": "in the group"},
                "ref_msg": {"title": "earlier", "message_item": {"type": 1, "text_item": {"text": "quoted"}}}}]});
        let msg = inbound(&group, BOT).unwrap().message;
        assert!(msg.is_group);
        assert_eq!(msg.chat, "room-1");
        assert_eq!(msg.quoted.unwrap().text.as_deref(), Some("quoted"));

        let voice = json!({"message_id": "10", "from_user_id": "bob",
            "item_list": [{"type": 3, "voice_item": {"text": "spoken words"}}]});
        let msg = inbound(&voice, BOT).unwrap().message;
        assert_eq!(msg.text.as_deref(), Some("spoken words"));
        let media = msg.media.unwrap();
        assert_eq!(media.kind, MediaKind::Voice);
        assert_eq!(media.download_error.as_deref(), Some(MEDIA_NOT_FETCHED));

        let image = json!({"message_id": "11", "from_user_id": "bob",
            "item_list": [{"type": 2, "image_item": {"len": "2048"}}]});
        let msg = inbound(&image, BOT).unwrap().message;
        assert_eq!(msg.text, None);
        assert_eq!(msg.media.unwrap().size, Some(2048));

        let own = json!({"message_id": "12", "from_user_id": BOT, "item_list": []});
        assert!(inbound(&own, BOT).unwrap().message.from_me);
        assert_eq!(
            inbound(&json!({"message_id": "13"}), BOT),
            Err(Skip::Unreadable)
        );
    }

    #[test]
    fn replies_carry_the_context_token_and_long_texts_are_cut() {
        let m = text_message("alice", "hi", "bk-1", Some("ctx-1"));
        assert_eq!(m["context_token"], "ctx-1");
        assert_eq!(m["item_list"][0]["text_item"]["text"], "hi");
        assert_eq!(m["message_type"], 2);
        assert!(
            text_message("alice", "hi", "bk-1", None)
                .get("context_token")
                .is_none()
        );
        let long = "字".repeat(MAX_TEXT_CHARS + 5);
        let cut = parts(&long, false);
        assert_eq!(cut.len(), 2);
        assert_eq!(cut[0].chars().count(), MAX_TEXT_CHARS);
        assert_eq!(parts("one\ntwo", false), ["one\ntwo"]);
        assert_eq!(parts("one\ntwo", true), ["one", "two"]);
    }
}
