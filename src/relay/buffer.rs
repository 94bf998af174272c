//! Delivered messages waiting for a gateway's `inbound_ack`: bounded, and durable in one
//! append-only file under the state dir (`relay-buffer.jsonl`, 0600), so they survive a
//! restart of bridgekeeper as well as of the gateway.
//!
//! Records are `{"add": {...}}` and `{"ack": "<bufferId>"}` lines. The file is emptied when
//! nothing is waiting and rewritten when it holds many more records than live entries. A line
//! that cannot be read is kept aside in `relay-buffer.jsonl.corrupt`, never silently dropped.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::util::blocking::blocking;
use crate::util::fs::PathError;

pub const FILE_NAME: &str = "relay-buffer.jsonl";

/// One delivered message, as the `inbound` frame's `event` (already JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub id: String,
    pub connector: String,
    pub platform: String,
    /// The network's message id (for the ledger and logs).
    pub message_id: String,
    pub event: Box<serde_json::value::RawValue>,
    /// When it was last written to a gateway, and to which session.
    #[serde(skip)]
    pub sent: Option<(u64, Instant)>,
    /// Loaded from the file at start: counted in an earlier run's ledger, not this one's.
    #[serde(skip)]
    pub carried: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Record {
    Add(Entry),
    Ack(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("the relay buffer is full ({0} messages waiting for a gateway's ack)")]
    Full(usize),
    #[error(transparent)]
    Io(#[from] PathError),
}

/// What `open` found on disk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub waiting: usize,
    /// Lines that could not be read, kept in the `.corrupt` file.
    pub corrupt: usize,
}

pub struct RelayBuffer {
    path: PathBuf,
    file: File,
    entries: VecDeque<Entry>,
    capacity: usize,
    /// Records in the file (adds and acks), to know when rewriting pays.
    records: usize,
    /// Distinguishes this run's ids from an earlier run's, so a late ack can never release a
    /// newer message that happens to reuse a number.
    epoch: String,
    next: u64,
}

impl RelayBuffer {
    pub fn open(dir: &Path, capacity: usize) -> Result<(Self, Loaded), PathError> {
        let path = dir.join(FILE_NAME);
        let mut entries = VecDeque::new();
        let mut loaded = Loaded::default();
        let mut bad = Vec::new();
        match File::open(&path) {
            Ok(f) => {
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(|e| PathError::new("read", &path, e))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    match serde_json::from_str::<Record>(&line) {
                        Ok(Record::Add(e)) => entries.push_back(Entry { carried: true, ..e }),
                        Ok(Record::Ack(id)) => entries.retain(|e: &Entry| e.id != id),
                        Err(_) => bad.push(line),
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PathError::new("open", &path, e)),
        }
        if !bad.is_empty() {
            let aside = path.with_extension("jsonl.corrupt");
            let mut f = private_append(&aside)?;
            for line in &bad {
                writeln!(f, "{line}").map_err(|e| PathError::new("write", &aside, e))?;
            }
            loaded.corrupt = bad.len();
        }
        loaded.waiting = entries.len();
        let epoch = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
        );
        let file = private_append(&path)?;
        let mut buffer = Self {
            path,
            file,
            entries,
            capacity: capacity.max(1),
            records: 0,
            epoch,
            next: 1,
        };
        buffer.rewrite()?;
        Ok((buffer, loaded))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Stores a message (written to the file before it returns) and gives its buffer id.
    pub fn push(
        &mut self,
        connector: &str,
        platform: &str,
        message_id: &str,
        event: Box<serde_json::value::RawValue>,
    ) -> Result<String, PushError> {
        if self.entries.len() >= self.capacity {
            return Err(PushError::Full(self.capacity));
        }
        let id = format!("{}-{}", self.epoch, self.next);
        self.next += 1;
        let entry = Entry {
            id: id.clone(),
            connector: connector.to_owned(),
            platform: platform.to_owned(),
            message_id: message_id.to_owned(),
            event,
            sent: None,
            carried: false,
        };
        self.append(&Record::Add(entry.clone()))?;
        self.entries.push_back(entry);
        Ok(id)
    }

    /// Releases an acknowledged message. `None`: not waiting (already acked, or unknown).
    pub fn ack(&mut self, id: &str) -> Result<Option<Entry>, PathError> {
        let Some(at) = self.entries.iter().position(|e| e.id == id) else {
            return Ok(None);
        };
        let entry = self.entries.remove(at).expect("position is in range");
        if self.entries.is_empty() {
            // The common case with a gateway connected: truncating is one cheap call.
            let (file, path) = (&self.file, &self.path);
            blocking(|| file.set_len(0)).map_err(|e| PathError::new("truncate", path, e))?;
            self.records = 0;
        } else if self.records > 4 * self.capacity {
            self.rewrite()?;
        } else {
            self.append(&Record::Ack(id.to_owned()))?;
        }
        Ok(Some(entry))
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.entries.iter_mut()
    }

    fn append(&mut self, record: &Record) -> Result<(), PathError> {
        let mut line = serde_json::to_vec(record).expect("records serialize");
        line.push(b'\n');
        // One write of a whole line to the page cache: it survives our crash (not the
        // machine's), and it is done before the message is offered to any gateway.
        let (file, path) = (&mut self.file, &self.path);
        blocking(|| file.write_all(&line)).map_err(|e| PathError::new("append to", path, e))?;
        self.records += 1;
        Ok(())
    }

    /// Writes only what is still waiting (nothing at all when the buffer is empty).
    fn rewrite(&mut self) -> Result<(), PathError> {
        let mut data = Vec::new();
        for e in &self.entries {
            serde_json::to_writer(&mut data, &Record::Add(e.clone())).expect("records serialize");
            data.push(b'\n');
        }
        let path = self.path.clone();
        blocking(|| crate::util::fs::write_atomic(&path, &data))?;
        self.file = private_append(&self.path)?;
        self.records = self.entries.len();
        Ok(())
    }
}

fn private_append(path: &Path) -> Result<File, PathError> {
    use std::os::unix::fs::OpenOptionsExt;
    blocking(|| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
    })
    .map_err(|e| PathError::new("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> Box<serde_json::value::RawValue> {
        serde_json::value::to_raw_value(&serde_json::json!({"text": format!("m{n}")})).unwrap()
    }

    #[test]
    fn what_is_not_acked_survives_a_restart_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, loaded) = RelayBuffer::open(dir.path(), 10).unwrap();
        assert_eq!(loaded, Loaded::default());
        let ids: Vec<String> = (0..4)
            .map(|n| {
                b.push("wa", "whatsapp", &format!("M{n}"), event(n))
                    .unwrap()
            })
            .collect();
        assert!(b.ack(&ids[1]).unwrap().is_some());
        assert!(b.ack(&ids[1]).unwrap().is_none(), "a second ack is a no-op");
        drop(b);
        let (b, loaded) = RelayBuffer::open(dir.path(), 10).unwrap();
        assert_eq!(loaded.waiting, 3);
        let left: Vec<&str> = b.entries().map(|e| e.message_id.as_str()).collect();
        assert_eq!(left, ["M0", "M2", "M3"]);
        let mode = std::fs::metadata(dir.path().join(FILE_NAME)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_full_buffer_refuses_and_an_emptied_one_leaves_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, _) = RelayBuffer::open(dir.path(), 2).unwrap();
        let a = b.push("wa", "whatsapp", "A", event(1)).unwrap();
        let c = b.push("wa", "whatsapp", "B", event(2)).unwrap();
        assert!(matches!(
            b.push("wa", "whatsapp", "C", event(3)),
            Err(PushError::Full(2))
        ));
        b.ack(&a).unwrap();
        b.ack(&c).unwrap();
        assert_eq!(std::fs::read(dir.path().join(FILE_NAME)).unwrap().len(), 0);
    }

    #[test]
    fn a_corrupt_line_is_kept_aside_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, _) = RelayBuffer::open(dir.path(), 10).unwrap();
        b.push("wa", "whatsapp", "A", event(1)).unwrap();
        drop(b);
        let path = dir.path().join(FILE_NAME);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("{not json\n");
        std::fs::write(&path, text).unwrap();
        let (b, loaded) = RelayBuffer::open(dir.path(), 10).unwrap();
        assert_eq!(
            loaded,
            Loaded {
                waiting: 1,
                corrupt: 1
            }
        );
        assert_eq!(b.len(), 1);
        let aside = std::fs::read_to_string(dir.path().join("relay-buffer.jsonl.corrupt")).unwrap();
        assert_eq!(aside, "{not json\n");
    }

    #[test]
    fn ids_from_different_runs_differ() {
        let dir = tempfile::tempdir().unwrap();
        let (mut b, _) = RelayBuffer::open(dir.path(), 10).unwrap();
        let first = b.push("wa", "whatsapp", "A", event(1)).unwrap();
        b.ack(&first).unwrap();
        drop(b);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (mut b, _) = RelayBuffer::open(dir.path(), 10).unwrap();
        let second = b.push("wa", "whatsapp", "B", event(2)).unwrap();
        assert_ne!(first, second);
        assert!(b.ack(&first).unwrap().is_none());
    }
}
