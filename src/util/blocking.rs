//! Blocking work (a file lock, an fsync) from code that runs on an async worker.
//!
//! The rule (ARCHITECTURE.md): no blocking file I/O or lock on an async worker unless it goes
//! through here or `spawn_blocking`. On the multi-threaded runtime `bridgekeeper` runs, the
//! worker hands its other tasks to another thread while `f` blocks, so a CLI holding the
//! pairing lock stalls one connector's inbound path, not every connector's.

/// Runs `f`, letting the runtime move this worker's other tasks elsewhere while it blocks. On
/// a single-threaded runtime (unit tests) it simply runs `f`.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
