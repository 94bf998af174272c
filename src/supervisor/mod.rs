//! Connector supervision: one task per connector (`connector`) owns its child process, reached
//! through a `ConnectorHandle`; the restart decision is the pure
//! `policy::restart::RestartPolicy::next`.

pub mod connector;
pub mod handle;

pub use handle::{AlertRouter, ConnectorHandle, Control, ErrorCode, Origin, Peers, Rejected};
