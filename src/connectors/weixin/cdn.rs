//! Media through iLink's CDN: files travel AES-128-ECB encrypted (PKCS#7 padding) under a
//! per-file key; a download is `GET {cdn}/download?encrypted_query_param=…`, an upload a POST of
//! the ciphertext to the URL `getuploadurl` names, answered with `x-encrypted-param`.

use std::time::Duration;

use aes::Aes128;
use aes::cipher::{BlockDecrypt, BlockEncrypt, KeyInit, generic_array::GenericArray};
use base64::Engine;

use crate::connectors::kit::http;

const BLOCK: usize = 16;

pub fn encrypt(plain: &[u8], key: &[u8; 16]) -> Vec<u8> {
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let pad = BLOCK - plain.len() % BLOCK;
    let mut out = Vec::with_capacity(plain.len() + pad);
    out.extend_from_slice(plain);
    out.extend(std::iter::repeat_n(pad as u8, pad));
    for block in out.chunks_exact_mut(BLOCK) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

/// Decrypts; a padding that does not check out is left in place (as Hermes does), a length
/// that is not whole blocks is an error.
pub fn decrypt(data: &[u8], key: &[u8; 16]) -> Result<Vec<u8>, String> {
    if data.len() % BLOCK != 0 {
        return Err(format!(
            "{} bytes is not a whole number of AES blocks",
            data.len()
        ));
    }
    let cipher = Aes128::new(GenericArray::from_slice(key));
    let mut out = data.to_vec();
    for block in out.chunks_exact_mut(BLOCK) {
        cipher.decrypt_block(GenericArray::from_mut_slice(block));
    }
    if let Some(&pad) = out.last() {
        let pad = pad as usize;
        if (1..=BLOCK).contains(&pad)
            && out.len() >= pad
            && out[out.len() - pad..].iter().all(|&b| b as usize == pad)
        {
            out.truncate(out.len() - pad);
        }
    }
    Ok(out)
}

/// The ciphertext's size for `plain` bytes.
pub fn padded_size(plain: usize) -> usize {
    (plain / BLOCK + 1) * BLOCK
}

/// A media item's key: base64 of the 16 bytes, or base64 of their 32 hex digits.
pub fn parse_key_b64(b64: &str) -> Result<[u8; 16], String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| format!("the media key is not base64 ({e})"))?;
    match raw.len() {
        16 => Ok(raw.try_into().unwrap_or([0; 16])),
        32 => parse_key_hex(std::str::from_utf8(&raw).map_err(|_| "the media key is not hex")?),
        n => Err(format!("the media key has {n} bytes, not 16")),
    }
}

/// A key as 32 hex digits.
pub fn parse_key_hex(hex: &str) -> Result<[u8; 16], String> {
    let hex = hex.trim();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("the media key is not 32 hex digits".into());
    }
    let mut key = [0u8; 16];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
    }
    Ok(key)
}

/// The key as iLink wants it in a sent item: base64 of its hex digits.
pub fn key_for_api(key: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(crate::util::hex::encode(key))
}

/// Downloads one file (at most `limit` bytes) and decrypts it.
pub fn download(
    cdn: &str,
    query_param: &str,
    key: &[u8; 16],
    limit: u64,
) -> Result<Vec<u8>, String> {
    let url = format!("{}/download", cdn.trim_end_matches('/'));
    let mut response = http::agent()
        .get(&url)
        .query("encrypted_query_param", query_param)
        .config()
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .call()
        .map_err(|e| format!("CDN download: {e}"))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(format!("CDN download: HTTP {status}"));
    }
    let data = response
        .body_mut()
        .with_config()
        .limit(limit + BLOCK as u64)
        .read_to_vec()
        .map_err(|e| format!("CDN download: {e}"))?;
    let plain = decrypt(&data, key)?;
    if plain.len() as u64 > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    Ok(plain)
}

/// POSTs `ciphertext` to `url` with `query` (encoded by the client); the CDN's
/// `x-encrypted-param` names the upload.
pub fn upload(url: &str, query: &[(&str, String)], ciphertext: &[u8]) -> Result<String, String> {
    let mut response = http::agent()
        .post(url)
        .query_pairs(query.iter().map(|(k, v)| (*k, v.as_str())))
        .header("Content-Type", "application/octet-stream")
        .config()
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .send(ciphertext)
        .map_err(|e| format!("CDN upload: {e}"))?;
    let status = response.status().as_u16();
    let param = response
        .headers()
        .get("x-encrypted-param")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let _ = response.body_mut().read_to_vec();
    match (status, param) {
        (200, Some(p)) if !p.is_empty() => Ok(p),
        (200, _) => Err("CDN upload: no x-encrypted-param in the answer".into()),
        (s, _) => Err(format!("CDN upload: HTTP {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecb_round_trips_with_pkcs7_and_keys_come_in_both_forms() {
        let key = parse_key_hex("000102030405060708090a0b0c0d0e0f").unwrap();
        // FIPS-197 appendix C.1: AES-128 of 00112233…eeff under 000102…0f.
        let block: Vec<u8> = (0..16).map(|i| (i * 0x11) as u8).collect();
        let enc = encrypt(&block, &key);
        assert_eq!(
            crate::util::hex::encode(&enc[..16]),
            "69c4e0d86a7b0430d8cdb78070b4c55a"
        );
        assert_eq!(enc.len(), 32, "a whole block of padding follows");
        assert_eq!(decrypt(&enc, &key).unwrap(), block);
        for n in [0, 1, 15, 16, 17, 1000] {
            let plain: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let enc = encrypt(&plain, &key);
            assert_eq!(enc.len(), padded_size(n));
            assert_eq!(decrypt(&enc, &key).unwrap(), plain);
        }
        assert!(decrypt(&[0; 15], &key).is_err());
        let b64_raw = base64::engine::general_purpose::STANDARD.encode(key);
        assert_eq!(parse_key_b64(&b64_raw).unwrap(), key);
        assert_eq!(parse_key_b64(&key_for_api(&key)).unwrap(), key);
        assert!(parse_key_b64("AAAA").is_err());
        assert!(parse_key_hex("zz").is_err());
    }
}
