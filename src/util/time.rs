//! The clock, in the units the files and the protocol use.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in seconds with a fraction (the pairing files' unit).
pub fn unix_secs() -> f64 {
    since_epoch(SystemTime::now()).as_secs_f64()
}

/// Unix time in milliseconds (`status.json`'s unit).
pub fn unix_ms(at: SystemTime) -> u64 {
    since_epoch(at).as_millis() as u64
}

fn since_epoch(at: SystemTime) -> std::time::Duration {
    at.duration_since(UNIX_EPOCH).unwrap_or_default()
}
