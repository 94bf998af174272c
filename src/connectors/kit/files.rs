//! Files a connector writes: downloaded media into the media dir and state (cursors, offsets,
//! tokens) into the state dir, each atomically and 0600 in a 0700 directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::util::fs::{ensure_private_dir, write_atomic};

/// Writes a downloaded file into `dir` under a name no other message can produce:
/// `<prefix>-<message id>-<random>.<extension of the sender's name>`, created new (never
/// replacing a file), 0600. The sender's name is never the file's; it travels as `file_name`.
/// Then the directory is held to the retention rules. Returns the path and size, or the text
/// for `download_error`.
pub fn save_media(
    dir: Option<&Path>,
    prefix: &str,
    message_id: &str,
    name: &str,
    bytes: &[u8],
) -> Result<(String, u64), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = dir.ok_or("no --media-dir given")?;
    ensure_private_dir(dir).map_err(|e| e.to_string())?;
    let target = dir.join(media_name(
        prefix,
        message_id,
        name,
        &crate::util::random::hex::<8>(),
    ));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&target)
        .map_err(|e| format!("cannot create {}: {e}", target.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    sweep_media(dir, prefix, Retention::from_env());
    Ok((target.display().to_string(), bytes.len() as u64))
}

/// A media file's name: the connector's prefix, the message id and `random` (characters a
/// file name can hold, each part cut short), and the extension of the sender's name when it
/// looks like one. Pure.
pub fn media_name(prefix: &str, message_id: &str, name: &str, random: &str) -> String {
    let clean = |s: &str, max: usize| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(max)
            .collect()
    };
    let extension = safe_name(name)
        .rsplit_once('.')
        .map(|(_, e)| e.to_owned())
        .filter(|e| (1..=8).contains(&e.len()) && e.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|e| format!(".{}", e.to_ascii_lowercase()))
        .unwrap_or_default();
    format!("{prefix}-{}-{random}{extension}", clean(message_id, 48))
}

/// How long media are kept and how much of them, per connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age: Duration,
    pub max_bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl Retention {
    /// `BRIDGEKEEPER_MEDIA_MAX_AGE` (`7d`, `12h`…) and `BRIDGEKEEPER_MEDIA_MAX_MB`, else the
    /// defaults; a value that cannot be read is said and the default kept. Read once per
    /// process: every download and sweep uses the same rules, and a bad value is said once.
    pub fn from_env() -> Self {
        static READ: std::sync::OnceLock<Retention> = std::sync::OnceLock::new();
        *READ.get_or_init(|| {
            Self::from_lookup(|k| std::env::var(k).ok()).unwrap_or_else(|e| {
                eprintln!("media retention: {e}; the defaults apply (7 days, 1024 MiB)");
                Self::default()
            })
        })
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut r = Self::default();
        if let Some(age) = lookup("BRIDGEKEEPER_MEDIA_MAX_AGE").filter(|v| !v.trim().is_empty()) {
            r.max_age = humantime::parse_duration(age.trim())
                .map_err(|e| format!("BRIDGEKEEPER_MEDIA_MAX_AGE={age:?}: {e}"))?;
        }
        if let Some(mb) = lookup("BRIDGEKEEPER_MEDIA_MAX_MB").filter(|v| !v.trim().is_empty()) {
            let mb: u64 = mb
                .trim()
                .parse()
                .map_err(|_| format!("BRIDGEKEEPER_MEDIA_MAX_MB={mb:?} is not a whole number"))?;
            r.max_bytes = mb.saturating_mul(1024 * 1024);
        }
        Ok(r)
    }
}

/// Which of `files` (name, age, size) to remove: every one older than the maximum age, then
/// the oldest until the rest fit in the maximum size — never the newest for size (the file just
/// downloaded, which its message names). Pure.
pub fn expired(files: &[(String, Duration, u64)], retention: Retention) -> Vec<String> {
    let mut by_age: Vec<&(String, Duration, u64)> = files.iter().collect();
    by_age.sort_by_key(|f| std::cmp::Reverse(f.1));
    let mut total: u64 = files.iter().map(|f| f.2).sum();
    let mut remove = Vec::new();
    let newest = by_age.len().saturating_sub(1);
    for (i, (name, age, size)) in by_age.into_iter().enumerate() {
        if *age > retention.max_age || (total > retention.max_bytes && i < newest) {
            total -= size;
            remove.push(name.clone());
        }
    }
    remove
}

/// Holds this connector's files in `dir` (those named `<prefix>-…`) to `retention`. Errors
/// are said on stderr by kind, never fatal: a file that cannot be removed is tried next time.
pub fn sweep_media(dir: &Path, prefix: &str, retention: Retention) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let ours = format!("{prefix}-");
    let files: Vec<(String, Duration, u64)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let meta = e.metadata().ok()?;
            (name.starts_with(&ours) && meta.is_file()).then(|| {
                let age = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .unwrap_or_default();
                (name, age, meta.len())
            })
        })
        .collect();
    for name in expired(&files, retention) {
        if let Err(e) = std::fs::remove_file(dir.join(&name)) {
            eprintln!(
                "media retention: cannot remove a file in {}: {e}",
                dir.display()
            );
        }
    }
}

/// How often the age rule is applied between downloads.
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// Holds `dir` to the retention rules now and every ten minutes, on a thread of its own, for
/// as long as the connector runs (a download also sweeps, so the size rule holds at once).
pub fn keep_media_tidy(dir: Option<&Path>, prefix: &'static str) {
    let Some(dir) = dir.map(Path::to_path_buf) else {
        return;
    };
    let retention = Retention::from_env();
    let _ = std::thread::Builder::new()
        .name("media-retention".into())
        .spawn(move || {
            loop {
                sweep_media(&dir, prefix, retention);
                std::thread::sleep(SWEEP_EVERY);
            }
        });
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
        let (path, size) =
            save_media(Some(&media), "tg", "../m1", "../../etc/passwd", b"abc").unwrap();
        assert_eq!(size, 3);
        assert!(path.starts_with(media.to_str().unwrap()), "{path}");
        assert!(!path.contains("passwd") && !path.contains(".."), "{path}");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(Path::new(&path)), 0o600);
        assert_eq!(mode(&media), 0o700);
        assert_eq!(safe_name(".."), "_");
        assert_eq!(safe_name(""), "file");
        assert!(
            save_media(None, "x", "1", "y", b"")
                .unwrap_err()
                .contains("--media-dir")
        );

        let state = StateFile::at(dir.path().join("c.cursor"));
        assert_eq!(state.read(), None);
        state.write("42\n").unwrap();
        assert_eq!(state.read().as_deref(), Some("42"));
        assert_eq!(mode(&dir.path().join("c.cursor")), 0o600);
    }

    #[test]
    fn same_named_files_of_two_senders_both_survive() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = save_media(Some(dir.path()), "wecom", "m1", "report.pdf", b"alice").unwrap();
        let (b, _) = save_media(Some(dir.path()), "wecom", "m1", "report.pdf", b"mallory").unwrap();
        assert_ne!(a, b);
        assert!(a.ends_with(".pdf"), "{a}");
        assert_eq!(std::fs::read(&a).unwrap(), b"alice");
        assert_eq!(std::fs::read(&b).unwrap(), b"mallory");
        assert_eq!(media_name("wx", "a/b c", "x.tar.GZ", "r"), "wx-a_b_c-r.gz");
        assert_eq!(media_name("wx", "1", "no extension", "r"), "wx-1-r");
        assert_eq!(media_name("wx", "1", "evil.<script>", "r"), "wx-1-r");
    }

    #[test]
    fn retention_removes_the_old_then_the_oldest_over_the_size() {
        let day = Duration::from_secs(86_400);
        let r = Retention {
            max_age: 7 * day,
            max_bytes: 100,
        };
        let files = vec![
            ("old".to_owned(), 8 * day, 10),
            ("a".to_owned(), 3 * day, 60),
            ("b".to_owned(), 2 * day, 30),
            ("new".to_owned(), Duration::ZERO, 40),
        ];
        assert_eq!(expired(&files, r), ["old", "a"]);
        let tiny = Retention { max_bytes: 1, ..r };
        assert_eq!(expired(&files, tiny), ["old", "a", "b"], "the newest stays");
        assert!(expired(&files[1..2], Retention::default()).is_empty());
        let set = Retention::from_lookup(|k| match k {
            "BRIDGEKEEPER_MEDIA_MAX_AGE" => Some("12h".into()),
            "BRIDGEKEEPER_MEDIA_MAX_MB" => Some("5".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!((set.max_age, set.max_bytes), (day / 2, 5 * 1024 * 1024));
        assert!(Retention::from_lookup(|_| Some("lots".into())).is_err());
    }

    #[test]
    fn a_sweep_removes_only_this_connectors_expired_files() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tg-old", "tg-new", "other-old"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let old = std::time::SystemTime::now() - Duration::from_secs(3600);
        for name in ["tg-old", "other-old"] {
            let f = std::fs::File::options()
                .write(true)
                .open(dir.path().join(name))
                .unwrap();
            f.set_modified(old).unwrap();
        }
        let r = Retention {
            max_age: Duration::from_secs(60),
            ..Retention::default()
        };
        sweep_media(dir.path(), "tg", r);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["other-old", "tg-new"]);
    }
}
