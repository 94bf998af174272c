//! Exit codes a connector uses to say what the supervisor should do next (PROTOCOL.md, "Exit
//! codes"). Any other code, or a signal, is a crash: restarted with backoff.

/// Stopped as asked (stdin closed or `shutdown`): not restarted.
pub const CLEAN: i32 = 0;
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
/// The network refused the account's credential (a bot token): do not restart; a new one is
/// needed.
pub const NEEDS_TOKEN: i32 = 15;
