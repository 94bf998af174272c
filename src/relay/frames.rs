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
    // A direct chat is named after the person, as Hermes' own adapters name it.
    let chat_name = m
        .chat_name
        .as_ref()
        .or(m.push_name.as_ref().filter(|_| !m.is_group));
    if let Some(name) = chat_name {
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
mod tests;
