//! The on-disk files, compatible with the Hermes pairing store (see the reference notes):
//! `<platform>-pending.json`, `<platform>-approved.json` and `_rate_limits.json`, UTF-8 JSON
//! (a BOM is tolerated), mode 0600. Unknown fields in entries are kept when rewriting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::util::fs::write_atomic;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// sha256 hex of salt bytes + code; absent in the old plain-code layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    /// 32 hex digits (16 random bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    pub user_id: String,
    #[serde(default)]
    pub user_name: String,
    pub created_at: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovedRecord {
    #[serde(default)]
    pub user_name: String,
    pub approved_at: f64,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Keyed by request id (or, in the old layout, by the plain code).
pub type PendingFile = BTreeMap<String, PendingRecord>;
/// Keyed by normalised user id.
pub type ApprovedFile = BTreeMap<String, ApprovedRecord>;
/// `platform:user` → last request time; `_failures:platform` → count; `_lockout:platform` → until.
pub type RateFile = BTreeMap<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Never silently reset: the file stays as it is and a copy is kept for inspection.
    #[error(
        "{} is corrupt ({detail}); it was left as it is and copied to {}; fix or remove it, then retry",
        path.display(),
        copy.display()
    )]
    Corrupt {
        path: PathBuf,
        detail: String,
        copy: PathBuf,
    },
    #[error(transparent)]
    Write(#[from] crate::util::fs::PathError),
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Random(#[from] super::code::RandomUnavailable),
    #[error("cannot encode {}: {detail}", path.display())]
    Encode { path: PathBuf, detail: String },
}

/// Reads a JSON object file; a missing file is an empty object.
pub fn read<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(StoreError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
        Err(e) => return Err(corrupt(path, &bytes, format!("not UTF-8: {e}"))),
    };
    if text.trim().is_empty() {
        return Err(corrupt(path, &bytes, "the file is empty".into()));
    }
    serde_json::from_str(text).map_err(|e| corrupt(path, &bytes, e.to_string()))
}

/// Keeps one copy of each distinct corrupt content, named by its digest: read-only commands
/// run again and again on the same broken file must not fill the directory.
fn corrupt(path: &Path, bytes: &[u8], detail: String) -> StoreError {
    use sha2::{Digest, Sha256};
    let digest: String = Sha256::digest(bytes)
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    let copy = PathBuf::from(format!("{}.corrupt-{digest}", path.display()));
    if !copy.exists()
        && let Err(e) = write_atomic(&copy, bytes)
    {
        tracing::warn!(error = %e, "cannot keep a copy of a corrupt pairing file");
    }
    StoreError::Corrupt {
        path: path.to_owned(),
        detail,
        copy,
    }
}

pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), StoreError> {
    let mut json = serde_json::to_vec_pretty(value).map_err(|e| StoreError::Encode {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    json.push(b'\n');
    Ok(write_atomic(path, &json)?)
}
