//! Per-line decoding errors. Each one is reported for a single line; the decoder then goes on
//! with the next line, so one bad line never ends a link.

use thiserror::Error;

/// Why one line was rejected. `line` is the 1-based line number on the link.
///
/// Where the line still named an `id` (a request's, or an inbound message's), the error keeps
/// it, so the request can still get its one result and the message its ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// Guards against a peer that never sends a newline (memory exhaustion): the rest of the
    /// line is skipped up to the next newline without being buffered.
    #[error("line {line}: longer than the limit of {limit} bytes; skipped to the next newline")]
    TooLong {
        line: u64,
        limit: usize,
        /// What the first bytes of the line named.
        recovered: Recovered,
    },
    #[error("line {line}: invalid UTF-8 after {valid_up_to} bytes")]
    InvalidUtf8 { line: u64, valid_up_to: usize },
    #[error("line {line}: not JSON ({detail}): {excerpt:?}")]
    NotJson {
        line: u64,
        detail: String,
        excerpt: String,
        len: usize,
    },
    #[error("line {line}: JSON but not an object: {excerpt:?}")]
    NotAnObject {
        line: u64,
        excerpt: String,
        len: usize,
    },
    #[error("line {line}: object without a string \"type\" field: {excerpt:?}")]
    MissingType {
        line: u64,
        excerpt: String,
        id: Option<String>,
        len: usize,
    },
    #[error("line {line}: unknown message type {type_name:?}")]
    UnknownType {
        line: u64,
        type_name: String,
        id: Option<String>,
        len: usize,
    },
    #[error("line {line}: invalid {type_name:?} message: {detail}")]
    InvalidMessage {
        line: u64,
        type_name: String,
        detail: String,
        id: Option<String>,
        len: usize,
    },
}

/// Fields read from the start of a line too long to decode: an id (a request's, or the
/// message's of an `inbound` event) and, for inbound events, the chat and the sender.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub type_name: Option<String>,
    pub id: Option<String>,
    pub chat: Option<String>,
    pub sender: Option<String>,
}

impl LineError {
    /// Stable snake_case name, used in `bridge.log`, counters and the test vectors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLong { .. } => "too_long",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::NotJson { .. } => "not_json",
            Self::NotAnObject { .. } => "not_an_object",
            Self::MissingType { .. } => "missing_type",
            Self::UnknownType { .. } => "unknown_type",
            Self::InvalidMessage { .. } => "invalid_message",
        }
    }

    pub fn line(&self) -> u64 {
        match self {
            Self::TooLong { line, .. }
            | Self::InvalidUtf8 { line, .. }
            | Self::NotJson { line, .. }
            | Self::NotAnObject { line, .. }
            | Self::MissingType { line, .. }
            | Self::UnknownType { line, .. }
            | Self::InvalidMessage { line, .. } => *line,
        }
    }

    /// The id the rejected line carried (a string, or a number as its decimal text).
    pub fn id(&self) -> Option<&str> {
        match self {
            Self::TooLong { recovered, .. } => recovered.id.as_deref(),
            Self::MissingType { id, .. }
            | Self::UnknownType { id, .. }
            | Self::InvalidMessage { id, .. } => id.as_deref(),
            Self::InvalidUtf8 { .. } | Self::NotJson { .. } | Self::NotAnObject { .. } => None,
        }
    }

    /// The error without anything the line said beyond its type and id: its kind, line
    /// number, length and where the JSON went wrong. For logs, where message text must not go
    /// (`Display` quotes the line).
    pub fn summary(&self) -> String {
        let mut out = format!("line {}: {}", self.line(), self.kind());
        let mut add = |part: String| {
            out.push_str(if out.contains(" (") { ", " } else { " (" });
            out.push_str(&part);
        };
        match self {
            Self::TooLong { limit, .. } => add(format!("over {limit} bytes")),
            Self::InvalidUtf8 { valid_up_to, .. } => add(format!("after byte {valid_up_to}")),
            Self::NotJson { detail, len, .. } | Self::InvalidMessage { detail, len, .. } => {
                if let Self::InvalidMessage { type_name, .. } = self {
                    add(format!("type {type_name:?}"));
                }
                add(format!("{len} bytes"));
                if let Some(at) = json_position(detail) {
                    add(at.to_owned());
                }
            }
            Self::NotAnObject { len, .. } | Self::MissingType { len, .. } => {
                add(format!("{len} bytes"))
            }
            Self::UnknownType { type_name, len, .. } => {
                // A type name is shown only when it looks like one.
                let name_like = type_name.len() <= 40
                    && type_name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                add(if name_like {
                    format!("type {type_name:?}")
                } else {
                    format!("a type of {} chars", type_name.chars().count())
                });
                add(format!("{len} bytes"));
            }
        }
        if let Some(id) = self.id() {
            add(format!("id {id:?}"));
        }
        if out.contains(" (") {
            out.push(')');
        }
        out
    }

    /// The error code of the `result` a request line with a recoverable id is answered with.
    pub fn result_code(&self) -> &'static str {
        match self {
            Self::UnknownType { .. } => "unknown_type",
            Self::TooLong { .. } => "too_large",
            _ => "invalid_request",
        }
    }
}

/// `line 1 column 23` from the end of a serde_json error message (which may quote values
/// before it, so nothing else is taken).
fn json_position(detail: &str) -> Option<&str> {
    let at = detail.rfind(" at line ")?;
    let position = &detail[at + 4..];
    position
        .split_whitespace()
        .enumerate()
        .all(|(i, w)| match i {
            0 => w == "line",
            2 => w == "column",
            1 | 3 => w.bytes().all(|b| b.is_ascii_digit()),
            _ => false,
        })
        .then_some(position)
}

#[cfg(test)]
mod tests {
    #[test]
    fn summaries_never_quote_the_line() {
        let secret = "my secret message";
        let errors = [
            crate::codec::parse_line::<crate::message::ConnectorEvent>(
                format!(r#"{{"type":"inbound","message":{{"id":"M1","text":"{secret}"}}}}"#)
                    .as_bytes(),
                3,
            )
            .unwrap_err(),
            crate::codec::parse_line::<crate::message::ConnectorEvent>(
                format!(r#"{{"type":"status","state":"{secret}"}}"#).as_bytes(),
                4,
            )
            .unwrap_err(),
            crate::codec::parse_line::<crate::message::ConnectorEvent>(
                format!(r#"{{"type":"inbound", {secret}"#).as_bytes(),
                5,
            )
            .unwrap_err(),
            crate::codec::parse_line::<crate::message::ConnectorEvent>(
                format!(r#"["{secret}"]"#).as_bytes(),
                6,
            )
            .unwrap_err(),
            crate::codec::parse_line::<crate::message::ConnectorEvent>(
                format!(r#"{{"type":"{secret}"}}"#).as_bytes(),
                7,
            )
            .unwrap_err(),
        ];
        for e in &errors {
            let summary = e.summary();
            assert!(!summary.contains("secret"), "{summary}");
            assert!(summary.contains(e.kind()), "{summary}");
        }
        assert!(
            errors[1].to_string().contains("secret"),
            "Display quotes the value"
        );
        assert_eq!(
            errors[1].summary(),
            r#"line 4: invalid_message (type "status", 45 bytes, line 1 column 44)"#
        );
        assert!(
            errors[2].summary().contains("column"),
            "{}",
            errors[2].summary()
        );
    }
}
