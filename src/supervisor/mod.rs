//! Connector supervision: one task per connector (`task`) owns its child process, reached
//! through a `ConnectorHandle`; the restart decision is the pure `restart::RestartPolicy::next`.

pub mod child;
pub mod handle;
pub mod inbound;
pub mod restart;
pub mod task;

pub use handle::{AlertRouter, ConnectorHandle, Control, ErrorCode, Origin, Rejected};

/// Exit codes a connector uses to say what should happen next (see PROTOCOL.md).
pub mod exit_codes {
    /// Restart at once (e.g. WhatsApp 515 "restart required" after linking).
    pub const RESTART_NOW: i32 = 10;
    /// Transient disconnect: restart with backoff.
    pub const RESTART_BACKOFF: i32 = 11;
    /// The account was logged out: do not restart; re-link.
    pub const LOGGED_OUT: i32 = 12;
    /// Another client replaced this connection: do not restart.
    pub const CONFLICT: i32 = 13;
    /// Unrecoverable (bad arguments, unusable session): do not restart.
    pub const FATAL: i32 = 14;
}
