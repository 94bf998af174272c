//! An AI Bot callback as an inbound message, and what must be fetched for it (encrypted media),
//! as Hermes' adapter reads callbacks: `msgid`, `chatid` (a DM has none: the chat is the
//! sender), `chattype`, `from.userid`, text from `text`, `mixed` items, a `voice` transcript or
//! an `appmsg` title, a `quote`, and images and files by `url` + `aeskey`. Pure.

use bridge_protocol::message::{InboundMessage, Quoted};
use serde_json::Value;

/// Hermes' size caps for what a callback names.
pub const IMAGE_MAX_BYTES: u64 = 10 << 20;
pub const FILE_MAX_BYTES: u64 = 20 << 20;
/// Longest markdown message, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;

/// An encrypted file a callback names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// `image` or `file`.
    pub kind: &'static str,
    pub url: String,
    pub aes_key: String,
    pub file_name: Option<String>,
}

impl MediaRef {
    pub fn max_bytes(&self) -> u64 {
        if self.kind == "image" {
            IMAGE_MAX_BYTES
        } else {
            FILE_MAX_BYTES
        }
    }
}

/// The message (without its media downloaded) and the media to fetch. `bot_id`: the account,
/// put in `mentions` when a group message is addressed to it (starts with an @mention: WeCom
/// hands a bot only group messages that mention it, with the mention first).
pub fn inbound(
    body: &Value,
    req_id: &str,
    bot_id: &str,
    now: u64,
) -> (InboundMessage, Vec<MediaRef>) {
    let s = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    let sender = s(body.pointer("/from/userid"));
    let chat = Some(s(body.get("chatid")))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| sender.clone());
    let is_group = s(body.get("chattype")).eq_ignore_ascii_case("group");
    let id = Some(s(body.get("msgid")))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| req_id.to_owned());
    let kind = s(body.get("msgtype")).to_ascii_lowercase();
    let mut texts = Vec::new();
    let mut media = Vec::new();
    let text_of = |v: &Value| s(v.pointer("/text/content"));
    match kind.as_str() {
        "mixed" => {
            for item in body
                .pointer("/mixed/msg_item")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                match s(item.get("msgtype")).as_str() {
                    "text" => texts.push(text_of(item)),
                    "image" => media.extend(media_ref("image", item.get("image"))),
                    _ => {}
                }
            }
        }
        _ => {
            texts.push(text_of(body));
            if kind == "voice" {
                texts.push(s(body.pointer("/voice/content")));
            }
            if kind == "appmsg" {
                texts.push(s(body.pointer("/appmsg/title")));
                media.extend(media_ref("file", body.pointer("/appmsg/file")));
                media.extend(media_ref("image", body.pointer("/appmsg/image")));
            }
            media.extend(media_ref("image", body.get("image")));
            if kind == "file" {
                media.extend(media_ref("file", body.get("file")));
            }
        }
    }
    let text = texts
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let quote = body.get("quote");
    let quoted_text = quote.and_then(|q| match s(q.get("msgtype")).as_str() {
        "text" => Some(text_of(q)),
        "voice" => Some(s(q.pointer("/voice/content"))),
        _ => None,
    });
    let addressed = is_group && text.starts_with('@');
    let message = InboundMessage {
        id: id.clone(),
        chat,
        sender,
        sender_alt: None,
        is_group,
        chat_name: None,
        sender_is_bot: false,
        edited: false,
        from_me: false,
        push_name: None,
        text: Some(text).filter(|t| !t.is_empty()),
        media: None,
        mentions: if addressed {
            vec![bot_id.to_owned()]
        } else {
            Vec::new()
        },
        quoted: quote.map(|_| Quoted {
            id: format!("quote:{id}"),
            sender: None,
            text: quoted_text.filter(|t| !t.is_empty()),
            from_me: false,
        }),
        thread: None,
        timestamp: now,
        routed: None,
        context: Vec::new(),
    };
    (message, media)
}

fn media_ref(kind: &'static str, v: Option<&Value>) -> Option<MediaRef> {
    let v = v?;
    let url = v.get("url")?.as_str()?.trim();
    if url.is_empty() {
        return None;
    }
    Some(MediaRef {
        kind,
        url: url.to_owned(),
        aes_key: v
            .get("aeskey")
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned(),
        file_name: v
            .get("filename")
            .or_else(|| v.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

/// The media kind WeCom calls a file of this MIME type, for an upload.
pub fn upload_kind(kind: bridge_protocol::message::MediaKind) -> &'static str {
    use bridge_protocol::message::MediaKind;
    match kind {
        MediaKind::Image | MediaKind::Sticker | MediaKind::Gif => "image",
        MediaKind::Voice => "voice",
        MediaKind::Video => "video",
        _ => "file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn callbacks_become_messages_as_hermes_reads_them() {
        let dm = json!({"msgid": "m1", "chattype": "single", "from": {"userid": "zhang"}, "msgtype": "text", "text": {"content": " hi "}});
        let (m, media) = inbound(&dm, "r1", "bot", 5);
        assert_eq!(
            (
                m.id.as_str(),
                m.chat.as_str(),
                m.sender.as_str(),
                m.is_group
            ),
            ("m1", "zhang", "zhang", false)
        );
        assert_eq!(m.text.as_deref(), Some("hi"));
        assert!(media.is_empty() && m.mentions.is_empty());

        let group = json!({"msgid": "m2", "chattype": "group", "chatid": "wr1", "from": {"userid": "li"}, "msgtype": "text", "text": {"content": "@Bot summarise"}});
        let (g, _) = inbound(&group, "r2", "bot", 5);
        assert_eq!(
            (g.chat.as_str(), g.is_group, g.mentions.clone()),
            ("wr1", true, vec!["bot".to_owned()])
        );
        let plain = json!({"msgid": "m3", "chattype": "group", "chatid": "wr1", "from": {"userid": "li"}, "msgtype": "text", "text": {"content": "no mention"}});
        assert!(inbound(&plain, "r3", "bot", 5).0.mentions.is_empty());

        let mixed = json!({"msgid": "m4", "from": {"userid": "zhang"}, "msgtype": "mixed", "mixed": {"msg_item": [
            {"msgtype": "text", "text": {"content": "look"}},
            {"msgtype": "image", "image": {"url": "http://x/1", "aeskey": "k"}}]},
            "quote": {"msgtype": "text", "text": {"content": "earlier"}}});
        let (m, media) = inbound(&mixed, "r4", "bot", 5);
        assert_eq!(m.text.as_deref(), Some("look"));
        assert_eq!(
            media,
            [MediaRef {
                kind: "image",
                url: "http://x/1".into(),
                aes_key: "k".into(),
                file_name: None
            }]
        );
        assert_eq!(m.quoted.unwrap().text.as_deref(), Some("earlier"));

        let voice = json!({"from": {"userid": "zhang"}, "msgtype": "voice", "voice": {"content": "spoken words"}});
        let (v, _) = inbound(&voice, "r5", "bot", 5);
        assert_eq!(
            (v.id.as_str(), v.text.as_deref()),
            ("r5", Some("spoken words"))
        );

        let file = json!({"msgid": "m6", "from": {"userid": "zhang"}, "msgtype": "file", "file": {"url": "http://x/2", "aeskey": "k2", "filename": "a.pdf"}});
        let (_, media) = inbound(&file, "r6", "bot", 5);
        assert_eq!(media[0].kind, "file");
        assert_eq!(media[0].max_bytes(), FILE_MAX_BYTES);
    }
}
