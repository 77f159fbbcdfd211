//! The PKCE verifier at rest, encrypted under a key derived from the flow's `state`.
//!
//! The store keeps only SHA-256(state) and this ciphertext; the key is
//! HMAC-SHA256(state, label), so the verifier can be opened only by whoever presents the
//! state itself: the callback of that very flow. No key service is involved, so starting
//! and completing a flow costs no KMS call.

use crate::crypto::{self, CryptoError, DataKey, Sealed};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const LABEL: &[u8] = b"bot-integrations/v1 pkce verifier key";

fn key(state: &str) -> Result<DataKey, CryptoError> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(state.as_bytes())
        .map_err(|_| CryptoError::Encrypt)?;
    mac.update(LABEL);
    Ok(Zeroizing::new(mac.finalize().into_bytes().into()))
}

/// Encrypts `verifier` for the flow of `state`; `state_hash` is bound as associated data.
pub fn seal(verifier: &str, state: &str, state_hash: &str) -> Result<Sealed, CryptoError> {
    crypto::seal_compact(&key(state)?, verifier.as_bytes(), state_hash.as_bytes())
}

pub fn open(
    sealed: &Sealed,
    state: &str,
    state_hash: &str,
) -> Result<Zeroizing<String>, CryptoError> {
    let plain = crypto::open_compact(&key(state)?, sealed, state_hash.as_bytes())?;
    String::from_utf8(plain.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_state_opens_the_verifier() {
        let sealed = seal("verifier-123", "acme.state-one", "hash-1").unwrap();
        assert!(!sealed.as_str().contains("verifier"));
        assert_eq!(
            open(&sealed, "acme.state-one", "hash-1").unwrap().as_str(),
            "verifier-123"
        );
        assert_eq!(
            open(&sealed, "acme.state-two", "hash-1"),
            Err(CryptoError::Open)
        );
        assert_eq!(
            open(&sealed, "acme.state-one", "hash-2"),
            Err(CryptoError::Open)
        );
        let garbage = Sealed::from_stored("garbage".into());
        assert!(open(&garbage, "acme.state-one", "hash-1").is_err());
        assert_ne!(
            sealed,
            seal("verifier-123", "acme.state-one", "hash-1").unwrap()
        );
    }
}
