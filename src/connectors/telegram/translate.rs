//! Telegram's updates as the protocol's inbound messages, and replies cut to Telegram's limit.
//! Pure functions: no I/O.

use bridge_protocol::message::{InboundMessage, Media, MediaKind, Quoted};
use serde_json::Value;

/// Telegram counts a message's length in UTF-16 code units; 4096 at most.
pub const MAX_TEXT_UNITS: usize = 4096;

/// The bot's own identity, to tell which messages address it.
#[derive(Debug, Clone, Default)]
pub struct Bot {
    pub id: String,
    /// Lower case, without `@`.
    pub username: String,
}

/// The message id the protocol uses: `<chat>/<message_id>`. Telegram numbers messages per
/// chat, so the pair is what is unique (and stable when an update is delivered again).
pub fn message_key(chat: &str, message_id: i64) -> String {
    format!("{chat}/{message_id}")
}

/// An edit's own id: its message's key and `~<edit_date>`. A gateway drops a message id it has
/// seen (Hermes' relay dedupes on platform, chat and id), so the edit cannot reuse the
/// message's; a reply to, reaction to or edit of it still reaches that message.
fn edit_key(chat: &str, message_id: i64, edit_date: u64) -> String {
    format!("{}~{edit_date}", message_key(chat, message_id))
}

/// Telegram's `message_id` from a protocol id (`<chat>/<id>`, an edit's `<chat>/<id>~<date>`,
/// or a bare id).
pub fn telegram_message_id(key: &str) -> Option<i64> {
    let last = key.rsplit('/').next()?;
    last.split('~').next()?.trim().parse().ok()
}

/// The message an update carries: a new one, or a new version of one (`edited`).
fn message_of(update: &Value) -> Option<(&Value, bool)> {
    update
        .get("message")
        .map(|m| (m, false))
        .or_else(|| update.get("edited_message").map(|m| (m, true)))
}

/// One update as an inbound message; `None` for updates that carry no message (joins,
/// callback queries, channel posts: not handled).
pub fn inbound(update: &Value, bot: &Bot) -> Option<InboundMessage> {
    let (m, edited) = message_of(update)?;
    let chat = m.pointer("/chat/id")?.as_i64()?.to_string();
    let chat_type = m
        .pointer("/chat/type")
        .and_then(Value::as_str)
        .unwrap_or("private");
    let from = m.get("from");
    let sender = from
        .and_then(|f| f.get("id"))
        .and_then(Value::as_i64)
        .map_or_else(|| chat.clone(), |id| id.to_string());
    let username = from
        .and_then(|f| f.get("username"))
        .and_then(Value::as_str)
        .map(|u| format!("@{u}"));
    let name = from.map(|f| {
        let first = f
            .get("first_name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match f.get("last_name").and_then(Value::as_str) {
            Some(last) => format!("{first} {last}"),
            None => first.to_owned(),
        }
    });
    let text = m
        .get("text")
        .or_else(|| m.get("caption"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let entities = m
        .get("entities")
        .or_else(|| m.get("caption_entities"))
        .and_then(Value::as_array);
    let mut mentions = Vec::new();
    if entities
        .into_iter()
        .flatten()
        .any(|e| addresses(e, text.as_deref().unwrap_or_default(), bot))
    {
        mentions.push(bot.id.clone());
    }
    let quoted = m.get("reply_to_message").map(|q| {
        let sender = q
            .pointer("/from/id")
            .and_then(Value::as_i64)
            .map(|id| id.to_string());
        Quoted {
            id: message_key(
                &chat,
                q.get("message_id").and_then(Value::as_i64).unwrap_or(0),
            ),
            from_me: sender.as_deref() == Some(bot.id.as_str()),
            sender,
            text: q
                .get("text")
                .or_else(|| q.get("caption"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        }
    });
    let media = if m.get("photo").is_some() {
        Some(media_of(MediaKind::Image, None, None))
    } else {
        m.get("document").map(|d| {
            let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
            media_of(MediaKind::Document, s("mime_type"), s("file_name"))
        })
    };
    let message_id = m.get("message_id")?.as_i64()?;
    let id = match m.get("edit_date").and_then(Value::as_u64) {
        Some(date) if edited => edit_key(&chat, message_id, date),
        _ => message_key(&chat, message_id),
    };
    Some(InboundMessage {
        id,
        chat_name: m
            .pointer("/chat/title")
            .and_then(Value::as_str)
            .map(str::to_owned),
        sender_is_bot: from
            .and_then(|f| f.get("is_bot"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        edited,
        chat,
        sender,
        sender_alt: username,
        is_group: chat_type != "private",
        from_me: false,
        push_name: name,
        text,
        media,
        mentions,
        quoted,
        // Forum topics: the thread a reply must go back to.
        thread: m
            .get("message_thread_id")
            .and_then(Value::as_i64)
            .map(|t| t.to_string()),
        timestamp: m.get("date").and_then(Value::as_u64).unwrap_or(0),
        routed: None,
        context: Vec::new(),
    })
}

fn media_of(kind: MediaKind, mime: Option<String>, file_name: Option<String>) -> Media {
    Media {
        kind,
        mime,
        file_name,
        path: None,
        size: None,
        download_error: None,
    }
}

/// The `file_id` to download a message's media with (`getFile`): the largest photo size, or
/// the document.
pub fn file_id(update: &Value) -> Option<String> {
    let (m, _) = message_of(update)?;
    let photo = m
        .get("photo")
        .and_then(Value::as_array)
        .and_then(|sizes| sizes.last());
    photo
        .or_else(|| m.get("document"))?
        .get("file_id")?
        .as_str()
        .map(str::to_owned)
}

/// Whether one entity addresses the bot: `@botname`, a text mention of the bot, or
/// `/command@botname`. Offsets and lengths are in UTF-16 code units.
fn addresses(entity: &Value, text: &str, bot: &Bot) -> bool {
    let kind = entity
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "text_mention" {
        return entity
            .pointer("/user/id")
            .and_then(Value::as_i64)
            .is_some_and(|id| id.to_string() == bot.id);
    }
    let (Some(offset), Some(length)) = (
        entity.get("offset").and_then(Value::as_u64),
        entity.get("length").and_then(Value::as_u64),
    ) else {
        return false;
    };
    let units: Vec<u16> = text.encode_utf16().collect();
    let end = (offset + length) as usize;
    let Some(slice) = units.get(offset as usize..end) else {
        return false;
    };
    let word = String::from_utf16_lossy(slice).to_lowercase();
    let me = format!("@{}", bot.username);
    match kind {
        "mention" => word == me,
        "bot_command" => word.ends_with(&me),
        _ => false,
    }
}

/// Cuts `text` into parts of at most `max` UTF-16 units (Telegram's measure), on paragraph,
/// line or word boundaries (`kit::text::split`).
pub fn split(text: &str, max: usize) -> Vec<String> {
    crate::connectors::kit::text::split(text, max, char::len_utf16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bot() -> Bot {
        Bot {
            id: "424242".into(),
            username: "crabline_bot".into(),
        }
    }

    #[test]
    fn a_private_message_becomes_an_inbound_dm() {
        let u = json!({"update_id": 7, "message": {"message_id": 5, "date": 1700000000,
            "chat": {"id": 100001, "type": "private"},
            "from": {"id": 100001, "first_name": "Ann", "last_name": "Lee", "username": "ann"},
            "text": "hi"}});
        let m = inbound(&u, &bot()).unwrap();
        assert_eq!(m.id, "100001/5");
        assert_eq!(m.thread, None);
        assert_eq!((m.chat.as_str(), m.sender.as_str()), ("100001", "100001"));
        assert_eq!(m.sender_alt.as_deref(), Some("@ann"));
        assert_eq!(m.push_name.as_deref(), Some("Ann Lee"));
        assert!(!m.is_group && m.mentions.is_empty());
        assert_eq!(m.timestamp, 1700000000);
    }

    #[test]
    fn mentions_commands_and_replies_in_groups_address_the_bot() {
        let group = |text: &str, entities: Value| {
            json!({"update_id": 1, "message": {"message_id": 9, "date": 1,
                "chat": {"id": -1001, "type": "supergroup"}, "from": {"id": 5},
                "text": text, "entities": entities}})
        };
        let at = |t: &str, off: u64, len: u64| json!([{"type": t, "offset": off, "length": len}]);
        let cases = [
            (group("hey @Crabline_Bot", at("mention", 4, 13)), true),
            (group("hey @someone_else", at("mention", 4, 13)), false),
            (group("/help@crabline_bot", at("bot_command", 0, 18)), true),
            (group("/help@other_bot", at("bot_command", 0, 15)), false),
            (group("🙂 @crabline_bot", at("mention", 3, 13)), true),
            (group("plain", json!([])), false),
        ];
        for (u, addressed) in cases {
            let m = inbound(&u, &bot()).unwrap();
            assert!(m.is_group);
            assert_eq!(!m.mentions.is_empty(), addressed, "{u}");
        }
        let reply = json!({"update_id": 1, "message": {"message_id": 9, "date": 1,
            "chat": {"id": -1001, "type": "group"}, "from": {"id": 5}, "text": "yes",
            "reply_to_message": {"message_id": 3, "from": {"id": 424242}, "text": "q?"}}});
        let q = inbound(&reply, &bot()).unwrap().quoted.unwrap();
        assert_eq!(
            (q.id.as_str(), q.sender.as_deref(), q.from_me),
            ("-1001/3", Some("424242"), true)
        );
        assert_eq!(telegram_message_id(&q.id), Some(3));
    }

    #[test]
    fn photos_and_documents_are_media_and_other_updates_are_skipped() {
        let photo = json!({"update_id": 2, "message": {"message_id": 1, "date": 1,
            "chat": {"id": 1, "type": "private"}, "caption": "look",
            "photo": [{"file_id": "small"}, {"file_id": "big"}]}});
        let m = inbound(&photo, &bot()).unwrap();
        assert_eq!(m.media.unwrap().kind, MediaKind::Image);
        assert_eq!(m.text.as_deref(), Some("look"));
        assert_eq!(file_id(&photo).as_deref(), Some("big"));
        assert!(inbound(&json!({"update_id": 3, "edited_message": {}}), &bot()).is_none());
        assert!(inbound(&json!({"update_id": 4, "my_chat_member": {}}), &bot()).is_none());
    }

    #[test]
    fn an_edit_carries_an_id_of_its_own_that_leads_back_to_its_message() {
        let edit = json!({"update_id": 5, "edited_message": {"message_id": 8, "date": 1,
            "edit_date": 1700000300, "chat": {"id": -1001, "type": "supergroup",
            "title": "Ops"}, "from": {"id": 77, "is_bot": true, "first_name": "CI"},
            "text": "fixed"}});
        let m = inbound(&edit, &bot()).unwrap();
        assert!(m.edited && m.sender_is_bot);
        assert_eq!(m.id, "-1001/8~1700000300");
        assert_eq!(m.chat_name.as_deref(), Some("Ops"));
        assert_eq!(telegram_message_id(&m.id), Some(8));
        let first = json!({"update_id": 4, "message": {"message_id": 8, "date": 1,
            "chat": {"id": -1001, "type": "supergroup"}, "from": {"id": 5}, "text": "fixd"}});
        let m = inbound(&first, &bot()).unwrap();
        assert!(!m.edited && !m.sender_is_bot);
        assert_eq!(m.id, "-1001/8");
    }

    #[test]
    fn long_replies_are_cut_in_utf16_units_at_the_best_boundary() {
        assert_eq!(split("short", 10), ["short"]);
        assert_eq!(split("one two three", 8), ["one two", "three"]);
        assert_eq!(split("aaaa\n\nbbbb cc", 9), ["aaaa", "bbbb cc"]);
        // Emoji are two units each: 3 fit in 6 units, never split inside one.
        assert_eq!(split("😀😀😀😀", 6), ["😀😀😀", "😀"]);
        let long = "word ".repeat(2000);
        let parts = split(&long, MAX_TEXT_UNITS);
        assert!(
            parts
                .iter()
                .all(|p| p.encode_utf16().count() <= MAX_TEXT_UNITS)
        );
        assert_eq!(parts.concat().replace(' ', ""), long.replace(' ', ""));
    }
}
