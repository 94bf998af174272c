//! Knowing that a few files changed without looking at them for every message: a thread
//! blocked on inotify for their directories counts changes, and the hot path reads the count
//! (one atomic load). Files replaced by a rename (an atomic write) are seen as well as files
//! written in place.

use std::collections::HashSet;
use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};

/// Counts changes to a set of files.
pub struct FileWatch {
    changes: Arc<AtomicU64>,
}

impl FileWatch {
    /// Watches `files` (their directories must exist). `None` when the kernel's inotify cannot
    /// be used here: the caller then has to look at the files itself.
    pub fn start(files: &[PathBuf]) -> Option<Self> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let mut dirs = HashSet::new();
        let mut names: HashSet<OsString> = HashSet::new();
        for f in files {
            names.insert(f.file_name()?.to_owned());
            dirs.insert(f.parent()?.to_owned());
        }
        let flags = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM;
        for d in &dirs {
            inotify.add_watch(d.as_path(), flags).ok()?;
        }
        let changes = Arc::new(AtomicU64::new(0));
        let count = changes.clone();
        std::thread::Builder::new()
            .name("file-watch".into())
            .spawn(move || {
                // Ends once nobody holds the watch any more (checked twice a second).
                while Arc::strong_count(&count) > 1 {
                    let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
                    if poll(&mut fds, PollTimeout::from(500u16)).unwrap_or(0) == 0 {
                        continue;
                    }
                    let Ok(events) = inotify.read_events() else {
                        continue;
                    };
                    if events
                        .iter()
                        .any(|e| e.name.as_ref().is_some_and(|n| names.contains(n)))
                    {
                        count.fetch_add(1, Ordering::Release);
                    }
                }
            })
            .ok()?;
        Some(Self { changes })
    }

    /// How many changes so far: a different number means look again.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_in_place_and_renames_over_a_watched_file_are_counted_others_not() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join(".env");
        let w = FileWatch::start(std::slice::from_ref(&env)).expect("inotify");
        let wait_for = |n: u64| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while w.changes() < n {
                assert!(std::time::Instant::now() < deadline, "no change seen");
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        };
        std::fs::write(&env, "A=1\n").unwrap();
        wait_for(1);
        let before = w.changes();
        let tmp = dir.path().join(".env.tmp");
        std::fs::write(&tmp, "A=2\n").unwrap();
        std::fs::rename(&tmp, &env).unwrap();
        wait_for(before + 1);
        let before = w.changes();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(w.changes(), before, "another file is not counted");
    }
}
