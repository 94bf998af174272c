//! Where Hermes keeps things, defined once: its home, the pairing files, `bridge.log`, and where bridgekeeper's own state goes beside them.

use std::path::{Path, PathBuf};

/// `$HERMES_HOME`, else `~/.hermes`.
pub fn default_hermes_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HERMES_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"));
    home.join(".hermes")
}

/// Where bridgekeeper keeps its state for a session directory: beside it, as the old bridge
/// kept `bridge.log` (`<session>/../bridgekeeper/`, the log in `<session>/../bridge.log`).
pub fn state_dir_for(session: &Path) -> PathBuf {
    session
        .parent()
        .unwrap_or(Path::new("/"))
        .join("bridgekeeper")
}

/// The state directory of `run` without a config (and of the drop-in mode) for a Hermes home.
pub fn hermes_state_dir(hermes_home: &Path) -> PathBuf {
    state_dir_for(&crate::connectors::whatsapp::session_dir(hermes_home))
}

/// `bridge.log` for a session directory: beside it, where the old launcher wrote it.
pub fn bridge_log_for(session: &Path) -> PathBuf {
    session
        .parent()
        .unwrap_or(Path::new("/"))
        .join("bridge.log")
}

/// Where the pairing files live under a Hermes home, by Hermes' own rule (`get_hermes_dir`):
/// the legacy `pairing/` when it holds anything, else `platforms/pairing/`. An empty legacy
/// directory (the gateway makes one at start) does not count, or the two would part ways.
pub fn pairing_dir(hermes_home: &Path) -> PathBuf {
    let legacy = hermes_home.join("pairing");
    if has_content(&legacy) {
        legacy
    } else {
        hermes_home.join("platforms").join("pairing")
    }
}

/// Whether `path` is a file, or a directory with an entry, as Hermes judges a legacy path; one
/// that cannot be read counts as holding something, so its data is never passed over.
pub fn has_content(path: &Path) -> bool {
    match std::fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => true,
        Err(_) => true,
    }
}
