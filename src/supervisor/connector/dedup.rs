//! Duplicate detection by message id: a bounded window of recently decided message keys, kept
//! in memory and appended to a file in the state dir, so a connector that replays messages
//! after a restart (Baileys does, for messages received while offline) cannot get one message
//! decided twice — not even across a supervisor restart.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::hash::BuildHasher;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::util::fs::{Durability, replace_file};

/// Message keys remembered per connector.
pub const WINDOW: usize = 20_000;
/// Keys are appended through a buffer of this size and written out by `flush`, which the
/// connector task calls after each batch of lines: a supervisor killed with SIGKILL forgets at
/// most the batch it was deciding.
const FILE_BUFFER: usize = 64 * 1024;

/// The window: keys in arrival order, each numbered, and an index from each key's hash to the
/// number of the newest key with that hash. Every message costs a lookup, an insert and an
/// eviction; indexing by a 64-bit hash keeps the table small and the keys out of its probes.
/// A hit is confirmed by comparing the key itself, so a hash collision can only hide the older
/// of two keys — one duplicate delivered, never a message taken for a duplicate. The hash is
/// seeded at random (message ids come from strangers).
pub struct Dedup {
    hasher: foldhash::quality::RandomState,
    /// Hash → number of the newest key with it.
    index: HashMap<u64, u64, foldhash::fast::RandomState>,
    /// (hash, key), oldest first; `order[i]` has number `first + i`.
    order: VecDeque<(u64, Box<str>)>,
    first: u64,
    capacity: usize,
    path: PathBuf,
    file: Option<BufWriter<File>>,
    /// Lines in the file: it is rewritten with only the window once it doubles.
    lines: usize,
}

impl Dedup {
    /// Loads the window from `path` (missing is empty; unreadable lines are skipped: the worst
    /// case is one duplicate delivered, never a message lost).
    pub fn open(path: &Path, capacity: usize) -> Self {
        let mut dedup = Self {
            hasher: Default::default(),
            index: HashMap::default(),
            order: VecDeque::new(),
            first: 0,
            capacity: capacity.max(1),
            path: path.to_owned(),
            file: None,
            lines: 0,
        };
        if let Ok(text) = std::fs::read(path) {
            for line in String::from_utf8_lossy(&text).lines() {
                dedup.lines += 1;
                let hash = dedup.hasher.hash_one(line);
                if !dedup.contains_hashed(hash, line) {
                    dedup.remember(hash, line.into());
                }
            }
        }
        dedup.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| tracing::warn!(path = %path.display(), error = %e, "dedup file unavailable; duplicates are caught in memory only"))
            .ok()
            .map(|file| BufWriter::with_capacity(FILE_BUFFER, file));
        dedup
    }

    pub fn key(chat: &str, id: &str) -> String {
        let mut key = String::with_capacity(chat.len() + 1 + id.len());
        key.push_str(chat);
        key.push('/');
        key.push_str(id);
        key
    }

    pub fn contains(&self, key: &str) -> bool {
        self.contains_hashed(self.hasher.hash_one(key), key)
    }

    fn contains_hashed(&self, hash: u64, key: &str) -> bool {
        let found = |n: u64| {
            self.order
                .get(n.checked_sub(self.first)? as usize)
                .filter(|(_, k)| **k == *key)
        };
        self.index.get(&hash).is_some_and(|&n| found(n).is_some())
    }

    /// Records a decided message.
    pub fn insert(&mut self, key: String) {
        let hash = self.hasher.hash_one(&*key);
        if key.contains('\n') || self.contains_hashed(hash, &key) {
            return;
        }
        if let Some(file) = &mut self.file {
            let _ = file.write_all(key.as_bytes());
            let _ = file.write_all(b"\n");
            self.lines += 1;
        }
        self.remember(hash, key.into_boxed_str());
        if self.lines > self.capacity * 2 {
            // An unsynced rewrite of a small local file, like a log append: on the worker
            // (measured: block_in_place here cost throughput and 5 MiB of flood RSS).
            self.compact();
        }
    }

    /// Writes buffered keys to the file.
    pub fn flush(&mut self) {
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
    }

    fn remember(&mut self, hash: u64, key: Box<str>) {
        let number = self.first + self.order.len() as u64;
        self.order.push_back((hash, key));
        self.index.insert(hash, number);
        while self.order.len() > self.capacity {
            let Some((old_hash, _)) = self.order.pop_front() else {
                break;
            };
            // Only if no newer key with the same hash took the slot.
            if self.index.get(&old_hash) == Some(&self.first) {
                self.index.remove(&old_hash);
            }
            self.first += 1;
        }
    }

    fn compact(&mut self) {
        if let Some(file) = &mut self.file {
            let _ = file.flush();
        }
        let mut text = String::new();
        for (_, key) in &self.order {
            text.push_str(key);
            text.push('\n');
        }
        // Not synced: the window is an optimisation, and a flood would otherwise wait for the
        // disk every `capacity` messages. A file lost to a power cut means duplicates may be
        // delivered once more, nothing worse.
        if replace_file(&self.path, text.as_bytes(), Durability::Unsynced).is_ok() {
            self.lines = self.order.len();
            self.file = OpenOptions::new()
                .append(true)
                .open(&self.path)
                .ok()
                .map(|file| BufWriter::with_capacity(FILE_BUFFER, file));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The window answers exactly like a list of the last `capacity` distinct keys, also
        /// after a reload from its file.
        #[test]
        fn the_window_matches_a_plain_list(
            keys in proptest::collection::vec(0u8..40, 0..300),
            capacity in 1usize..30,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("c.seen");
            let mut dedup = Dedup::open(&path, capacity);
            let mut model: VecDeque<String> = VecDeque::new();
            for k in keys {
                let key = Dedup::key("chat", &k.to_string());
                prop_assert_eq!(dedup.contains(&key), model.contains(&key), "{}", key);
                if !model.contains(&key) {
                    model.push_back(key.clone());
                    if model.len() > capacity {
                        model.pop_front();
                    }
                }
                dedup.insert(key);
            }
            dedup.flush();
            let reloaded = Dedup::open(&path, capacity);
            for k in 0u8..40 {
                let key = Dedup::key("chat", &k.to_string());
                prop_assert_eq!(dedup.contains(&key), model.contains(&key));
                prop_assert_eq!(reloaded.contains(&key), model.contains(&key));
            }
        }
    }

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
