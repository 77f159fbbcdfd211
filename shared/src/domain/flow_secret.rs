//! The PKCE verifier at rest, encrypted under a key derived from the flow's `state`.
//!
//! The store keeps only SHA-256(state) and this ciphertext; the key is
//! HMAC-SHA256(state, label), so the verifier can be opened only by whoever presents the
//! state itself: the callback of that very flow. No key service is involved, so starting
//! and completing a flow costs no KMS call.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

const LABEL: &[u8] = b"bot-integrations/v1 pkce verifier key";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the flow's verifier could not be opened")]
pub struct OpenError;

fn cipher(state: &str) -> Aes256Gcm {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(state.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(LABEL);
    let key: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
}

/// Encrypts `verifier` for the flow of `state`; `state_hash` is bound as associated data.
pub fn seal(verifier: &str, state: &str, state_hash: &str) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let ct = cipher(state)
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: verifier.as_bytes(),
                aad: state_hash.as_bytes(),
            },
        )
        .unwrap_or_default();
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    URL_SAFE_NO_PAD.encode(out)
}

pub fn open(sealed: &str, state: &str, state_hash: &str) -> Result<Zeroizing<String>, OpenError> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
    if bytes.len() < NONCE_LEN + 16 {
        return Err(OpenError);
    }
    let (nonce, ct) = bytes.split_at(NONCE_LEN);
    let plain = cipher(state)
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: state_hash.as_bytes(),
            },
        )
        .map_err(|_| OpenError)?;
    String::from_utf8(plain)
        .map(Zeroizing::new)
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_opens_the_verifier() {
        let sealed = seal("verifier-123", "acme.state-one", "hash-1");
        assert!(!sealed.contains("verifier"));
        assert_eq!(
            open(&sealed, "acme.state-one", "hash-1").unwrap().as_str(),
            "verifier-123"
        );
        assert_eq!(open(&sealed, "acme.state-two", "hash-1"), Err(OpenError));
        assert_eq!(open(&sealed, "acme.state-one", "hash-2"), Err(OpenError));
        assert_eq!(open("garbage", "acme.state-one", "hash-1"), Err(OpenError));
        assert_ne!(sealed, seal("verifier-123", "acme.state-one", "hash-1"));
    }
}
