//! What every built-in connector needs besides its own API client and translation, in one
//! place: the connector's side of PROTOCOL.md (`link`: `hello`, status, heartbeats, the
//! command reader, `recorded` waits), the terminal states and their exit codes (`terminal`),
//! backoff with jitter (`backoff`), secrets kept out of every error (`secret`), media and state
//! files written 0600 (`files`), and the rustls HTTP client (`http`).
//!
//! A new connector is then its own API client, its own translation (pure, table-tested) and a
//! small main loop. HTTP listeners (callback and webhook receivers) are not here: every
//! listener of the executable goes through the `listener` module. A WebSocket client joins the kit
//! when a second connector needs one.

pub mod backoff;
pub mod cipher;
pub mod files;
pub mod hermes;
pub mod http;
pub mod link;
pub mod secret;
pub mod terminal;
pub mod text;

pub use backoff::Backoff;
pub use link::{CommandOutcome, Link, after_parts, error};
pub use secret::Redactor;
pub use terminal::Terminal;
