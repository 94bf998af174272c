//! Per-line decoding errors. Each one is reported for a single line; the decoder then goes on
//! with the next line, so one bad line never ends a link.

use thiserror::Error;

/// Why one line was rejected. `line` is the 1-based line number on the link.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// Guards against a peer that never sends a newline (memory exhaustion): the rest of the
    /// line is skipped up to the next newline without being buffered.
    #[error("line {line}: longer than the limit of {limit} bytes; skipped to the next newline")]
    TooLong { line: u64, limit: usize },
    #[error("line {line}: invalid UTF-8 after {valid_up_to} bytes")]
    InvalidUtf8 { line: u64, valid_up_to: usize },
    #[error("line {line}: not JSON ({detail}): {excerpt:?}")]
    NotJson {
        line: u64,
        detail: String,
        excerpt: String,
    },
    #[error("line {line}: JSON but not an object: {excerpt:?}")]
    NotAnObject { line: u64, excerpt: String },
    #[error("line {line}: object without a string \"type\" field: {excerpt:?}")]
    MissingType { line: u64, excerpt: String },
    #[error("line {line}: unknown message type {type_name:?}")]
    UnknownType { line: u64, type_name: String },
    #[error("line {line}: invalid {type_name:?} message: {detail}")]
    InvalidMessage {
        line: u64,
        type_name: String,
        detail: String,
    },
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
}
