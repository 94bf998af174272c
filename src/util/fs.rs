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

/// Creates `dir` (and parents) with mode 0700 when missing; an existing directory is left as
/// it is (the log may live in a shared directory: its file is 0600 on its own).
pub fn create_private_dir(dir: &Path) -> Result<(), PathError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| PathError::new("cannot create directory", dir, e))
}

/// Creates `dir` with mode 0700, and tightens an existing one to 0700 when it is clearly ours:
/// state and session directories hold chat metadata and account credentials. A shared or
/// system directory (sticky like /tmp, not owned by us, or at the top of the tree like /dev)
/// is never changed; `bridgekeeper doctor` reports its mode instead.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathError> {
    create_private_dir(dir)?;
    let meta = fs::metadata(dir).map_err(|e| PathError::new("cannot inspect", dir, e))?;
    let mode = meta.permissions().mode();
    let ours = std::os::unix::fs::MetadataExt::uid(&meta) == nix::unistd::geteuid().as_raw()
        && mode & 0o1000 == 0
        && dir
            .canonicalize()
            .map(|d| d.components().count() > 2)
            .unwrap_or(false);
    if mode & 0o077 != 0 && ours {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| PathError::new("cannot restrict permissions of", dir, e))?;
    }
    Ok(())
}

/// Writes `data` to `path` atomically (temp file, fsync, rename) with mode 0600, so a reader
/// or a crash never sees a half-written file.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), PathError> {
    replace_file(path, data, Durability::Synced)
}

/// Whether `replace_file` waits for the data to reach the disk before the rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    Synced,
    /// For files that are only an optimisation (the duplicate window): a reader never sees a
    /// half-written file, but after a power loss the file may be empty.
    Unsynced,
}

/// Replaces `path` with `data` through a temp file and a rename, mode 0600.
pub fn replace_file(path: &Path, data: &[u8], durability: Durability) -> Result<(), PathError> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        if durability == Durability::Synced {
            file.sync_all()?;
        }
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        PathError::new("cannot write", path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_directories_are_tightened_shared_ones_never() {
        let base = tempfile::tempdir().unwrap();
        let ours = base.path().join("state");
        fs::create_dir(&ours).unwrap();
        fs::set_permissions(&ours, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&ours).unwrap();
        assert_eq!(
            fs::metadata(&ours).unwrap().permissions().mode() & 0o7777,
            0o700
        );

        let shared = base.path().join("shared");
        fs::create_dir(&shared).unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
        ensure_private_dir(&shared).unwrap();
        assert_eq!(
            fs::metadata(&shared).unwrap().permissions().mode() & 0o7777,
            0o1777,
            "sticky: left alone"
        );

        let existing = base.path().join("logs");
        fs::create_dir(&existing).unwrap();
        fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&existing).unwrap();
        assert_eq!(
            fs::metadata(&existing).unwrap().permissions().mode() & 0o777,
            0o755
        );
        create_private_dir(&base.path().join("new/deeper")).unwrap();
        assert_eq!(
            fs::metadata(base.path().join("new/deeper"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
    }
}
