//! The old bridge's JSON shapes: an inbound message as one element of `GET /messages`, and the
//! 4096-character chunking of outgoing text. Pure functions.

use bridge_protocol::message::{InboundMessage, MediaKind};
use serde_json::{Value, json};

/// The old bridge's `mediaType` for a media kind.
pub fn legacy_media_type(kind: MediaKind) -> &'static str {
    match kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Gif => "gif",
        MediaKind::Voice => "ptt",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
        MediaKind::Location => "location",
        MediaKind::Contact => "contact",
        MediaKind::Poll => "poll",
        MediaKind::Reaction => "reaction",
        MediaKind::Other => "unknown",
    }
}

/// One inbound message in the shape the Hermes adapter reads. `bot_ids` are the account's own
/// phone JID and LID.
pub fn to_legacy(msg: &InboundMessage, bot_ids: &[String]) -> Value {
    let media_type = msg.media.as_ref().map(|m| legacy_media_type(m.kind));
    let mut body = msg.text.clone().unwrap_or_default();
    if body.trim().is_empty()
        && let Some(t) = media_type
    {
        body = format!("[{t} received]");
    }
    if let Some(error) = msg.media.as_ref().and_then(|m| m.download_error.as_deref()) {
        body.push_str(&format!(" [media download failed: {error}]"));
    }
    let media_urls: Vec<&str> = msg
        .media
        .as_ref()
        .and_then(|m| m.path.as_deref())
        .into_iter()
        .collect();
    let quoted = msg.quoted.as_ref();
    json!({
        "messageId": msg.id,
        "chatId": msg.chat,
        "senderId": msg.sender,
        "senderName": msg.push_name,
        "chatName": if msg.is_group { json!(msg.chat_name) } else { json!(msg.push_name) },
        "isGroup": msg.is_group,
        "body": body,
        "hasMedia": msg.media.is_some(),
        "mediaType": media_type,
        "mime": msg.media.as_ref().and_then(|m| m.mime.clone()),
        "fileName": msg.media.as_ref().and_then(|m| m.file_name.clone()),
        "mediaUrls": media_urls,
        "mentionedIds": msg.mentions,
        "quotedMessageId": quoted.map(|q| q.id.clone()),
        "quotedParticipant": quoted.and_then(|q| q.sender.clone()),
        "quotedText": quoted.and_then(|q| q.text.clone()),
        "hasQuotedMessage": quoted.is_some(),
        "botIds": bot_ids,
        "readReceiptKey": {
            "remoteJid": msg.chat,
            "id": msg.id,
            "participant": if msg.is_group { json!(msg.sender) } else { Value::Null },
            "fromMe": msg.from_me,
        },
        "timestamp": msg.timestamp,
        "fromOwner": msg.from_me,
    })
}

/// Splits text longer than `max` characters: at the last newline, else the last space, else a
/// hard cut; the next chunk starts without the separator.
pub fn chunk(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let mut chunks = Vec::new();
    let mut rest = text;
    while rest.chars().count() > max {
        let limit = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let head = &rest[..limit];
        let cut = head
            .rfind('\n')
            .or_else(|| head.rfind(' '))
            .filter(|i| *i > 0)
            .unwrap_or(limit);
        chunks.push(rest[..cut].to_owned());
        rest = rest[cut..].trim_start_matches(['\n', ' ']);
    }
    if !rest.is_empty() || chunks.is_empty() {
        chunks.push(rest.to_owned());
    }
    chunks
}

/// `WHATSAPP_REPLY_PREFIX` as the old bridge reads it: a literal `\n` means a newline.
pub fn reply_prefix(raw: Option<&str>) -> String {
    match raw {
        Some(p) => p.replace("\\n", "\n"),
        None => "⚕ *Hermes Agent*\n────────────\n".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_protocol::message::{Media, Quoted};

    fn msg() -> InboundMessage {
        serde_json::from_value(json!({
            "id": "M1", "chat": "120363000000000001@g.us", "sender": "15551234567@s.whatsapp.net",
            "is_group": true, "push_name": "Ana", "timestamp": 1767225600,
            "mentions": ["15550001111@s.whatsapp.net"]
        }))
        .unwrap()
    }

    #[test]
    fn a_group_text_has_every_field_the_adapter_reads() {
        let mut m = msg();
        m.text = Some("hi".into());
        m.quoted = Some(Quoted {
            id: "Q".into(),
            sender: Some("x@s.whatsapp.net".into()),
            text: Some("q".into()),
            from_me: false,
        });
        let v = to_legacy(&m, &["15550001111@s.whatsapp.net".into()]);
        for key in [
            "messageId",
            "chatId",
            "senderId",
            "senderName",
            "chatName",
            "isGroup",
            "body",
            "hasMedia",
            "mediaType",
            "mime",
            "fileName",
            "mediaUrls",
            "mentionedIds",
            "quotedMessageId",
            "quotedParticipant",
            "quotedText",
            "hasQuotedMessage",
            "botIds",
            "readReceiptKey",
            "timestamp",
            "fromOwner",
        ] {
            assert!(v.get(key).is_some(), "{key} missing");
        }
        assert_eq!(v["body"], "hi");
        assert_eq!(
            v["readReceiptKey"]["participant"],
            "15551234567@s.whatsapp.net"
        );
        assert_eq!(v["hasQuotedMessage"], true);
    }

    #[test]
    fn captionless_media_and_failed_downloads() {
        let mut m = msg();
        m.media = Some(Media {
            kind: MediaKind::Voice,
            mime: Some("audio/ogg".into()),
            file_name: None,
            path: Some("/c/M1.ogg".into()),
            size: Some(3),
            download_error: None,
        });
        let v = to_legacy(&m, &[]);
        assert_eq!(
            (v["body"].as_str(), v["mediaType"].as_str()),
            (Some("[ptt received]"), Some("ptt"))
        );
        assert_eq!(v["mediaUrls"], json!(["/c/M1.ogg"]));
        m.media.as_mut().unwrap().path = None;
        m.media.as_mut().unwrap().download_error = Some("timeout".into());
        let v = to_legacy(&m, &[]);
        assert_eq!(v["body"], "[ptt received] [media download failed: timeout]");
        assert_eq!(v["mediaUrls"], json!([]));
    }

    #[test]
    fn chunking_prefers_newlines_then_spaces_then_cuts() {
        assert_eq!(chunk("short", 10), vec!["short"]);
        assert_eq!(chunk("aaaa\nbbbb cccc", 10), vec!["aaaa", "bbbb cccc"]);
        assert_eq!(chunk("aaaa bbbb cccc", 10), vec!["aaaa bbbb", "cccc"]);
        assert_eq!(chunk("abcdefghijklmno", 10), vec!["abcdefghij", "klmno"]);
        let long = "x".repeat(4096 * 2 + 5);
        let parts = chunk(&long, 4096);
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            vec![4096, 4096, 5]
        );
        assert_eq!(chunk("", 10), vec![""]);
        assert_eq!(
            chunk("ééééé ééééé", 5).len(),
            2,
            "counts characters, not bytes"
        );
    }

    #[test]
    fn the_reply_prefix_unescapes_newlines() {
        assert_eq!(reply_prefix(Some("A\\nB")), "A\nB");
        assert!(reply_prefix(None).starts_with("⚕ *Hermes Agent*\n"));
    }
}
