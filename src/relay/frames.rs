//! The relay's frames (Hermes `gateway/relay/ws_transport.py`, contract version 1): JSON
//! objects, each ending in a newline, inside WebSocket text messages. Pure conversions between
//! those frames and the gateway link's types; no I/O.

use bridge_protocol::gateway::GatewayCommand;
use bridge_protocol::message::{
    ChatInfo, Delete, EditText, InboundMessage, MediaKind, React, ReadReceipt, SendMedia, SendText,
    Typing, TypingState,
};
use serde::Deserialize;
use serde_json::{Value, json};

pub const CONTRACT_VERSION: u32 = 1;

/// What a gateway may send.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GatewayFrame {
    Hello {
        platform: String,
        #[serde(rename = "botId", default)]
        bot_id: Option<String>,
    },
    Outbound {
        #[serde(rename = "requestId")]
        request_id: String,
        action: Value,
        #[serde(default)]
        platform: Option<String>,
    },
    InboundAck {
        #[serde(rename = "bufferId")]
        buffer_id: String,
    },
    GoingIdle,
    Interrupt {
        #[serde(default)]
        session_key: String,
        #[serde(default)]
        reason: Option<String>,
    },
}

/// A frame that could not be taken, answered with an `error` frame (the socket stays open).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the frame is not a JSON object: {0}")]
    NotJson(String),
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("the frame has no \"type\"")]
    NoType,
    #[error("a {kind} frame is missing or mistypes a field: {detail}")]
    BadFields { kind: String, detail: String },
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson(_) => "invalid_frame",
            Self::UnknownType(_) => "unknown_type",
            Self::NoType => "invalid_frame",
            Self::BadFields { .. } => "invalid_frame",
        }
    }
}

const KNOWN: [&str; 5] = [
    "hello",
    "outbound",
    "inbound_ack",
    "going_idle",
    "interrupt",
];

/// Parses one line. The error keeps the `requestId` when the frame had one, so a malformed
/// `outbound` still gets its one `outbound_result`.
pub fn parse(line: &str) -> Result<GatewayFrame, (FrameError, Option<String>)> {
    let value: Value =
        serde_json::from_str(line).map_err(|e| (FrameError::NotJson(e.to_string()), None))?;
    let Value::Object(map) = &value else {
        return Err((FrameError::NotJson("not an object".into()), None));
    };
    let request_id = map
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let kind = match map.get("type") {
        Some(Value::String(t)) => t.clone(),
        _ => return Err((FrameError::NoType, request_id)),
    };
    if !KNOWN.contains(&kind.as_str()) {
        return Err((FrameError::UnknownType(kind), request_id));
    }
    serde_json::from_value(value).map_err(|e| {
        (
            FrameError::BadFields {
                kind,
                detail: e.to_string(),
            },
            request_id,
        )
    })
}

/// Ends a frame: the client reads only newline-terminated lines.
pub fn line(frame: &Value) -> String {
    let mut s = frame.to_string();
    s.push('\n');
    s
}

pub fn error_frame(code: &str, message: &str, request_id: Option<&str>) -> Value {
    let mut frame = json!({"type": "error", "code": code, "message": message});
    if let Some(id) = request_id {
        frame["requestId"] = json!(id);
    }
    frame
}

pub fn outbound_result(request_id: &str, result: Value) -> Value {
    json!({"type": "outbound_result", "requestId": request_id, "result": result})
}

/// A failed op's result. Its text never says `egress declined`: a gateway after 0.19.0 reads
/// that as the destination refusing and then skips its fallback (media sent as text, a prompt
/// as numbered text), and a connector's failure, whatever a platform put in its message, is
/// not that.
pub fn failure(error: &str) -> Value {
    failure_unconfirmed(error, false)
}

/// `failure`, saying whether the op may have taken effect (`unconfirmed`).
pub fn failure_unconfirmed(error: &str, unconfirmed: bool) -> Value {
    const DECLINE: &str = "egress declined";
    let mut text = error.to_owned();
    while let Some(at) = text.to_ascii_lowercase().find(DECLINE) {
        text.replace_range(at..at + DECLINE.len(), "egress refused");
    }
    json!({"success": false, "error": text, "unconfirmed": unconfirmed})
}

/// Hermes' relay ops bridgekeeper carries out, each with the connector op it becomes. A
/// gateway after 0.19.0 sends an op missing from `supported_ops` only for the legacy set
/// (`send`, `edit`, `typing`), so each listed op must be one the platform's connector does.
/// `send_media` takes the newer contract's fields (`media_kind`, `source_url` naming an upload).
const RELAY_OPS: [(&str, &str); 7] = [
    ("send", "send_text"),
    ("edit", "edit"),
    ("typing", "typing"),
    ("get_chat_info", "chat_info"),
    ("react", "react"),
    ("send_media", "send_media"),
    ("delete", "delete"),
];

/// The relay ops a platform's connector carries out (its description's ops), for the
/// descriptor's `supported_ops`.
pub fn supported_ops(d: &crate::connectors::description::Description) -> Vec<&'static str> {
    RELAY_OPS
        .iter()
        .filter(|(_, op)| d.ops.contains(op))
        .map(|(relay, _)| *relay)
        .collect()
}

/// What a platform can do, told to the gateway at the handshake. All nine required fields are
/// always present: Hermes drops a descriptor that lacks one and redials without a word.
pub fn descriptor(platform: &str) -> Option<Value> {
    let d = crate::connectors::description::describe(platform)?;
    Some(json!({
        "type": "descriptor",
        "descriptor": {
            "contract_version": CONTRACT_VERSION,
            "platform": platform,
            "label": d.label,
            "max_message_length": d.text_limit,
            "supports_draft_streaming": false,
            "supports_edit": d.edits,
            "supports_threads": false,
            "markdown_dialect": d.markdown,
            "len_unit": d.text_unit.as_str(),
            "pii_safe": false,
            "supported_ops": supported_ops(d),
            "supports_context": d.groups,
        }
    }))
}

/// A delivered message as Hermes' `MessageEvent` wire form (`_event_from_wire`). `media_id`
/// names a media file for `/relay/media/<id>`; `None` hands the gateway the local path (a 0.19.0
/// gateway on the same host reads it there).
pub fn inbound_event(
    platform: &str,
    m: &InboundMessage,
    media_id: Option<&dyn Fn(&std::path::Path) -> String>,
) -> Value {
    let message_type = match m.media.as_ref().map(|x| x.kind) {
        Some(MediaKind::Image) => "photo",
        Some(MediaKind::Video | MediaKind::Gif) => "video",
        Some(MediaKind::Audio) => "audio",
        Some(MediaKind::Voice) => "voice",
        Some(MediaKind::Document) => "document",
        Some(MediaKind::Sticker) => "sticker",
        Some(MediaKind::Location) => "location",
        _ if m.text.as_deref().is_some_and(|t| t.starts_with('/')) => "command",
        _ => "text",
    };
    // Relative until a session sends it: the gateway's own host and port go in front then
    // (`absolute_media_urls`), the only place Hermes sends its token to.
    let url = |path: &str| match media_id {
        Some(id) => format!("{MEDIA_PATH}{}", id(std::path::Path::new(path))),
        None => path.to_owned(),
    };
    let media_urls: Vec<String> = m
        .media
        .iter()
        .filter_map(|x| x.path.as_deref())
        .map(url)
        .collect();
    let media: Vec<Value> = m
        .media
        .iter()
        .filter_map(|x| {
            let mut entry = json!({"url": url(x.path.as_deref()?), "kind": x.kind});
            if let Some(mime) = &x.mime {
                entry["mime"] = json!(mime);
            }
            if let Some(size) = x.size {
                entry["size"] = json!(size);
            }
            if let Some(name) = &x.file_name {
                entry["filename"] = json!(name);
            }
            // A message with a file says its text as the file's caption (Telegram's and
            // WhatsApp's captions arrive as the text).
            if let Some(caption) = m.text.as_deref().filter(|t| !t.is_empty()) {
                entry["caption"] = json!(caption);
            }
            Some(entry)
        })
        .collect();
    // In a direct chat the chat is the sender, so the sender's other identity is the chat's.
    let chat_alt = if m.is_group {
        None
    } else {
        m.sender_alt.as_deref()
    };
    let mut event = json!({
        "text": m.text.as_deref().unwrap_or_default(),
        "message_type": message_type,
        "message_id": m.id,
        "media_urls": media_urls,
        "media": media,
        "source": {
            "platform": platform,
            "chat_id": m.chat,
            "chat_type": if m.is_group { "group" } else { "dm" },
            "user_id": m.sender,
            "user_name": m.push_name,
            "user_id_alt": m.sender_alt,
            "chat_id_alt": chat_alt,
            "thread_id": m.thread,
            "message_id": m.id,
            // Sent always, as the contract's §3 has them (read by hosted room controls).
            "is_bot": m.sender_is_bot,
            "message_is_edit": m.edited,
        },
    });
    if let Some(name) = &m.chat_name {
        event["source"]["chat_name"] = json!(name);
    }
    if let Some(q) = &m.quoted {
        event["reply_to_message_id"] = json!(q.id);
        // Read as `reply_to_text` and `reply_to_author_name` by gateways after 0.19.0.
        let mut quoted = serde_json::Map::new();
        if let Some(text) = &q.text {
            quoted.insert("text".into(), json!(text));
        }
        if let Some(author) = &q.sender {
            quoted.insert("author".into(), json!(author));
        }
        if q.from_me {
            quoted.insert("is_own".into(), json!(true));
        }
        if !quoted.is_empty() {
            event["reply_to"] = Value::Object(quoted);
        }
    }
    if !m.context.is_empty() {
        let lines: Vec<Value> = m
            .context
            .iter()
            .map(|c| {
                let source = match &c.sender_name {
                    Some(name) => json!({"user_name": name}),
                    None => json!({"user_id": c.sender}),
                };
                json!({"text": c.text, "source": source})
            })
            .collect();
        event["context"] = Value::Array(lines);
    }
    if let Some(error) = m.media.as_ref().and_then(|x| x.download_error.as_deref()) {
        event["media_error"] = json!(error);
    }
    event
}

/// Where a relayed media file is served; an inbound event carries it relative to the relay.
pub const MEDIA_PATH: &str = "/relay/media/";

/// `line` (an inbound frame) with its relative media URLs made absolute under `base`
/// (`http://host:port`, as the gateway dialled). A frame without media is returned as it is.
pub fn absolute_media_urls(line: &str, base: &str) -> String {
    // Every inbound line passes here: a plain substring test, no allocation, for most.
    const RELATIVE: &str = "\"/relay/media/";
    if !line.contains(RELATIVE) {
        return line.to_owned();
    }
    let Ok(mut frame) = serde_json::from_str::<Value>(line) else {
        return line.to_owned();
    };
    let mut changed = false;
    let mut fix = |v: &mut Value| {
        if let Some(u) = v.as_str().filter(|u| u.starts_with(MEDIA_PATH)) {
            *v = json!(format!("{base}{u}"));
            changed = true;
        }
    };
    if let Some(urls) = frame
        .pointer_mut("/event/media_urls")
        .and_then(Value::as_array_mut)
    {
        urls.iter_mut().for_each(&mut fix);
    }
    if let Some(media) = frame
        .pointer_mut("/event/media")
        .and_then(Value::as_array_mut)
    {
        for m in media {
            if let Some(u) = m.get_mut("url") {
                fix(u);
            }
        }
    }
    if changed {
        format!("{frame}\n")
    } else {
        line.to_owned()
    }
}

/// An outbound action, as a command for the connector, or the reason it is not one.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Command(GatewayCommand),
    /// The op is known to Hermes but this connector cannot do it.
    Unsupported(String),
    Invalid(String),
}

/// Maps `action` (`{op, chat_id, …}`) onto the gateway link's commands.
pub fn action(action: &Value) -> Action {
    let op = action.get("op").and_then(Value::as_str).unwrap_or_default();
    let s = |k: &str| action.get(k).and_then(Value::as_str).map(str::to_owned);
    let Some(chat) = s("chat_id").filter(|c| !c.is_empty()) else {
        return Action::Invalid(format!("op {op:?} without chat_id"));
    };
    let content = s("content").or_else(|| s("text"));
    let command = match op {
        "send" => match content {
            Some(text) if !text.is_empty() => GatewayCommand::SendText(SendText {
                chat,
                text,
                reply_to: s("reply_to").filter(|r| !r.is_empty()),
                // Hermes puts the thread of the message it answers in the metadata.
                thread: action.pointer("/metadata/thread_id").and_then(|t| {
                    t.as_str()
                        .map(str::to_owned)
                        .or_else(|| t.as_i64().map(|n| n.to_string()))
                }),
            }),
            _ => return Action::Invalid("send without content".into()),
        },
        "get_chat_info" => GatewayCommand::ChatInfo(ChatInfo { chat }),
        "typing" => GatewayCommand::Typing(Typing {
            chat,
            state: TypingState::default(),
        }),
        "edit" => match (s("message_id"), content) {
            (Some(message_id), Some(text)) => GatewayCommand::Edit(EditText {
                chat,
                message_id,
                text,
            }),
            _ => return Action::Invalid("edit needs message_id and content".into()),
        },
        // `remove: true` takes the reaction back (Hermes' 👀 while it works): an empty emoji.
        "react" => {
            let remove = action.get("remove").and_then(Value::as_bool) == Some(true);
            match (s("message_id"), s("emoji").or(content)) {
                (Some(message_id), Some(emoji)) => GatewayCommand::React(React {
                    chat,
                    message_id,
                    emoji: if remove { String::new() } else { emoji },
                }),
                _ => return Action::Invalid("react needs message_id and emoji".into()),
            }
        }
        "delete" => match s("message_id") {
            Some(message_id) => GatewayCommand::Delete(Delete { chat, message_id }),
            None => return Action::Invalid("delete needs message_id".into()),
        },
        "read" => match s("message_id") {
            Some(id) => GatewayCommand::Read(ReadReceipt {
                chat,
                message_ids: vec![id],
                participant: None,
            }),
            None => return Action::Invalid("read needs message_id".into()),
        },
        // The newer contract names a `source_url` (resolved by the session: only
        // bridgekeeper's own `/relay/media/<id>`), its `media_kind`, `content` and `filename`;
        // 0.19.0 named a `path` and `media_type`.
        "send_media" => {
            let Some(path) = s("source_url")
                .or_else(|| s("path"))
                .or_else(|| s("file_path"))
            else {
                return Action::Invalid("send_media needs source_url".into());
            };
            let kind = s("media_kind").or_else(|| s("media_type"));
            let kind = match kind.as_deref().unwrap_or("document") {
                "image" | "photo" => MediaKind::Image,
                "video" => MediaKind::Video,
                "audio" => MediaKind::Audio,
                "voice" => MediaKind::Voice,
                _ => MediaKind::Document,
            };
            GatewayCommand::SendMedia(SendMedia {
                chat,
                path,
                kind,
                caption: s("caption").or(content).filter(|c| !c.is_empty()),
                file_name: s("filename").or_else(|| s("file_name")),
                mime: None,
            })
        }
        other => return Action::Unsupported(other.to_owned()),
    };
    Action::Command(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gateway_frame_parses() {
        assert_eq!(
            parse(r#"{"type":"hello","platform":"whatsapp","botId":"b"}"#).unwrap(),
            GatewayFrame::Hello {
                platform: "whatsapp".into(),
                bot_id: Some("b".into())
            }
        );
        assert!(matches!(
            parse(r#"{"type":"outbound","requestId":"r1","action":{"op":"send"}}"#).unwrap(),
            GatewayFrame::Outbound { request_id, .. } if request_id == "r1"
        ));
        assert_eq!(
            parse(r#"{"type":"inbound_ack","bufferId":"x"}"#).unwrap(),
            GatewayFrame::InboundAck {
                buffer_id: "x".into()
            }
        );
        assert_eq!(
            parse(r#"{"type":"going_idle"}"#).unwrap(),
            GatewayFrame::GoingIdle
        );
        assert!(matches!(
            parse(r#"{"type":"interrupt","session_key":"k","reason":null}"#).unwrap(),
            GatewayFrame::Interrupt { .. }
        ));
    }

    #[test]
    fn bad_frames_get_typed_errors_that_keep_the_request_id() {
        let cases = [
            ("{", "invalid_frame", None),
            ("[1]", "invalid_frame", None),
            (r#"{"platform":"x"}"#, "invalid_frame", None),
            (
                r#"{"type":"teleport","requestId":"r9"}"#,
                "unknown_type",
                Some("r9"),
            ),
            (
                r#"{"type":"outbound","requestId":"r2"}"#,
                "invalid_frame",
                Some("r2"),
            ),
            (r#"{"type":"hello"}"#, "invalid_frame", None),
            (
                r#"{"type":"inbound_ack","bufferId":7}"#,
                "invalid_frame",
                None,
            ),
        ];
        for (line, code, id) in cases {
            let (e, rid) = parse(line).unwrap_err();
            assert_eq!((e.code(), rid.as_deref()), (code, id), "{line}");
        }
    }

    #[test]
    fn the_whatsapp_descriptor_has_every_required_field() {
        let d = descriptor("whatsapp").unwrap();
        for key in [
            "contract_version",
            "platform",
            "label",
            "max_message_length",
            "supports_draft_streaming",
            "supports_edit",
            "supports_threads",
            "markdown_dialect",
            "len_unit",
        ] {
            assert!(d["descriptor"].get(key).is_some(), "{key}");
        }
        assert_eq!(d["descriptor"]["max_message_length"], 4096);
        assert_eq!(
            descriptor("telegram").unwrap()["descriptor"]["len_unit"],
            "utf16"
        );
        assert!(descriptor("irc").is_none());
        assert!(line(&d).ends_with("}\n"));
    }

    /// A gateway sends a listed op to every chat of the platform: each must become a command
    /// its connector carries out (its description's ops), never an `unsupported`.
    #[test]
    fn every_supported_op_is_one_the_connector_carries_out() {
        use bridge_protocol::gateway::Route;
        for d in crate::connectors::description::ALL {
            let ops = supported_ops(d);
            assert!(ops.contains(&"send"), "{}", d.platform);
            assert_eq!(ops.contains(&"edit"), d.edits, "{}", d.platform);
            for op in ops {
                let sample = json!({"op": op, "chat_id": "c", "content": "x", "message_id": "m",
                    "media_kind": "image", "source_url": "/relay/media/id"});
                let Action::Command(command) = action(&sample) else {
                    panic!("{op} is not a command");
                };
                let Route::Connector(command) = command.route(true) else {
                    panic!("{op} does not reach the connector");
                };
                assert!(
                    d.ops.contains(&command.type_name()),
                    "{}: {op} → {} is not among its connector's ops",
                    d.platform,
                    command.type_name()
                );
            }
        }
        let listed = |p: &str| descriptor(p).unwrap()["descriptor"]["supported_ops"].clone();
        let everything = [
            "send",
            "edit",
            "typing",
            "get_chat_info",
            "react",
            "send_media",
            "delete",
        ];
        for platform in ["telegram", "whatsapp"] {
            assert_eq!(listed(platform), json!(everything), "{platform}");
        }
        assert_eq!(listed("wecom"), json!(["send", "typing", "send_media"]));
        assert_eq!(listed("wecom_callback"), json!(["send", "typing"]));
    }

    /// The README's table of what each platform advertises is the descriptors' lists.
    #[test]
    fn the_readme_says_what_each_descriptor_advertises() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let rows: Vec<(Vec<&str>, Vec<&str>)> = readme
            .lines()
            .skip_while(|l| !l.contains("| platform | `supported_ops` |"))
            .skip(2)
            .take_while(|l| l.trim_start().starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                (
                    cells[1].split(", ").collect(),
                    cells[2].split(", ").collect(),
                )
            })
            .collect();
        let mut told: Vec<&str> = rows.iter().flat_map(|(p, _)| p.clone()).collect();
        told.sort_unstable();
        let mut all: Vec<&str> = crate::connectors::description::ALL
            .iter()
            .map(|d| d.platform)
            .collect();
        all.sort_unstable();
        assert_eq!(told, all, "every platform has a row");
        for (platforms, ops) in rows {
            for p in platforms {
                let d = crate::connectors::description::describe(p).unwrap();
                assert_eq!(supported_ops(d), ops, "{p}");
            }
        }
    }

    #[test]
    fn inbound_media_go_out_as_relay_urls_made_absolute_per_gateway() {
        let m: InboundMessage = serde_json::from_value(json!({
            "id": "M4", "chat": "c", "sender": "c", "text": "look", "timestamp": 1,
            "media": {"kind": "image", "mime": "image/png", "path": "/m/a.png", "size": 3}
        }))
        .unwrap();
        let id = |p: &std::path::Path| format!("id-of-{}", p.display());
        let e = inbound_event("telegram", &m, Some(&id));
        assert_eq!(e["media_urls"], json!(["/relay/media/id-of-/m/a.png"]));
        assert_eq!(
            e["media"],
            json!([{"url": "/relay/media/id-of-/m/a.png", "kind": "image", "mime": "image/png",
                "size": 3, "caption": "look"}])
        );
        let line = json!({"type": "inbound", "event": e}).to_string() + "\n";
        let sent: Value = serde_json::from_str(&absolute_media_urls(&line, "http://h:1")).unwrap();
        assert_eq!(
            sent["event"]["media_urls"][0],
            "http://h:1/relay/media/id-of-/m/a.png"
        );
        assert_eq!(
            sent["event"]["media"][0]["url"],
            "http://h:1/relay/media/id-of-/m/a.png"
        );
        // Local paths for a 0.19.0 gateway on the same host; a line without media untouched.
        let local = inbound_event("telegram", &m, None);
        assert_eq!(local["media_urls"], json!(["/m/a.png"]));
        let plain = "{\"type\":\"inbound\",\"event\":{\"text\":\"/relay/media/ in words\"}}\n";
        assert_eq!(absolute_media_urls(plain, "http://h:1"), plain);
    }

    #[test]
    fn send_media_takes_the_newer_contracts_fields_and_the_old_ones() {
        let newer = action(
            &json!({"op": "send_media", "chat_id": "c", "media_kind": "voice",
            "source_url": "http://h/relay/media/x", "content": "", "filename": "v.ogg"}),
        );
        let Action::Command(GatewayCommand::SendMedia(m)) = newer else {
            panic!("{newer:?}");
        };
        assert_eq!(
            (m.path.as_str(), m.kind, m.caption, m.file_name.as_deref()),
            (
                "http://h/relay/media/x",
                MediaKind::Voice,
                None,
                Some("v.ogg")
            )
        );
        let older = action(
            &json!({"op": "send_media", "chat_id": "c", "path": "/f.pdf",
            "media_type": "document", "caption": "doc"}),
        );
        assert!(
            matches!(older, Action::Command(GatewayCommand::SendMedia(ref m))
            if m.path == "/f.pdf" && m.caption.as_deref() == Some("doc"))
        );
    }

    #[test]
    fn a_groups_unaddressed_talk_goes_out_as_context() {
        let m: InboundMessage = serde_json::from_value(json!({
            "id": "M3", "chat": "-100", "sender": "7", "is_group": true, "text": "@bot so?",
            "timestamp": 1, "context": [
                {"text": "lunch at one", "sender": "8", "sender_name": "Ann"},
                {"text": "or two", "sender": "9"}
            ]
        }))
        .unwrap();
        let e = inbound_event("telegram", &m, None);
        assert_eq!(
            e["context"],
            json!([
                {"text": "lunch at one", "source": {"user_name": "Ann"}},
                {"text": "or two", "source": {"user_id": "9"}}
            ])
        );
        assert_eq!(
            descriptor("telegram").unwrap()["descriptor"]["supports_context"],
            true
        );
        assert_eq!(
            descriptor("webhook").unwrap()["descriptor"]["supports_context"],
            false
        );
    }

    #[test]
    fn a_quote_goes_out_as_the_reply_to_object_with_its_author() {
        let m: InboundMessage = serde_json::from_value(json!({
            "id": "M2", "chat": "-100", "sender": "7", "is_group": true, "text": "so?",
            "quoted": {"id": "Q2", "sender": "8", "text": "the plan"}, "timestamp": 1
        }))
        .unwrap();
        let e = inbound_event("telegram", &m, None);
        assert_eq!(e["reply_to"], json!({"text": "the plan", "author": "8"}));
        assert_eq!(e["reply_to_message_id"], "Q2");
        assert_eq!(
            (&e["source"]["is_bot"], &e["source"]["message_is_edit"]),
            (&json!(false), &json!(false))
        );
        assert!(e["source"].get("chat_name").is_none());
    }

    #[test]
    fn an_edit_by_a_bot_in_a_named_group_says_so_and_a_reply_to_us_is_own() {
        let m: InboundMessage = serde_json::from_value(json!({
            "id": "-100/9~1700000300", "chat": "-100", "sender": "7", "is_group": true,
            "chat_name": "Ops", "sender_is_bot": true, "edited": true, "text": "fixed",
            "quoted": {"id": "-100/3", "sender": "42", "text": "an answer", "from_me": true},
            "timestamp": 1
        }))
        .unwrap();
        let e = inbound_event("telegram", &m, None);
        assert_eq!(e["source"]["chat_name"], "Ops");
        assert_eq!(e["source"]["is_bot"], true);
        assert_eq!(e["source"]["message_is_edit"], true);
        assert_eq!(e["message_id"], "-100/9~1700000300");
        assert_eq!(
            e["reply_to"],
            json!({"text": "an answer", "author": "42", "is_own": true})
        );
    }

    #[test]
    fn a_lid_sender_carries_its_phone_as_the_alt_id() {
        let m: InboundMessage = serde_json::from_value(json!({
            "id": "M1", "chat": "123@lid", "sender": "123@lid",
            "sender_alt": "15551234567@s.whatsapp.net", "push_name": "Ann",
            "text": "hi", "quoted": {"id": "Q1", "text": "before"}, "timestamp": 1
        }))
        .unwrap();
        let e = inbound_event("whatsapp", &m, None);
        assert_eq!(e["source"]["user_id_alt"], "15551234567@s.whatsapp.net");
        assert_eq!(e["source"]["chat_id_alt"], "15551234567@s.whatsapp.net");
        assert_eq!(e["source"]["chat_type"], "dm");
        assert_eq!(e["reply_to_message_id"], "Q1");
        assert_eq!(e["reply_to"], json!({"text": "before"}));
        assert!(e.get("reply_to_text").is_none(), "read by no gateway");
        assert_eq!(e["message_type"], "text");
        assert_eq!(e["media_urls"], json!([]));
    }

    #[test]
    fn a_failure_never_reads_as_an_egress_decline() {
        let r = failure("send_failed: Bad Request: EGRESS DECLINED: by the platform");
        let text = r["error"].as_str().unwrap();
        assert!(!text.to_lowercase().contains("egress declined"), "{text}");
        assert_eq!(
            text,
            "send_failed: Bad Request: egress refused: by the platform"
        );
        assert!(r.get("code").is_none());
        assert_eq!(r["success"], false);
    }

    #[test]
    fn ops_map_to_commands_or_say_why_not() {
        let send =
            action(&json!({"op": "send", "chat_id": "c", "content": "hi", "reply_to": null}));
        assert!(
            matches!(send, Action::Command(GatewayCommand::SendText(ref t)) if t.text == "hi" && t.reply_to.is_none())
        );
        assert!(matches!(
            action(&json!({"op": "get_chat_info", "chat_id": "c"})),
            Action::Command(GatewayCommand::ChatInfo(_))
        ));
        assert!(matches!(
            action(&json!({"op": "react", "chat_id": "c", "message_id": "m", "emoji": "👍"})),
            Action::Command(GatewayCommand::React(_))
        ));
        assert!(matches!(
            action(&json!({"op": "react", "chat_id": "c"})),
            Action::Invalid(_)
        ));
        // Hermes takes its 👀 back with `remove: true`: the connector's empty emoji.
        let removed = action(&json!({"op": "react", "chat_id": "c", "message_id": "m",
            "emoji": "👀", "remove": true}));
        assert!(
            matches!(&removed, Action::Command(GatewayCommand::React(r)) if r.emoji.is_empty()),
            "{removed:?}"
        );
        assert_eq!(
            action(&json!({"op": "follow_up", "chat_id": "c"})),
            Action::Unsupported("follow_up".into())
        );
        assert!(matches!(
            action(&json!({"op": "send", "chat_id": "c"})),
            Action::Invalid(_)
        ));
        assert!(matches!(
            action(&json!({"op": "send", "content": "x"})),
            Action::Invalid(_)
        ));
    }
}
