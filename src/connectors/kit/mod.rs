//! What every built-in connector needs besides its own API client and translation, in one
//! place: the connector's side of PROTOCOL.md (`link`: `hello`, status, heartbeats, the
//! command reader, `recorded` waits), the terminal states and their exit codes (`terminal`),
//! backoff with jitter (`backoff`), secrets kept out of every error (`secret`), media and state
//! files written 0600 (`files`), and the rustls HTTP client (`http`).
//!
//! A new connector is then its own API client, its own translation (pure, table-tested) and a
//! small main loop. A receiver's listener itself is the `listener` module's, as every listener
//! of the executable is; `receiver` binds it and reports its counts. A WebSocket client joins the kit
//! when a second connector needs one.

pub mod backoff;
pub mod checks;
pub mod cipher;
pub mod failure;
pub mod files;
pub mod hermes;
pub mod http;
pub mod link;
pub mod receiver;
pub mod secret;
pub mod settings;
pub mod terminal;
pub mod text;

pub use backoff::Backoff;
pub use link::{CommandOutcome, Link, after_parts, error};
pub use secret::Redactor;
pub use terminal::Terminal;

/// The runtime of a connector that serves or holds sockets (two workers: the machine's two
/// cores are shared with the supervisor and the other connectors). `None`, said on stderr,
/// when the OS will not give it its threads.
pub fn runtime(connector: &str) -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{connector}: cannot start its runtime: {e}");
            None
        }
    }
}

/// The answer to a command this connector does not do.
pub fn unsupported(
    connector: &str,
    command: &bridge_protocol::message::Command,
) -> bridge_protocol::message::ErrorBody {
    error(
        "unsupported",
        &format!("the {connector} connector cannot {}", command.type_name()),
        false,
    )
}
