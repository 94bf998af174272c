//! Where the gateway's answers to a routed chat go (a webhook delivery's `deliver` target):
//! remembered when the message is delivered, for as long as Hermes keeps its own delivery
//! info (an hour), at most `CAPACITY` chats, the oldest forgotten first. Kept on disk too
//! (`<state_dir>/<connector>.deliveries`, JSON lines, 0600), so an answer an agent finishes
//! after bridgekeeper restarted still reaches its chat. The file is opened at the first routed
//! message only, and rewritten with what is still in force once it has twice that many lines.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use bridge_protocol::message::Deliver;
use serde::{Deserialize, Serialize};

use crate::util::fs::{Durability, replace_file};

/// Seconds a target is kept.
pub const TTL_SECS: u64 = 3600;
pub const CAPACITY: usize = 20_000;

#[derive(Serialize, Deserialize)]
struct Line {
    chat: String,
    at: u64,
    to: Deliver,
}

pub struct Deliveries {
    targets: HashMap<String, (u64, Deliver)>,
    order: VecDeque<(u64, String)>,
    path: PathBuf,
    file: Option<File>,
    lines: usize,
}

impl Deliveries {
    /// The targets still in force in `path` (a missing or unreadable file: none; a bad line is
    /// skipped — the answer to that chat is then refused with its reason, never sent astray).
    pub fn open(path: &Path, now: u64) -> Self {
        let mut d = Self {
            targets: HashMap::new(),
            order: VecDeque::new(),
            path: path.to_owned(),
            file: None,
            lines: 0,
        };
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                d.lines += 1;
                if let Ok(l) = serde_json::from_str::<Line>(line)
                    && now.saturating_sub(l.at) < TTL_SECS
                {
                    d.keep(l.chat, l.at, l.to);
                }
            }
        }
        d
    }

    pub fn remember(&mut self, chat: &str, target: Deliver, now: u64) {
        self.forget_old(now);
        self.append(&Line {
            chat: chat.to_owned(),
            at: now,
            to: target.clone(),
        });
        self.keep(chat.to_owned(), now, target);
        if self.lines > 2 * self.targets.len().max(CAPACITY / 10) {
            self.compact();
        }
    }

    /// The target of `chat`, if it was remembered within the TTL.
    pub fn target(&self, chat: &str, now: u64) -> Option<&Deliver> {
        let (at, target) = self.targets.get(chat)?;
        (now.saturating_sub(*at) < TTL_SECS).then_some(target)
    }

    fn keep(&mut self, chat: String, at: u64, target: Deliver) {
        // The oldest chats make room; an entry a later remember superseded is only dropped.
        while self.targets.len() >= CAPACITY && !self.targets.contains_key(&chat) {
            let Some((stamp, oldest)) = self.order.pop_front() else {
                break;
            };
            if self.targets.get(&oldest).is_some_and(|(t, _)| *t == stamp) {
                self.targets.remove(&oldest);
            }
        }
        self.targets.insert(chat.clone(), (at, target));
        self.order.push_back((at, chat));
    }

    /// One line on disk. A small append, like the duplicate window's, on the worker.
    fn append(&mut self, line: &Line) {
        if self.file.is_none() {
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)
                .map_err(|e| tracing::warn!(path = %self.path.display(), error = %e, "delivery targets are kept in memory only"))
                .ok();
        }
        if let Some(file) = &mut self.file {
            let mut text = serde_json::to_vec(line).expect("lines serialize");
            text.push(b'\n');
            let _ = file.write_all(&text);
            self.lines += 1;
        }
    }

    fn compact(&mut self) {
        let mut text = Vec::new();
        for (at, chat) in &self.order {
            if let Some((kept_at, to)) = self.targets.get(chat)
                && kept_at == at
            {
                let line = Line {
                    chat: chat.clone(),
                    at: *at,
                    to: to.clone(),
                };
                text.extend(serde_json::to_vec(&line).expect("lines serialize"));
                text.push(b'\n');
            }
        }
        self.lines = self.targets.len();
        self.file = None;
        if let Err(e) = replace_file(&self.path, &text, Durability::Unsynced) {
            tracing::warn!(error = %e, "cannot rewrite the delivery targets");
        }
    }

    fn forget_old(&mut self, now: u64) {
        while let Some((at, chat)) = self.order.front() {
            if now.saturating_sub(*at) < TTL_SECS {
                break;
            }
            // A chat remembered again later has a newer stamp: keep that one.
            if self.targets.get(chat).is_some_and(|(t, _)| t == at) {
                self.targets.remove(chat);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(chat: &str) -> Deliver {
        Deliver {
            platform: "telegram".into(),
            chat: chat.into(),
            thread: None,
            direct: false,
        }
    }

    #[test]
    fn a_target_is_kept_for_the_ttl_across_a_restart_and_the_newest_capacity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("webhook.deliveries");
        let t0 = 1_800_000_000;
        let mut d = Deliveries::open(&path, t0);
        assert!(!path.exists(), "no file until a routed message");
        d.remember("webhook:a:1", to("42"), t0);
        assert_eq!(d.target("webhook:a:1", t0).unwrap().chat, "42");
        assert!(d.target("webhook:a:2", t0).is_none());
        assert!(d.target("webhook:a:1", t0 + TTL_SECS).is_none());
        // After a restart: what is still in force, not what expired.
        d.remember("webhook:a:2", to("43"), t0 + 10);
        let again = Deliveries::open(&path, t0 + 20);
        assert_eq!(again.target("webhook:a:2", t0 + 20).unwrap().chat, "43");
        let later = Deliveries::open(&path, t0 + TTL_SECS + 5);
        assert!(later.target("webhook:a:1", t0 + TTL_SECS + 5).is_none());
        assert_eq!(
            later.target("webhook:a:2", t0 + TTL_SECS + 5).unwrap().chat,
            "43"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut d = Deliveries::open(&path, t0 + 20);
        for i in 0..CAPACITY + 5 {
            d.remember(&format!("c{i}"), to("1"), t0 + 30);
        }
        assert_eq!(d.targets.len(), CAPACITY);
        assert!(d.target("c0", t0 + 30).is_none());
        assert!(d.target(&format!("c{}", CAPACITY + 4), t0 + 30).is_some());
        let reloaded = Deliveries::open(&path, t0 + 31);
        assert_eq!(
            reloaded.targets.len(),
            CAPACITY,
            "the file was compacted, not lost"
        );
        std::fs::write(&path, "not json\n").unwrap();
        assert!(Deliveries::open(&path, t0).targets.is_empty());
    }
}
