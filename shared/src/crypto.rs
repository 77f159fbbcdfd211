//! AES-256-GCM and the sealed-text format, written once for every sealer: the key-file
//! sealer, the KMS sealer and the flow secrets.
//!
//! A ciphertext is `nonce (12 bytes) || AES-256-GCM(plaintext) with tag`. Sealed text is
//! `<scheme>.<key id>.<base64url wrapped data key>.<base64url ciphertext>`: the scheme names
//! who can open it (`v1` the key file, `kms1` KMS), the key id which key wrapped the data key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use std::fmt;
use zeroize::Zeroizing;

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// An AES-256 key that is wiped when dropped.
pub type DataKey = Zeroizing<[u8; KEY_LEN]>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, wrong associated data, or tampered bytes: authenticated decryption failed.
    #[error("the ciphertext does not open with this key and context")]
    Open,
    /// Too short, not base64, or not of the expected layout.
    #[error("the sealed data is malformed")]
    Malformed,
    /// AES-GCM refused to encrypt (only for absurd lengths).
    #[error("the data could not be encrypted")]
    Encrypt,
}

/// Fills `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf
}

/// A fresh random data key.
pub fn new_data_key() -> DataKey {
    Zeroizing::new(random_bytes::<KEY_LEN>())
}

/// A data key from bytes handed over by a key service.
pub fn data_key_from(bytes: &[u8]) -> Result<DataKey, CryptoError> {
    let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::Malformed)?;
    Ok(Zeroizing::new(key))
}

/// Encrypts `plaintext` under `key` with a fresh nonce, binding `aad`.
pub fn seal(key: &DataKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let nonce = random_bytes::<NONCE_LEN>();
    let ct = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .map_err(|_| CryptoError::Encrypt)?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] produced with the same key and `aad`.
pub fn open(
    key: &DataKey,
    ciphertext: &[u8],
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if ciphertext.len() < NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Malformed);
    }
    let (nonce, ct) = ciphertext.split_at(NONCE_LEN);
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// Sealed text as stored. Not secret (it opens only with a key the store never holds), but
/// kept apart from plain strings so a value cannot be stored unsealed by mistake.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed(String);

impl Sealed {
    /// Wraps text read back from storage; [`Envelope::parse`] checks it when it is opened.
    pub fn from_stored(text: String) -> Self {
        Sealed(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.0.len())
    }
}

/// The parts of sealed text.
pub struct Envelope {
    /// As written in the text; each scheme says how it encodes its key ids.
    pub key_id: String,
    pub wrapped_key: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Envelope {
    pub fn seal_text(&self, scheme: &str) -> Sealed {
        Sealed(format!(
            "{scheme}.{}.{}.{}",
            self.key_id,
            URL_SAFE_NO_PAD.encode(&self.wrapped_key),
            URL_SAFE_NO_PAD.encode(&self.ciphertext)
        ))
    }

    /// Splits sealed text of `scheme`; any other layout is malformed.
    pub fn parse(sealed: &Sealed, scheme: &str) -> Result<Self, CryptoError> {
        let mut parts = sealed.as_str().split('.');
        let (Some(s), Some(key_id), Some(wrapped), Some(ct), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(CryptoError::Malformed);
        };
        if s != scheme || key_id.is_empty() {
            return Err(CryptoError::Malformed);
        }
        let decode = |p: &str| {
            URL_SAFE_NO_PAD
                .decode(p)
                .map_err(|_| CryptoError::Malformed)
        };
        Ok(Self {
            key_id: key_id.to_owned(),
            wrapped_key: decode(wrapped)?,
            ciphertext: decode(ct)?,
        })
    }
}

/// A short secret sealed under a key derived from another secret, as one base64url string
/// (the flow's PKCE verifier under its `state`).
pub fn seal_compact(key: &DataKey, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CryptoError> {
    Ok(Sealed(URL_SAFE_NO_PAD.encode(seal(key, plaintext, aad)?)))
}

pub fn open_compact(
    key: &DataKey,
    sealed: &Sealed,
    aad: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(sealed.as_str())
        .map_err(|_| CryptoError::Malformed)?;
    open(key, &bytes, aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open_bind_key_and_associated_data() {
        let key = new_data_key();
        let ct = seal(&key, b"secret", b"ctx-a").unwrap();
        assert_eq!(open(&key, &ct, b"ctx-a").unwrap().as_slice(), b"secret");
        assert_eq!(open(&key, &ct, b"ctx-b"), Err(CryptoError::Open));
        assert_eq!(open(&new_data_key(), &ct, b"ctx-a"), Err(CryptoError::Open));
        assert_eq!(open(&key, &ct[..20], b"ctx-a"), Err(CryptoError::Malformed));
        let mut tampered = ct.clone();
        tampered[15] ^= 1;
        assert_eq!(open(&key, &tampered, b"ctx-a"), Err(CryptoError::Open));
        assert_ne!(ct, seal(&key, b"secret", b"ctx-a").unwrap(), "fresh nonce");
    }

    #[test]
    fn sealed_text_round_trips_and_refuses_other_layouts() {
        let env = Envelope {
            key_id: "k1".into(),
            wrapped_key: vec![1, 2, 3],
            ciphertext: vec![4, 5, 6],
        };
        let text = env.seal_text("v1");
        assert!(text.as_str().starts_with("v1.k1."));
        let back = Envelope::parse(&text, "v1").unwrap();
        assert_eq!(
            (back.key_id.as_str(), back.wrapped_key, back.ciphertext),
            ("k1", vec![1, 2, 3], vec![4, 5, 6])
        );
        assert!(Envelope::parse(&text, "kms1").is_err());
        for bad in ["v1.k1.AQ", "v1.k1.AQ.AQ.AQ", "v1..AQ.AQ", "v1.k1.!!.AQ"] {
            assert!(
                Envelope::parse(&Sealed::from_stored(bad.into()), "v1").is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            format!("{text:?}"),
            format!("Sealed({} bytes)", text.as_str().len())
        );
    }
}
