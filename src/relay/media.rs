//! Media over the relay's HTTP side, as gateways after 0.19.0 expect (`/relay/media`): an
//! inbound message's file is served at `GET /relay/media/<id>`, and a file a gateway uploads
//! (`POST /relay/media`) gets an id a `send_media` can name. Both take the socket's bearer.
//!
//! An id is the file's path signed with a key of this state directory
//! (`base64url(path).hmac`): nothing is kept per file, an id survives a restart, and only a
//! path bridgekeeper itself named can ever be read through it. Uploads live an hour.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::util::fs::{PathError, ensure_private_dir, write_atomic};

/// Hermes' cap on a relayed file, both ways.
pub const MAX_BYTES: usize = 25 * 1024 * 1024;
/// How long an uploaded file is kept (Hermes' re-hosts live about as long).
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest file name kept from `X-Media-Filename`.
const MAX_NAME: usize = 255;

const KEY_FILE: &str = "relay-media.key";
const UPLOADS: &str = "relay-media";

pub struct MediaRoom {
    key: [u8; 32],
    uploads: PathBuf,
}

impl MediaRoom {
    /// The key of `state_dir` (made on first use, 0600) and its upload folder (0700). Blocking.
    pub fn open(state_dir: &Path) -> Result<Self, PathError> {
        let key_file = state_dir.join(KEY_FILE);
        let key = match std::fs::read(&key_file) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0u8; 32];
                key.copy_from_slice(&bytes);
                key
            }
            _ => {
                let key = crate::util::random::bytes::<32>();
                write_atomic(&key_file, &key)?;
                key
            }
        };
        let uploads = state_dir.join(UPLOADS);
        ensure_private_dir(&uploads)?;
        Ok(Self { key, uploads })
    }

    /// The id that names `path`.
    pub fn id(&self, path: &Path) -> String {
        let raw = path.as_os_str().as_encoded_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(raw), self.sign(raw))
    }

    /// The path an id names, if this state directory signed it.
    pub fn path(&self, id: &str) -> Option<PathBuf> {
        let (encoded, signature) = id.split_once('.')?;
        let raw = URL_SAFE_NO_PAD.decode(encoded).ok()?;
        let mut mac = self.mac();
        mac.update(&raw);
        mac.verify_slice(&crate::util::hex::decode(signature)?)
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        Some(PathBuf::from(text))
    }

    /// The id in a `/relay/media/<id>` URL (any host: the gateway names it as it dialled).
    pub fn id_in_url<'a>(&self, url: &'a str) -> Option<&'a str> {
        let rest = url.split_once("/relay/media/")?.1;
        let id = rest.split(['?', '#']).next()?;
        (!id.is_empty()).then_some(id)
    }

    /// Keeps an uploaded file (0600, a fresh name keeping `name`'s extension); its id. Blocking.
    pub fn keep(&self, bytes: &[u8], name: Option<&str>) -> Result<String, PathError> {
        let name = name.map(safe_name).unwrap_or_default();
        let stem = crate::util::random::hex::<12>();
        let file = if name.is_empty() {
            self.uploads.join(stem)
        } else {
            self.uploads.join(format!("{stem}-{name}"))
        };
        write_atomic(&file, bytes)?;
        Ok(self.id(&file))
    }

    /// Removes uploads older than `UPLOAD_LIFETIME`. Blocking.
    pub fn sweep(&self) {
        let Ok(entries) = std::fs::read_dir(&self.uploads) else {
            return;
        };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > UPLOAD_LIFETIME);
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length")
    }

    fn sign(&self, raw: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(raw);
        crate::util::hex::encode(&mac.finalize().into_bytes())
    }
}

/// A file name as a gateway sent it, reduced to its last part and to characters any file
/// system takes; at most `MAX_NAME` bytes.
pub fn safe_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out: String = last
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    while out.starts_with('.') {
        out.remove(0);
    }
    while out.len() > MAX_NAME {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_only_a_path_this_state_directory_signed() {
        let dir = tempfile::tempdir().unwrap();
        let room = MediaRoom::open(dir.path()).unwrap();
        let path = Path::new("/var/media/tg-1-abc.jpg");
        let id = room.id(path);
        assert_eq!(room.path(&id).as_deref(), Some(path));
        // Another path under the same signature, a bent signature, garbage: nothing.
        let other = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode("/etc/shadow"),
            id.split_once('.').unwrap().1
        );
        assert_eq!(room.path(&other), None);
        assert_eq!(room.path(&id.replace('.', ".0")), None);
        assert_eq!(room.path("not-an-id"), None);
        // The key lasts: a restart reads the same ids.
        let again = MediaRoom::open(dir.path()).unwrap();
        assert_eq!(again.path(&id).as_deref(), Some(path));
        assert_eq!(
            room.id_in_url(&format!("http://127.0.0.1:8790/relay/media/{id}")),
            Some(id.as_str())
        );
        assert_eq!(room.id_in_url("https://example.com/cat.jpg"), None);
    }

    #[test]
    fn an_upload_keeps_a_safe_name_and_is_readable_through_its_id() {
        let dir = tempfile::tempdir().unwrap();
        let room = MediaRoom::open(dir.path()).unwrap();
        let id = room.keep(b"bytes", Some("../../etc/passwd")).unwrap();
        let path = room.path(&id).unwrap();
        assert!(path.starts_with(dir.path().join(UPLOADS)));
        assert!(path.to_string_lossy().ends_with("-passwd"));
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
        assert_eq!(safe_name("a b/ç.PNG"), "ç.PNG");
        assert_eq!(safe_name("..hidden"), "hidden");
        assert_eq!(safe_name(&"x".repeat(400)).len(), MAX_NAME);
    }
}
