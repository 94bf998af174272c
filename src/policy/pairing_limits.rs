//! The limits of DM pairing, as Hermes has them: the policy decides with them, the pairing
//! store enforces them on its files.

/// A code is valid this long.
pub const CODE_TTL_SECS: f64 = 3600.0;
/// Pending requests per platform at most.
pub const MAX_PENDING_PER_PLATFORM: usize = 3;
/// One code request (or fixed reply) per user this often.
pub const RATE_LIMIT_SECS: f64 = 600.0;
/// Failed approvals before approvals are locked.
pub const MAX_FAILED_APPROVALS: u64 = 5;
/// How long approvals stay locked.
pub const LOCKOUT_SECS: f64 = 3600.0;
