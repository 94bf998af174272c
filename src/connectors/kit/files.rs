//! Files a connector writes: downloaded media into the media dir and state (cursors, offsets,
//! tokens) into the state dir, each atomically and 0600 in a 0700 directory.

use std::path::{Path, PathBuf};

use crate::util::fs::{ensure_private_dir, write_atomic};

/// Writes a downloaded file into `dir` as `<prefix>-<pid>-<name>` (the name's path parts and
/// `..` removed); returns its path and size, or the text for `download_error`.
pub fn save_media(
    dir: Option<&Path>,
    prefix: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(String, u64), String> {
    let dir = dir.ok_or("no --media-dir given")?;
    ensure_private_dir(dir).map_err(|e| e.to_string())?;
    let name = safe_name(name);
    let target = dir.join(format!("{prefix}-{}-{name}", std::process::id()));
    write_atomic(&target, bytes).map_err(|e| e.to_string())?;
    Ok((target.display().to_string(), bytes.len() as u64))
}

/// The last path part of `name`, with nothing that could climb out of a directory.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned = last.replace("..", "_");
    if cleaned.trim().is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// A small state file of this connector (`<state_dir>/<connector name>.<kind>`), from
/// `BRIDGEKEEPER_STATE_DIR` and `BRIDGEKEEPER_CONNECTOR` (default `default_name`).
#[derive(Debug, Clone)]
pub struct StateFile {
    path: PathBuf,
}

impl StateFile {
    /// `None` when the supervisor gave no state dir (run by hand): nothing is kept.
    pub fn from_env(default_name: &str, kind: &str) -> Option<Self> {
        let dir = std::env::var_os("BRIDGEKEEPER_STATE_DIR")?;
        let name =
            std::env::var("BRIDGEKEEPER_CONNECTOR").unwrap_or_else(|_| default_name.to_owned());
        Some(Self::at(PathBuf::from(dir).join(format!("{name}.{kind}"))))
    }

    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// The content, trimmed; `None` when missing or unreadable.
    pub fn read(&self) -> Option<String> {
        std::fs::read_to_string(&self.path)
            .ok()
            .map(|t| t.trim().to_owned())
    }

    /// Replaces the content atomically, 0600.
    pub fn write(&self, content: &str) -> Result<(), crate::util::fs::PathError> {
        write_atomic(&self.path, content.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn media_and_state_files_are_private_and_names_cannot_climb() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        let (path, size) = save_media(Some(&media), "tg", "../../etc/passwd", b"abc").unwrap();
        assert_eq!(size, 3);
        assert!(path.starts_with(media.to_str().unwrap()), "{path}");
        assert!(path.ends_with("-passwd"), "{path}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(Path::new(&path)), 0o600);
        assert_eq!(mode(&media), 0o700);
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name(""), "file");
        assert!(
            save_media(None, "x", "y", b"")
                .unwrap_err()
                .contains("--media-dir")
        );

        let state = StateFile::at(dir.path().join("c.cursor"));
        assert_eq!(state.read(), None);
        state.write("42\n").unwrap();
        assert_eq!(state.read().as_deref(), Some("42"));
        assert_eq!(mode(&dir.path().join("c.cursor")), 0o600);
    }
}
