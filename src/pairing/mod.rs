//! The DM pairing store: codes for strangers, approvals, rate limits and the failure lockout,
//! in files that Hermes can read and write too (`files`). Every read-modify-write holds an
//! exclusive `flock` on `<dir>/.lock`, so the CLI and the daemon never race.
//!
//! Rules (the same numbers as Hermes): 1 h code TTL, 3 pending per platform, one request per
//! user per 600 s, 5 failed approvals lock the platform for 1 h (the counter resets on success).

pub mod allowlist;
pub mod code;
pub mod files;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde_json::Value;

use crate::policy::{PairingSnapshot, normalize};
use crate::util::fs::ensure_private_dir;
pub use files::StoreError;
use files::{ApprovedFile, ApprovedRecord, PendingFile, PendingRecord, RateFile};

pub use crate::policy::pairing_limits::{
    CODE_TTL_SECS, LOCKOUT_SECS, MAX_FAILED_APPROVALS, MAX_PENDING_PER_PLATFORM, RATE_LIMIT_SECS,
};

const LOCK_FILE: &str = ".lock";
const RATE_FILE: &str = "_rate_limits.json";

/// Where the pairing files live under a Hermes home (`config::hermes_paths::pairing_dir`).
pub fn locate(hermes_home: &Path) -> PathBuf {
    crate::config::hermes_paths::pairing_dir(hermes_home)
}

#[derive(Debug)]
pub struct Issued {
    pub code: String,
    pub request_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The user was approved meanwhile (the caller decided on an older state): deliver.
    #[error("this user is already approved")]
    AlreadyApproved,
    #[error("this user asked for a code less than {RATE_LIMIT_SECS} s ago")]
    RateLimited,
    #[error("{MAX_PENDING_PER_PLATFORM} requests are already pending")]
    QueueFull,
    #[error("pairing is locked until {until}")]
    LockedOut { until: f64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, PartialEq)]
pub struct Approved {
    pub user_id: String,
    pub user_name: String,
    /// The `.env` allowlist the approval was mirrored into (`allowlist.rs`), if any.
    pub mirrored: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error(
        "approvals for {platform} are locked after {MAX_FAILED_APPROVALS} failed attempts; try again in {} min, or lift the lock on this machine with `bridgekeeper pairing unlock {platform}`",
        ((until - now) / 60.0).ceil()
    )]
    LockedOut {
        platform: String,
        until: f64,
        now: f64,
    },
    #[error(
        "no pending request for {platform} matches {input:?} (codes expire after 1 h; `bridgekeeper pairing list` shows what can be approved); {remaining} attempt(s) left before approvals are locked for 1 h"
    )]
    NoMatch {
        platform: String,
        input: String,
        remaining: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default, PartialEq)]
pub struct Revoked {
    /// The `.env` allowlist the user was taken out of, if any.
    pub mirrored: Option<String>,
    pub was_approved: bool,
    pub pending_removed: usize,
    pub rate_limit_removed: bool,
}

/// One pending request as `list` shows it. `approve_with` is what `approve` accepts: the code
/// for old plain-code entries, else the request id (a hashed code cannot be shown).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingView {
    pub approve_with: String,
    pub user_id: String,
    pub user_name: String,
    pub created_at: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApprovedView {
    pub user_id: String,
    pub user_name: String,
    pub approved_at: f64,
}

#[derive(Debug, Default)]
pub struct Listing {
    pub platforms: Vec<PlatformListing>,
}

#[derive(Debug)]
pub struct PlatformListing {
    pub platform: String,
    pub pending: Vec<PendingView>,
    pub approved: Vec<ApprovedView>,
    pub locked_until: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct PairingStore {
    dir: PathBuf,
    /// Hermes' `.env`, where approvals are mirrored into a configured allowlist.
    env_file: Option<PathBuf>,
}

impl PairingStore {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            env_file: None,
        }
    }

    /// The store of a Hermes home: its pairing files, and approvals mirrored into its `.env`.
    pub fn for_hermes_home(hermes_home: &Path) -> Self {
        Self {
            dir: locate(hermes_home),
            env_file: Some(hermes_home.join(".env")),
        }
    }

    /// Best effort, as in Hermes: the approval itself is what grants access; a `.env` that
    /// cannot be written only leaves the mirror behind, and says so in the log.
    fn mirror(&self, platform: &str, user: &str, change: allowlist::Change) -> Option<String> {
        let path = self.env_file.as_deref()?;
        match allowlist::apply(path, platform, user, change) {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(error = %e, "cannot mirror the pairing change into .env");
                None
            }
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pending_path(&self, platform: &str) -> PathBuf {
        self.dir.join(format!("{platform}-pending.json"))
    }

    pub fn approved_path(&self, platform: &str) -> PathBuf {
        self.dir.join(format!("{platform}-approved.json"))
    }

    pub fn rate_path(&self) -> PathBuf {
        self.dir.join(RATE_FILE)
    }

    /// Holds the store lock for the duration of `f`. Readers take it shared, writers exclusive.
    fn locked<T, E: From<StoreError>>(
        &self,
        exclusive: bool,
        f: impl FnOnce() -> Result<T, E>,
    ) -> Result<T, E> {
        let lock_path = self.dir.join(LOCK_FILE);
        if exclusive {
            ensure_private_dir(&self.dir).map_err(StoreError::from)?;
        } else if !self.dir.exists() {
            return f(); // nothing to read yet, nothing to lock
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|source| StoreError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        let _guard = Flock::lock(file, arg).map_err(|(_, errno)| StoreError::Lock {
            path: lock_path.clone(),
            source: errno.into(),
        })?;
        f()
    }

    fn load_pending(&self, platform: &str, now: f64) -> Result<PendingFile, StoreError> {
        let mut pending: PendingFile = files::read(&self.pending_path(platform))?;
        pending.retain(|_, p| now - p.created_at < CODE_TTL_SECS);
        Ok(pending)
    }

    /// The state the policy needs for one platform. An unreadable approved file is an error;
    /// an unreadable pending or rate-limit file is not: approvals still count, and the error
    /// is kept in `unreadable` so strangers fail closed.
    pub fn snapshot(&self, platform: &str, now: f64) -> Result<PairingSnapshot, StoreError> {
        self.locked(false, || {
            let approved: ApprovedFile = files::read(&self.approved_path(platform))?;
            let mut unreadable = None;
            let pending = self.load_pending(platform, now).unwrap_or_else(|e| {
                unreadable = Some(e.to_string());
                PendingFile::default()
            });
            let rates: RateFile = files::read(&self.rate_path()).unwrap_or_else(|e| {
                unreadable.get_or_insert(e.to_string());
                RateFile::default()
            });
            let mut snap = PairingSnapshot {
                approved: approved.keys().map(|k| normalize(k)).collect(),
                pending_total: pending.len(),
                locked_until: lockout(&rates, platform).filter(|until| *until > now),
                unreadable,
                ..PairingSnapshot::default()
            };
            for p in pending.values() {
                *snap
                    .pending_by_user
                    .entry(normalize(&p.user_id))
                    .or_default() += 1;
            }
            let prefix = format!("{platform}:");
            for (key, value) in &rates {
                if let (Some(user), Some(t)) = (key.strip_prefix(&prefix), value.as_f64()) {
                    snap.last_request.insert(user.to_owned(), t);
                }
            }
            Ok(snap)
        })
    }

    /// Issues a code for `user_id`, replacing the user's own pending codes, and records the
    /// request for the per-user rate limit. Approval is checked again under the lock: a caller
    /// that decided on an older state learns that the user is in, rather than refused.
    pub fn issue(
        &self,
        platform: &str,
        user_id: &str,
        user_name: &str,
        now: f64,
    ) -> Result<Issued, IssueError> {
        self.locked(true, || {
            let user_id = normalize(user_id);
            let approved: ApprovedFile = files::read(&self.approved_path(platform))?;
            if approved.keys().any(|k| normalize(k) == user_id) {
                return Err(IssueError::AlreadyApproved);
            }
            let mut rates: RateFile = files::read(&self.rate_path())?;
            if let Some(until) = lockout(&rates, platform).filter(|u| *u > now) {
                return Err(IssueError::LockedOut { until });
            }
            let rate_key = format!("{platform}:{user_id}");
            if rates
                .get(&rate_key)
                .and_then(Value::as_f64)
                .is_some_and(|t| now - t < RATE_LIMIT_SECS)
            {
                return Err(IssueError::RateLimited);
            }
            let mut pending = self.load_pending(platform, now)?;
            pending.retain(|_, p| normalize(&p.user_id) != user_id);
            if pending.len() >= MAX_PENDING_PER_PLATFORM {
                return Err(IssueError::QueueFull);
            }
            let code = code::new_code().map_err(StoreError::from)?;
            let salt = code::new_salt_hex().map_err(StoreError::from)?;
            let request_id = code::new_request_id().map_err(StoreError::from)?;
            pending.insert(
                request_id.clone(),
                PendingRecord {
                    hash: code::hash_code(&salt, &code),
                    salt: Some(salt),
                    user_id: user_id.clone(),
                    user_name: user_name.to_owned(),
                    created_at: now,
                    extra: Default::default(),
                },
            );
            files::write(&self.pending_path(platform), &upgrade_legacy(pending)?)?;
            rates.insert(rate_key, number(now));
            files::write(&self.rate_path(), &rates)?;
            Ok(Issued { code, request_id })
        })
    }

    /// Records that `user_id` was answered (a fixed reply), so they are not answered again
    /// within the rate-limit window.
    pub fn note_request(&self, platform: &str, user_id: &str, now: f64) -> Result<(), StoreError> {
        self.locked(true, || {
            let mut rates: RateFile = files::read(&self.rate_path())?;
            rates.insert(format!("{platform}:{}", normalize(user_id)), number(now));
            files::write(&self.rate_path(), &rates)
        })
    }

    /// Approves the request matching `input`: a code (any case, spaces and dashes ignored) or
    /// a request id. A miss counts towards the lockout.
    pub fn approve(&self, platform: &str, input: &str, now: f64) -> Result<Approved, ApproveError> {
        self.locked(true, || {
            let mut rates: RateFile = files::read(&self.rate_path())?;
            if let Some(until) = lockout(&rates, platform).filter(|u| *u > now) {
                return Err(ApproveError::LockedOut {
                    platform: platform.to_owned(),
                    until,
                    now,
                });
            }
            let mut pending = self.load_pending(platform, now)?;
            let typed = code::normalize_input(input);
            let found = find_match(&pending, &typed);
            let failures_key = format!("_failures:{platform}");
            let Some(key) = found else {
                let failures = rates
                    .get(&failures_key)
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    + 1;
                if failures >= MAX_FAILED_APPROVALS {
                    rates.remove(&failures_key);
                    rates.insert(format!("_lockout:{platform}"), number(now + LOCKOUT_SECS));
                } else {
                    rates.insert(failures_key, Value::from(failures));
                }
                files::write(&self.rate_path(), &rates)?;
                if failures >= MAX_FAILED_APPROVALS {
                    return Err(ApproveError::LockedOut {
                        platform: platform.to_owned(),
                        until: now + LOCKOUT_SECS,
                        now,
                    });
                }
                return Err(ApproveError::NoMatch {
                    platform: platform.to_owned(),
                    input: input.to_owned(),
                    remaining: MAX_FAILED_APPROVALS - failures,
                });
            };
            let Some(record) = pending.remove(&key) else {
                return Err(ApproveError::NoMatch {
                    platform: platform.to_owned(),
                    input: input.to_owned(),
                    remaining: MAX_FAILED_APPROVALS,
                });
            };
            let user_id = normalize(&record.user_id);
            pending.retain(|_, p| normalize(&p.user_id) != user_id);
            let mut approved: ApprovedFile = files::read(&self.approved_path(platform))?;
            approved.insert(
                user_id.clone(),
                ApprovedRecord {
                    user_name: record.user_name.clone(),
                    approved_at: now,
                    extra: Default::default(),
                },
            );
            files::write(&self.approved_path(platform), &approved)?;
            files::write(&self.pending_path(platform), &upgrade_legacy(pending)?)?;
            rates.remove(&failures_key);
            files::write(&self.rate_path(), &rates)?;
            let mirrored = self.mirror(platform, &user_id, allowlist::Change::Add);
            Ok(Approved {
                user_id,
                user_name: record.user_name,
                mirrored,
            })
        })
    }

    /// Lifts the lock-out after failed approvals and resets the failure count: the owner's way
    /// out after mistyping codes (the CLI on this machine only; the gateway cannot). Returns
    /// whether a lock or failures were there to clear.
    pub fn unlock(&self, platform: &str) -> Result<bool, StoreError> {
        self.locked(true, || {
            let mut rates: RateFile = files::read(&self.rate_path())?;
            let cleared = rates.remove(&format!("_lockout:{platform}")).is_some()
                | rates.remove(&format!("_failures:{platform}")).is_some();
            if cleared {
                files::write(&self.rate_path(), &rates)?;
            }
            Ok(cleared)
        })
    }

    /// Removes the approval, every pending code of the user and the user's rate-limit entry, so
    /// the user can ask again at once and no old code approves them.
    pub fn revoke(&self, platform: &str, user: &str) -> Result<Revoked, StoreError> {
        self.locked(true, || {
            let user = normalize(user);
            let mut approved: ApprovedFile = files::read(&self.approved_path(platform))?;
            let was_approved = approved.retain_len(|k| normalize(k) != user) > 0;
            let mut pending: PendingFile = files::read(&self.pending_path(platform))?;
            let pending_removed = pending.retain_len_values(|p| normalize(&p.user_id) != user);
            let mut rates: RateFile = files::read(&self.rate_path())?;
            let rate_limit_removed = rates.remove(&format!("{platform}:{user}")).is_some();
            if was_approved {
                files::write(&self.approved_path(platform), &approved)?;
            }
            if pending_removed > 0 {
                files::write(&self.pending_path(platform), &upgrade_legacy(pending)?)?;
            }
            if rate_limit_removed {
                files::write(&self.rate_path(), &rates)?;
            }
            let mirrored = was_approved
                .then(|| self.mirror(platform, &user, allowlist::Change::Remove))
                .flatten();
            Ok(Revoked {
                mirrored,
                was_approved,
                pending_removed,
                rate_limit_removed,
            })
        })
    }

    /// Drops every pending request (of one platform, or all).
    pub fn clear_pending(&self, platform: Option<&str>) -> Result<usize, StoreError> {
        self.locked(true, || {
            let mut cleared = 0;
            for p in self.platforms()? {
                if platform.is_some_and(|want| want != p) {
                    continue;
                }
                let pending: PendingFile = files::read(&self.pending_path(&p))?;
                if !pending.is_empty() {
                    cleared += pending.len();
                    files::write(&self.pending_path(&p), &PendingFile::new())?;
                }
            }
            Ok(cleared)
        })
    }

    /// Platforms with any pairing file.
    pub fn platforms(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut out: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter_map(|name| {
                let stem = name.strip_suffix(".json")?;
                let p = stem
                    .strip_suffix("-pending")
                    .or_else(|| stem.strip_suffix("-approved"))?;
                Some(p.to_owned())
            })
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    pub fn list(&self, platform: Option<&str>, now: f64) -> Result<Listing, StoreError> {
        self.locked(false, || {
            let mut listing = Listing::default();
            let mut platforms = self.platforms()?;
            if let Some(p) = platform
                && !platforms.iter().any(|x| x == p)
            {
                platforms = vec![p.to_owned()];
            }
            let rates: RateFile = files::read(&self.rate_path())?;
            for p in platforms {
                if platform.is_some_and(|want| want != p) {
                    continue;
                }
                let pending = self
                    .load_pending(&p, now)?
                    .into_iter()
                    .map(|(key, r)| PendingView {
                        approve_with: if r.hash.is_none() && code::looks_like_code(&key) {
                            key
                        } else {
                            key.to_lowercase()
                        },
                        user_id: r.user_id,
                        user_name: r.user_name,
                        created_at: r.created_at,
                    })
                    .collect();
                let approved: ApprovedFile = files::read(&self.approved_path(&p))?;
                let approved = approved
                    .into_iter()
                    .map(|(user_id, r)| ApprovedView {
                        user_id,
                        user_name: r.user_name,
                        approved_at: r.approved_at,
                    })
                    .collect();
                listing.platforms.push(PlatformListing {
                    locked_until: lockout(&rates, &p).filter(|u| *u > now),
                    platform: p,
                    pending,
                    approved,
                });
            }
            Ok(listing)
        })
    }
}

/// Finds the pending entry `typed` names, looking at every entry (no early exit) so timing does
/// not reveal which one matched.
fn find_match(pending: &PendingFile, typed: &str) -> Option<String> {
    let mut found = None;
    for (key, record) in pending {
        let is_id = key.len() == 16 && code::ct_eq(&key.to_uppercase(), typed);
        let is_code = match (&record.hash, &record.salt) {
            (Some(hash), Some(salt)) => {
                code::hash_code(salt, typed).is_some_and(|h| code::ct_eq(&h, &hash.to_lowercase()))
            }
            // The old layout: the key is the plain code.
            _ => code::ct_eq(&key.to_uppercase(), typed),
        };
        if (is_id || is_code) && found.is_none() {
            found = Some(key.clone());
        }
    }
    found
}

/// Old plain-code entries are rewritten in the hashed layout (read them, never write them).
fn upgrade_legacy(pending: PendingFile) -> Result<PendingFile, StoreError> {
    pending
        .into_iter()
        .map(|(key, mut r)| {
            if r.hash.is_none() && code::looks_like_code(&key) {
                let salt = code::new_salt_hex()?;
                r.hash = code::hash_code(&salt, &key);
                r.salt = Some(salt);
                Ok((code::new_request_id()?, r))
            } else {
                Ok((key, r))
            }
        })
        .collect()
}

fn lockout(rates: &RateFile, platform: &str) -> Option<f64> {
    rates
        .get(&format!("_lockout:{platform}"))
        .and_then(Value::as_f64)
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

trait RetainLen<V> {
    fn retain_len(&mut self, keep: impl FnMut(&String) -> bool) -> usize;
    fn retain_len_values(&mut self, keep: impl FnMut(&V) -> bool) -> usize;
}

impl<V> RetainLen<V> for std::collections::BTreeMap<String, V> {
    fn retain_len(&mut self, mut keep: impl FnMut(&String) -> bool) -> usize {
        let before = self.len();
        self.retain(|k, _| keep(k));
        before - self.len()
    }

    fn retain_len_values(&mut self, mut keep: impl FnMut(&V) -> bool) -> usize {
        let before = self.len();
        self.retain(|_, v| keep(v));
        before - self.len()
    }
}

#[cfg(test)]
mod tests;
