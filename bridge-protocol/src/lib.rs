//! bridge-protocol: the contract between the bridgekeeper supervisor, its connectors and the
//! gateway. See `PROTOCOL.md` beside this crate for the prose version.

pub mod codec;
pub mod error;
pub mod exit;
pub mod gateway;
pub mod message;

pub use codec::{
    DEFAULT_MAX_LINE_BYTES, EncodeError, JsonLinesCodec, append_line, encode_line, parse_line,
};
pub use error::LineError;
pub use message::Message;

/// Protocol major version. A connector whose `hello` names another version is not used.
pub const PROTOCOL_VERSION: u32 = 1;
