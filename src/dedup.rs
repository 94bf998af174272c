//! Duplicate detection by message id: a bounded window of recently decided message keys, kept
//! in memory and appended to a file in the state dir, so a connector that replays messages
//! after a restart (Baileys does, for messages received while offline) cannot get one message
//! decided twice — not even across a supervisor restart.

use std::collections::{HashSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fsutil::write_atomic;

/// Message keys remembered per connector.
pub const WINDOW: usize = 20_000;
/// Keys are written in batches: a supervisor killed with SIGKILL forgets at most this much,
/// like `bridge.log` (a clean stop writes everything).
const FLUSH_EVERY: Duration = Duration::from_millis(200);

pub struct Dedup {
    set: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    flushed: Instant,
    /// Lines in the file: it is rewritten with only the window once it doubles.
    lines: usize,
}

impl Dedup {
    /// Loads the window from `path` (missing is empty; unreadable lines are skipped: the worst
    /// case is one duplicate delivered, never a message lost).
    pub fn open(path: &Path, capacity: usize) -> Self {
        let mut dedup = Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            path: path.to_owned(),
            file: None,
            flushed: Instant::now(),
            lines: 0,
        };
        if let Ok(text) = std::fs::read(path) {
            for line in String::from_utf8_lossy(&text).lines() {
                dedup.lines += 1;
                dedup.remember(line.to_owned());
            }
        }
        dedup.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "dedup file unavailable; duplicates are caught in memory only"))
            .ok()
            .map(BufWriter::new);
        dedup
    }

    pub fn key(chat: &str, id: &str) -> String {
        format!("{chat}/{id}")
    }

    pub fn contains(&self, key: &str) -> bool {
        self.set.contains(key)
    }

    /// Records a decided message.
    pub fn insert(&mut self, key: String) {
        if key.contains('\n') || self.set.contains(&key) {
            return;
        }
        if let Some(file) = &mut self.file {
            let _ = writeln!(file, "{key}");
            self.lines += 1;
            if self.flushed.elapsed() >= FLUSH_EVERY {
                let _ = file.flush();
                self.flushed = Instant::now();
            }
        }
        self.remember(key);
        if self.lines > self.capacity * 2 {
            self.compact();
        }
    }

    fn remember(&mut self, key: String) {
        if self.set.insert(key.clone()) {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    fn compact(&mut self) {
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
        let mut text = String::new();
        for key in &self.order {
            text.push_str(key);
            text.push('\n');
        }
        if write_atomic(&self.path, text.as_bytes()).is_ok() {
            self.lines = self.order.len();
            self.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .ok()
                .map(BufWriter::new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_survives_a_restart_and_stays_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wa.seen");
        let mut d = Dedup::open(&path, 10);
        for i in 0..35 {
            d.insert(Dedup::key("c", &i.to_string()));
        }
        assert!(d.contains("c/34") && !d.contains("c/24"));
        drop(d);
        let d = Dedup::open(&path, 10);
        assert!(d.contains("c/34") && d.contains("c/25") && !d.contains("c/24"));
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 20, "file compacted, has {lines} lines");
    }
}
