//! Private directories and atomic file writes for state the supervisor owns.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A filesystem operation that failed, with the path it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}: {source}", path.display())]
pub struct PathError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl PathError {
    pub fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Self {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// Creates `dir` (and parents) with mode 0700, and tightens an existing one to 0700: it may
/// hold chat metadata and, for session dirs, account credentials.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PathError::new("cannot create directory", dir, e))?;
    let meta = fs::metadata(dir).map_err(|e| PathError::new("cannot inspect", dir, e))?;
    if meta.permissions().mode() & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| PathError::new("cannot restrict permissions of", dir, e))?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically (temp file, fsync, rename) with mode 0600, so a reader
/// or a crash never sees a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), PathError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PathError::new("cannot write", path, e)
    })
}
