//! Reading `bridge.log` for people: each line is classified — one of our JSON events, an old
//! bridge JSON event, a pino (Baileys) log line, an old emoji status line, QR-code art, or other
//! text — and turned into one readable entry that filters can match. Pure functions.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::util::mask::{mask_digit_runs, mask_id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A bridgekeeper event (`ts` + `event`).
    Event,
    /// A JSON event of the old bridge (`event`, no `ts`).
    LegacyEvent,
    /// A pino line (Baileys' logger): `level`, `time`, `msg`.
    Pino,
    /// An old human status line (✅ ⚠️ ↻ ❌ …).
    Status,
    /// A QR code drawn with block characters (consecutive lines are one entry).
    Qr,
    Text,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub kind: Kind,
    /// RFC 3339 UTC, when the line has a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ts: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chat: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    /// Message text preview (written only in debug mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// Remaining fields, `key=value`, or the text of a non-JSON line.
    pub detail: String,
}

const QR_CHARS: [char; 4] = ['█', '▀', '▄', ' '];
const PINO_LEVELS: [(u64, &str); 6] = [
    (10, "trace"),
    (20, "debug"),
    (30, "info"),
    (40, "warn"),
    (50, "error"),
    (60, "fatal"),
];

fn s(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(|v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn rest(map: &Map<String, Value>, skip: &[&str]) -> String {
    map.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn millis_to_rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn is_qr_art(line: &str) -> bool {
    let trimmed = line.trim_end();
    trimmed.chars().count() >= 10
        && trimmed.chars().all(|c| QR_CHARS.contains(&c))
        && trimmed.contains('█')
}

/// Classifies one line.
pub fn classify(line: &str) -> Entry {
    let mut entry = Entry {
        kind: Kind::Text,
        ts: None,
        connector: None,
        event: "text".into(),
        reason: None,
        chat: None,
        sender: None,
        preview: None,
        detail: line.trim_end().to_owned(),
    };
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(line) {
        if let Some(event) = s(&map, "event") {
            let ours = map.contains_key("ts");
            entry.kind = if ours { Kind::Event } else { Kind::LegacyEvent };
            entry.ts = s(&map, "ts");
            entry.connector = s(&map, "connector");
            entry.event = event;
            entry.reason = s(&map, "reason");
            entry.chat = s(&map, "chat").or_else(|| s(&map, "chatId"));
            entry.sender = s(&map, "sender").or_else(|| s(&map, "senderId"));
            entry.preview = s(&map, "preview");
            entry.detail = rest(
                &map,
                &[
                    "ts",
                    "connector",
                    "event",
                    "reason",
                    "chat",
                    "chatId",
                    "sender",
                    "senderId",
                    "preview",
                ],
            );
            return entry;
        }
        if let (Some(level), Some(msg)) = (map.get("level").and_then(Value::as_u64), s(&map, "msg"))
        {
            entry.kind = Kind::Pino;
            let name = PINO_LEVELS
                .iter()
                .rev()
                .find(|(n, _)| level >= *n)
                .map(|(_, l)| *l)
                .unwrap_or("log");
            entry.event = format!("baileys.{name}");
            entry.ts = map
                .get("time")
                .and_then(Value::as_u64)
                .map(millis_to_rfc3339);
            entry.detail = msg;
            return entry;
        }
        return entry;
    }
    if is_qr_art(line) {
        entry.kind = Kind::Qr;
        entry.event = "qr_code".into();
        entry.detail = "[QR code]".into();
        return entry;
    }
    let t = line.trim_start();
    let status = [
        ("✅", "connected"),
        ("⚠", "connection_closed"),
        ("↻", "restart_requested"),
        ("❌", "logged_out"),
        ("🌉", "listening"),
        ("📱", "qr_shown"),
    ];
    if let Some((_, name)) = status.iter().find(|(mark, _)| t.starts_with(mark)) {
        entry.kind = Kind::Status;
        entry.event = (*name).into();
        // "Connection closed (reason: 428)" → the code is the reason.
        entry.reason = t
            .split("reason: ")
            .nth(1)
            .or_else(|| t.split("code ").nth(1))
            .map(|r| {
                r.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .filter(|r| !r.is_empty());
    }
    entry
}

/// Filters from the command line; every one given must match.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub events: Vec<String>,
    pub reasons: Vec<String>,
    /// Matches chat ids containing this (digits match masked ids by their last 4).
    pub chat: Option<String>,
    pub connector: Option<String>,
    /// RFC 3339 lower bound; entries without a time do not pass.
    pub since: Option<std::time::SystemTime>,
}

impl Filter {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.reasons.is_empty()
            && self.chat.is_none()
            && self.connector.is_none()
            && self.since.is_none()
    }

    pub fn matches(&self, e: &Entry) -> bool {
        let any = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        let chat_ok = self.chat.as_deref().is_none_or(|want| {
            let want = want.trim_start_matches('+');
            let tail = &want[want.len().saturating_sub(4)..];
            e.chat
                .as_deref()
                .is_some_and(|c| c.contains(want) || (c.starts_with('…') && c.contains(tail)))
        });
        let since_ok = self.since.is_none_or(|since| {
            e.ts.as_deref()
                .and_then(|t| humantime::parse_rfc3339_weak(t.trim_end_matches('Z')).ok())
                .is_some_and(|t| t >= since)
        });
        any(&self.events, Some(&e.event))
            && any(&self.reasons, e.reason.as_deref())
            && chat_ok
            && self
                .connector
                .as_deref()
                .is_none_or(|c| e.connector.as_deref() == Some(c))
            && since_ok
    }
}

/// One readable line. Outside debug mode identities are masked and previews left out.
pub fn render(e: &Entry, debug: bool) -> String {
    let time =
        e.ts.as_deref()
            .and_then(|t| t.get(11..23))
            .unwrap_or("            ");
    let id = |v: &Option<String>| {
        v.as_deref().map(|x| {
            if debug || x.starts_with('…') {
                x.to_owned()
            } else {
                mask_id(x)
            }
        })
    };
    let mut line = format!(
        "{time} {:<10} {:<24}",
        e.connector.as_deref().unwrap_or("-"),
        e.event
    );
    if let Some(r) = &e.reason {
        line.push_str(&format!(" {r}"));
    }
    if let Some(c) = id(&e.chat) {
        line.push_str(&format!(" chat={c}"));
    }
    if let Some(s) = id(&e.sender)
        && e.sender != e.chat
    {
        line.push_str(&format!(" from={s}"));
    }
    if debug && let Some(p) = &e.preview {
        line.push_str(&format!(" {p:?}"));
    }
    if !e.detail.is_empty() {
        let detail = if debug {
            e.detail.clone()
        } else {
            mask_digit_runs(&e.detail)
        };
        line.push_str(&format!(" {detail}"));
    }
    line.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_line_is_recognised() {
        let ours = classify(
            r#"{"ts":"2026-11-21T05:54:16.588Z","connector":"whatsapp","event":"decision","message_id":"M1","chat":"…4567@s.whatsapp.net","sender":"…4567@s.whatsapp.net","outcome":"ignored","reason":"allowlist_mismatch"}"#,
        );
        assert_eq!(
            (ours.kind, ours.event.as_str(), ours.reason.as_deref()),
            (Kind::Event, "decision", Some("allowlist_mismatch"))
        );
        assert_eq!(ours.detail, "message_id=M1 outcome=ignored");
        let old = classify(
            r#"{"event":"ignored","reason":"self_chat_mode_rejects_non_self","chatId":"15551234567@s.whatsapp.net","senderId":"15551234567@s.whatsapp.net"}"#,
        );
        assert_eq!(
            (old.kind, old.chat.as_deref()),
            (Kind::LegacyEvent, Some("15551234567@s.whatsapp.net"))
        );
        let pino = classify(
            r#"{"level":40,"time":1795240266577,"pid":1,"hostname":"vm","msg":"no name present"}"#,
        );
        assert_eq!(
            (pino.kind, pino.event.as_str(), pino.ts.as_deref()),
            (Kind::Pino, "baileys.warn", Some("2026-11-21T05:51:06.577Z"))
        );
        let closed = classify("⚠️  Connection closed (reason: 428). Reconnecting in 3s...");
        assert_eq!(
            (closed.kind, closed.event.as_str(), closed.reason.as_deref()),
            (Kind::Status, "connection_closed", Some("428"))
        );
        assert_eq!(
            classify("↻ WhatsApp requested restart (code 515). Reconnecting...")
                .reason
                .as_deref(),
            Some("515")
        );
        assert_eq!(
            classify("❌ Logged out. Delete session and restart to re-authenticate.").event,
            "logged_out"
        );
        assert_eq!(classify("████ ▄▄▄▄▄ █▄▀ ▀██▄███ ▄▄▄▄▄ ████").kind, Kind::Qr);
        assert_eq!(classify("npm WARN something").kind, Kind::Text);
    }

    #[test]
    fn rendering_masks_unless_debug() {
        let e = classify(
            r#"{"event":"ignored","reason":"allowlist_mismatch","chatId":"15551234567@s.whatsapp.net","senderId":"15551234567@s.whatsapp.net"}"#,
        );
        let shown = render(&e, false);
        assert!(
            shown.contains("chat=…4567@s.whatsapp.net") && !shown.contains("15551234567"),
            "{shown}"
        );
        assert!(render(&e, true).contains("15551234567"));
    }

    #[test]
    fn filters_match_event_reason_chat_connector_and_time() {
        let e = classify(
            r#"{"ts":"2026-11-21T05:54:16.588Z","connector":"wa","event":"decision","chat":"…4567@s.whatsapp.net","reason":"duplicate"}"#,
        );
        let f = |f: Filter| f.matches(&e);
        assert!(f(Filter {
            events: vec!["decision".into()],
            ..Default::default()
        }));
        assert!(!f(Filter {
            events: vec!["alert".into()],
            ..Default::default()
        }));
        assert!(f(Filter {
            reasons: vec!["duplicate".into()],
            ..Default::default()
        }));
        assert!(
            f(Filter {
                chat: Some("+15551234567".into()),
                ..Default::default()
            }),
            "a full number matches a masked id by its last 4"
        );
        assert!(!f(Filter {
            chat: Some("15559999999".into()),
            ..Default::default()
        }));
        assert!(f(Filter {
            connector: Some("wa".into()),
            ..Default::default()
        }));
        let before = humantime::parse_rfc3339("2026-11-21T05:00:00Z").unwrap();
        let after = humantime::parse_rfc3339("2026-11-21T06:00:00Z").unwrap();
        assert!(f(Filter {
            since: Some(before),
            ..Default::default()
        }));
        assert!(!f(Filter {
            since: Some(after),
            ..Default::default()
        }));
    }
}
