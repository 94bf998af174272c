//! WeCom's media both ways: a callback's encrypted file fetched (its size capped while
//! reading), decrypted with the message's own `aeskey` (AES-256-CBC) and written to the media
//! dir; a file to send uploaded over the socket in 512 KiB chunks
//! (`aibot_upload_media_init/chunk/finish`).

use std::io::Read;
use std::path::Path;

use base64::Engine;
use bridge_protocol::message::{ErrorBody, Media, MediaKind};
use serde_json::{Value, json};

use super::Shared;
use super::frames;
use super::translate::MediaRef;
use crate::connectors::kit::{cipher, files, http};

pub const UPLOAD_CHUNK: usize = 512 * 1024;
pub const MAX_UPLOAD_CHUNKS: usize = 100;

/// The file a callback names, as `media` (with `download_error` when it could not be had).
pub fn fetch(r: &MediaRef, dir: Option<&Path>, message_id: &str) -> Media {
    let kind = if r.kind == "image" {
        MediaKind::Image
    } else {
        MediaKind::Document
    };
    let mut media = Media {
        kind,
        mime: None,
        file_name: r.file_name.clone(),
        path: None,
        size: None,
        download_error: None,
    };
    match download(r).and_then(|bytes| {
        let name = r.file_name.clone().unwrap_or_else(|| {
            format!(
                "{message_id}.{}",
                if r.kind == "image" { "jpg" } else { "bin" }
            )
        });
        files::save_media(dir, "wecom", message_id, &name, &bytes)
    }) {
        Ok((path, size)) => {
            media.path = Some(path);
            media.size = Some(size);
        }
        Err(why) => media.download_error = Some(why),
    }
    media
}

fn download(r: &MediaRef) -> Result<Vec<u8>, String> {
    let max = r.max_bytes();
    let mut response = http::agent()
        .get(&r.url)
        .config()
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .call()
        .map_err(|e| format!("download failed: {e}"))?;
    if !response.status().is_success() {
        return Err(format!(
            "download failed: HTTP {}",
            response.status().as_u16()
        ));
    }
    let mut bytes = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("download failed: {e}"))?;
    if bytes.len() as u64 > max {
        return Err(format!(
            "larger than WeCom's {} MiB limit for a {}",
            max >> 20,
            r.kind
        ));
    }
    if r.aes_key.is_empty() {
        return Ok(bytes);
    }
    let key =
        cipher::key_from_base64(&r.aes_key).ok_or("the message's aeskey is not a 32-byte key")?;
    cipher::cbc256_decrypt(&key, &bytes)
        .ok_or_else(|| "the file does not decrypt with its aeskey".to_owned())
}

/// Hermes' caps for what the bot sends: image and video 10 MiB, voice 2 MiB, file 20 MiB.
pub fn check_size(kind: &str, size: u64) -> Result<(), String> {
    let max: u64 = match kind {
        "image" | "video" => 10 << 20,
        "voice" => 2 << 20,
        _ => 20 << 20,
    };
    if size == 0 {
        return Err("the file is empty".into());
    }
    if size > max {
        return Err(format!(
            "a {kind} may be {} MiB at most; this one is {} bytes",
            max >> 20,
            size
        ));
    }
    Ok(())
}

/// Uploads `data` over the socket; the `media_id` to send it by.
pub(super) async fn upload(
    shared: &Shared,
    kind: &str,
    name: &str,
    data: &[u8],
) -> Result<String, ErrorBody> {
    let chunks: Vec<&[u8]> = data.chunks(UPLOAD_CHUNK).collect();
    if chunks.len() > MAX_UPLOAD_CHUNKS {
        return Err(crate::connectors::kit::error(
            "too_large",
            "the file needs more than 100 upload chunks",
            false,
        ));
    }
    use md5::Digest;
    let md5 = crate::util::hex::encode(&md5::Md5::digest(data));
    let init = super::request(
        shared,
        frames::UPLOAD_INIT,
        &format!("upload-{}", crate::util::random::hex::<8>()),
        json!({"type": kind, "filename": name, "total_size": data.len(), "total_chunks": chunks.len(), "md5": md5}),
    )
    .await?;
    let upload_id = init
        .get("upload_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            crate::connectors::kit::error("wecom_error", "the upload was not given an id", false)
        })?
        .to_owned();
    for (index, chunk) in chunks.iter().enumerate() {
        super::request(
            shared,
            frames::UPLOAD_CHUNK,
            &format!("chunk-{}", crate::util::random::hex::<8>()),
            json!({"upload_id": upload_id, "chunk_index": index, "base64_data": base64::engine::general_purpose::STANDARD.encode(chunk)}),
        )
        .await?;
    }
    let done = super::request(
        shared,
        frames::UPLOAD_FINISH,
        &format!("finish-{}", crate::util::random::hex::<8>()),
        json!({"upload_id": upload_id}),
    )
    .await?;
    done.get("media_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| {
            crate::connectors::kit::error(
                "wecom_error",
                "the finished upload has no media_id",
                false,
            )
        })
}
