//! Small helpers shared by every stage: private files and directories, the one-owner lock,
//! masking identities for logs, the clock.

pub mod blocking;
pub mod fs;
pub mod hex;
pub mod lock;
pub mod mask;
pub mod random;
pub mod time;
pub mod watch;
