//! AES-256-CBC as WeCom uses it, for callbacks and for media alike: the key's first 16 bytes
//! are the IV, and the padding is PKCS#7 to a 32-byte block (WeCom's, not AES's 16). Pure.

use aes::Aes256;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::NoPadding};

const BLOCK: usize = 32;

/// `None` when `data` is not whole AES blocks or its padding is wrong.
pub fn cbc256_decrypt(key: &[u8; 32], data: &[u8]) -> Option<Vec<u8>> {
    if data.is_empty() || data.len() % 16 != 0 {
        return None;
    }
    let mut data = data.to_vec();
    let iv: [u8; 16] = key[..16].try_into().expect("16 bytes");
    cbc::Decryptor::<Aes256>::new(key.into(), &iv.into())
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .ok()?;
    let pad = *data.last()? as usize;
    if pad == 0
        || pad > BLOCK
        || pad > data.len()
        || data[data.len() - pad..].iter().any(|b| *b as usize != pad)
    {
        return None;
    }
    data.truncate(data.len() - pad);
    Some(data)
}

pub fn cbc256_encrypt(key: &[u8; 32], plain: &[u8]) -> Vec<u8> {
    let mut data = plain.to_vec();
    let pad = BLOCK - data.len() % BLOCK;
    data.extend(std::iter::repeat_n(pad as u8, pad));
    let iv: [u8; 16] = key[..16].try_into().expect("16 bytes");
    let len = data.len();
    cbc::Encryptor::<Aes256>::new(key.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut data, len)
        .expect("whole blocks");
    data
}

/// A WeCom key written as base64 without its padding (43 characters for 32 bytes); spare bits
/// in the last character are accepted, as WeCom's own SDKs accept them.
pub fn key_from_base64(text: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let text = text.trim().trim_end_matches('=');
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    lenient.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_opens_and_bad_padding_is_refused() {
        let key = [7u8; 32];
        for len in [0, 1, 31, 32, 33, 100] {
            let plain: Vec<u8> = (0..len as u8).collect();
            let sealed = cbc256_encrypt(&key, &plain);
            assert_eq!(sealed.len() % 32, 0);
            assert_eq!(cbc256_decrypt(&key, &sealed).unwrap(), plain);
        }
        assert_eq!(cbc256_decrypt(&key, &[0u8; 15]), None);
        assert_eq!(
            cbc256_decrypt(&[8u8; 32], &cbc256_encrypt(&key, b"x")),
            None
        );
        let k = key_from_base64("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG").unwrap();
        assert_eq!(k.len(), 32);
        assert!(key_from_base64("short").is_none());
    }
}
