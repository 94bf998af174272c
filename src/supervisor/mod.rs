//! Connector supervision: one task per connector (`task`) owns its child process, reached
//! through a `ConnectorHandle`; the restart decision is the pure
//! `policy::restart::RestartPolicy::next`.

pub mod child;
pub mod dedup;
pub mod handle;
pub mod inbound;
pub mod task;

pub use handle::{AlertRouter, ConnectorHandle, Control, ErrorCode, Origin, Rejected};

/// Exit codes a connector uses to say what should happen next (PROTOCOL.md).
pub use bridge_protocol::exit as exit_codes;
