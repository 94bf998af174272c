//! WeCom's callback crypto (BizMsgCrypt), as the self-built app's callbacks use it: a SHA-1
//! signature over the sorted token, timestamp, nonce and ciphertext, compared in constant time;
//! AES-256-CBC with the 43-character `EncodingAESKey` (its first 16 bytes the IV), PKCS#7 padded
//! to 32 bytes; the plaintext a 16-byte random prefix, the message length (big-endian), the
//! message and the receiver id, which must be the corp id. Pure.

use base64::Engine;
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::connectors::kit::cipher;

/// Why a callback's ciphertext was refused. The sender is told no more than 403 / 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the signature does not match")]
    Signature,
    #[error("the ciphertext is not valid base64 or not whole AES blocks")]
    Encoding,
    #[error("the padding or the length inside the message is wrong")]
    Malformed,
    #[error("the message is for another corp id")]
    WrongReceiver,
}

/// An app's callback keys.
#[derive(Clone)]
pub struct Crypt {
    token: String,
    key: [u8; 32],
    receiver: String,
}

impl std::fmt::Debug for Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypt(<redacted>)")
    }
}

impl Crypt {
    /// `aes_key`: the 43-character EncodingAESKey (base64 without its `=`).
    pub fn new(token: &str, aes_key: &str, receiver: &str) -> Result<Self, String> {
        if token.is_empty() {
            return Err("the callback token is empty".into());
        }
        if aes_key.len() != 43 {
            return Err(format!(
                "the EncodingAESKey must be 43 characters, not {}",
                aes_key.len()
            ));
        }
        let key = crate::connectors::kit::cipher::key_from_base64(aes_key)
            .ok_or_else(|| "the EncodingAESKey does not decode to 32 bytes".to_owned())?;
        if receiver.is_empty() {
            return Err("the corp id is empty".into());
        }
        Ok(Self {
            token: token.to_owned(),
            key,
            receiver: receiver.to_owned(),
        })
    }

    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        let digest = Sha1::digest(parts.concat().as_bytes());
        crate::util::hex::encode(&digest)
    }

    /// Whether `signature` is this app's over the parts, compared in constant time.
    pub fn signature_matches(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> bool {
        let expected = self.signature(timestamp, nonce, encrypted);
        bool::from(signature.as_bytes().ct_eq(expected.as_bytes()))
    }

    /// Checks the signature (constant time), then decrypts.
    pub fn open(
        &self,
        signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        if !self.signature_matches(signature, timestamp, nonce, encrypted) {
            return Err(CryptoError::Signature);
        }
        self.decrypt(encrypted)
    }

    fn decrypt(&self, encrypted: &str) -> Result<Vec<u8>, CryptoError> {
        let data = base64::engine::general_purpose::STANDARD
            .decode(encrypted.trim())
            .map_err(|_| CryptoError::Encoding)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(CryptoError::Encoding);
        }
        let data = cipher::cbc256_decrypt(&self.key, &data).ok_or(CryptoError::Malformed)?;
        if data.len() < 20 {
            return Err(CryptoError::Malformed);
        }
        let len = u32::from_be_bytes(data[16..20].try_into().expect("4 bytes")) as usize;
        let body = data.get(20..20 + len).ok_or(CryptoError::Malformed)?;
        let receiver = &data[20 + len..];
        if !bool::from(receiver.ct_eq(self.receiver.as_bytes())) {
            return Err(CryptoError::WrongReceiver);
        }
        Ok(body.to_vec())
    }

    /// The ciphertext of `message` (a random prefix each time), for answers and the tests.
    pub fn encrypt(&self, message: &[u8]) -> String {
        let mut plain = crate::util::random::bytes::<16>().to_vec();
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message);
        plain.extend_from_slice(self.receiver.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(cipher::cbc256_encrypt(&self.key, &plain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn what_is_sealed_opens_and_anything_else_is_refused_by_its_reason() {
        let c = Crypt::new("tok", KEY, "wwcorp").unwrap();
        let sealed = c.encrypt(b"<xml>hello</xml>");
        let sig = c.signature("1700000000", "n1", &sealed);
        assert_eq!(
            c.open(&sig, "1700000000", "n1", &sealed).unwrap(),
            b"<xml>hello</xml>"
        );
        assert_eq!(
            c.open(&sig, "1700000001", "n1", &sealed),
            Err(CryptoError::Signature)
        );
        let other_corp = Crypt::new("tok", KEY, "wwother").unwrap();
        assert_eq!(
            other_corp.open(&sig, "1700000000", "n1", &sealed),
            Err(CryptoError::WrongReceiver)
        );
        let junk = "bm90IGJsb2Nrcw==";
        let sig = c.signature("1", "n", junk);
        assert_eq!(c.open(&sig, "1", "n", junk), Err(CryptoError::Encoding));
        assert!(Crypt::new("tok", "short", "wwcorp").is_err());
        assert!(Crypt::new("", KEY, "wwcorp").is_err());
        assert_eq!(format!("{c:?}"), "Crypt(<redacted>)");
    }

    /// A known answer from WeCom's scheme computed independently (Python's hashlib over the
    /// sorted strings), so the signature is not only consistent with itself.
    #[test]
    fn the_signature_is_sha1_of_the_sorted_parts() {
        let c = Crypt::new("QDG6eK", KEY, "wx5823bf96d3bd56c7").unwrap();
        let sig = c.signature(
            "1409659813",
            "1372623149",
            "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo",
        );
        assert_eq!(sig, "65664ba4ebf14da066e746a9e3aa9aac1f19e4ef");
    }
}
