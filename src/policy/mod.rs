//! Every decision, as pure functions with no I/O: who may talk to the assistant (`access`),
//! who is who (`identity`), the limits of pairing (`pairing_limits`), what may be sent where
//! (`send`), what a connector's exit means (`exit`), when it is restarted (`restart`) and
//! when it is hung (`liveness`). The stores and the tasks
//! that act on these decisions depend on this module, never the reverse.

pub mod access;
pub mod exit;
pub mod identity;
pub mod liveness;
pub mod pacing;
pub mod pairing_limits;
pub mod restart;
pub mod send;

pub use access::*;
pub use identity::{ChatKind, IdentityMap, chat_kind, lid_key, normalize};
