//! A listener's live counts: kept by `Listener`, read into every status snapshot by the board
//! (`record::board`), which is woken on a refusal or a deadline so `status.json` shows it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct ListenerCounters {
    pub open: AtomicU64,
    pub accepted: AtomicU64,
    /// Connections turned away over the cap (answered 503, or closed unread).
    pub refused: AtomicU64,
    /// Connections turned away because their address had as many open as one client may.
    pub refused_per_client: AtomicU64,
    /// Connections closed for a header deadline, and requests answered 408.
    pub timed_out: AtomicU64,
    /// Request bodies that fell behind the listener's minimum rate.
    pub slow_body: AtomicU64,
    wake: Weak<Notify>,
}

impl ListenerCounters {
    /// Counters that wake `changed` on a refusal or a deadline.
    pub fn waking(changed: &Arc<Notify>) -> Self {
        Self {
            wake: Arc::downgrade(changed),
            ..Self::default()
        }
    }

    /// Adds one to `counter` (a refusal or a deadline) and wakes the status writer.
    pub fn count(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(changed) = self.wake.upgrade() {
            changed.notify_one();
        }
    }
}
