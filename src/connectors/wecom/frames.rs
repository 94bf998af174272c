//! The AI Bot WebSocket's frames: `{cmd, headers: {req_id}, body}` out, and in either an
//! answer to one of ours (same `req_id`, `errcode`/`errmsg`, maybe a `body`) or a push from
//! WeCom (`aibot_msg_callback`, the legacy `aibot_callback`, `aibot_event_callback`). Pure.

use serde_json::{Value, json};

pub const SUBSCRIBE: &str = "aibot_subscribe";
pub const PING: &str = "ping";
pub const RESPOND: &str = "aibot_respond_msg";
pub const SEND: &str = "aibot_send_msg";
pub const UPLOAD_INIT: &str = "aibot_upload_media_init";
pub const UPLOAD_CHUNK: &str = "aibot_upload_media_chunk";
pub const UPLOAD_FINISH: &str = "aibot_upload_media_finish";

/// What a frame from WeCom is.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A message for the bot.
    Callback { req_id: String, body: Value },
    /// Something that happened (entering a chat, a card click…).
    Event { req_id: String, body: Value },
    /// The answer to the request with `req_id`.
    Answer {
        req_id: String,
        errcode: i64,
        errmsg: String,
        body: Value,
    },
}

/// A frame as text; `None` for one that is not a JSON object with a `req_id`.
pub fn parse(text: &str) -> Option<Incoming> {
    let frame: Value = serde_json::from_str(text).ok()?;
    let req_id = frame.pointer("/headers/req_id")?.as_str()?.to_owned();
    let body = frame.get("body").cloned().unwrap_or(Value::Null);
    Some(
        match frame.get("cmd").and_then(Value::as_str).unwrap_or("") {
            "aibot_msg_callback" | "aibot_callback" => Incoming::Callback { req_id, body },
            "aibot_event_callback" => Incoming::Event { req_id, body },
            _ => Incoming::Answer {
                req_id,
                errcode: frame.get("errcode").and_then(Value::as_i64).unwrap_or(0),
                errmsg: frame
                    .get("errmsg")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                body,
            },
        },
    )
}

pub fn frame(cmd: &str, req_id: &str, body: Value) -> String {
    json!({"cmd": cmd, "headers": {"req_id": req_id}, "body": body}).to_string()
}

pub fn subscribe(req_id: &str, bot_id: &str, secret: &str, device_id: &str) -> String {
    frame(
        SUBSCRIBE,
        req_id,
        json!({"bot_id": bot_id, "secret": secret, "device_id": device_id}),
    )
}

/// A markdown text: the body of a reply (`aibot_respond_msg`) or, with `chat`, of a message
/// the bot starts (`aibot_send_msg`).
pub fn markdown(chat: Option<&str>, content: &str) -> Value {
    let mut body = json!({"msgtype": "markdown", "markdown": {"content": content}});
    if let Some(chat) = chat {
        body["chatid"] = json!(chat);
    }
    body
}

/// An uploaded file as a message (`image`, `file`, `voice`, `video`).
pub fn media(chat: Option<&str>, kind: &str, media_id: &str) -> Value {
    let mut body = json!({"msgtype": kind, kind: {"media_id": media_id}});
    if let Some(chat) = chat {
        body["chatid"] = json!(chat);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_sorted_into_callbacks_events_and_answers() {
        let cb = r#"{"cmd":"aibot_msg_callback","headers":{"req_id":"r1"},"body":{"msgid":"m"}}"#;
        assert_eq!(
            parse(cb),
            Some(Incoming::Callback {
                req_id: "r1".into(),
                body: json!({"msgid": "m"})
            })
        );
        let legacy = r#"{"cmd":"aibot_callback","headers":{"req_id":"r2"},"body":{}}"#;
        assert!(matches!(parse(legacy), Some(Incoming::Callback { .. })));
        let ev = r#"{"cmd":"aibot_event_callback","headers":{"req_id":"r3"},"body":{}}"#;
        assert!(matches!(parse(ev), Some(Incoming::Event { .. })));
        let ans = r#"{"headers":{"req_id":"r4"},"errcode":40058,"errmsg":"bad secret"}"#;
        assert_eq!(
            parse(ans),
            Some(Incoming::Answer {
                req_id: "r4".into(),
                errcode: 40058,
                errmsg: "bad secret".into(),
                body: Value::Null
            })
        );
        assert_eq!(parse("not json"), None);
        assert_eq!(parse(r#"{"cmd":"ping"}"#), None);
        let sent: Value =
            serde_json::from_str(&frame(SEND, "q", markdown(Some("c"), "hi"))).unwrap();
        assert_eq!(
            sent,
            json!({"cmd": SEND, "headers": {"req_id": "q"}, "body": {"msgtype": "markdown", "markdown": {"content": "hi"}, "chatid": "c"}})
        );
        assert_eq!(
            media(None, "image", "m1"),
            json!({"msgtype": "image", "image": {"media_id": "m1"}})
        );
    }
}
