//! One owner per directory: an OS file lock (`flock`) on `<dir>/bridgekeeper.lock`, held for
//! the daemon's lifetime and released by the kernel when the process dies, however it dies — no
//! stale pid files to guess about. Used for the state directory and for every connector's
//! session directory (two clients on one WhatsApp session knock each other off, status 440).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub const LOCK_FILE: &str = "bridgekeeper.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cannot open lock file {}: {source}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another bridgekeeper{} is already using {}; stop it first or use another directory",
        holder.map(|p| format!(" (pid {p})")).unwrap_or_default(),
        dir.display()
    )]
    Held { dir: PathBuf, holder: Option<u32> },
    #[error("cannot lock {}: {errno}", path.display())]
    Lock { path: PathBuf, errno: Errno },
}

/// Held for as long as the daemon runs.
#[derive(Debug)]
pub struct StateLock {
    _file: Flock<File>,
}

fn open(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(|source| LockError::Open {
            path: path.to_owned(),
            source,
        })
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl StateLock {
    pub fn acquire(state_dir: &Path) -> Result<Self, LockError> {
        let path = state_dir.join(LOCK_FILE);
        let file = open(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(mut locked) => {
                let _ = locked.set_len(0);
                let _ = locked.rewind();
                let _ = writeln!(locked, "{}", std::process::id());
                let _ = locked.flush();
                Ok(Self { _file: locked })
            }
            Err((mut file, Errno::EWOULDBLOCK)) => Err(LockError::Held {
                dir: state_dir.to_owned(),
                holder: holder_pid(&mut file),
            }),
            Err((_, errno)) => Err(LockError::Lock { path, errno }),
        }
    }
}

/// Whether a daemon holds the lock of `state_dir` right now, and its pid if it wrote one.
pub fn probe(state_dir: &Path) -> Result<Option<Option<u32>>, LockError> {
    let path = state_dir.join(LOCK_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let file = open(&path)?;
    match Flock::lock(file, FlockArg::LockSharedNonblock) {
        Ok(_unlocked_on_drop) => Ok(None),
        Err((mut file, Errno::EWOULDBLOCK)) => Ok(Some(holder_pid(&mut file))),
        Err((_, errno)) => Err(LockError::Lock { path, errno }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_with_the_holders_pid() {
        let dir = tempfile::tempdir().unwrap();
        let first = StateLock::acquire(dir.path()).unwrap();
        let err = StateLock::acquire(dir.path()).unwrap_err();
        assert!(matches!(err, LockError::Held { holder: Some(p), .. } if p == std::process::id()));
        assert_eq!(probe(dir.path()).unwrap(), Some(Some(std::process::id())));
        drop(first);
        assert_eq!(probe(dir.path()).unwrap(), None);
        StateLock::acquire(dir.path()).unwrap();
    }
}
