//! Envelope encryption under a key file: each sealed value gets its own random AES-256 data
//! key, which is itself sealed under the file's active key. The sealed text names the key it
//! was wrapped with, so a file may hold old keys for reading while a new one seals.
//!
//! Sealed text: `v1.<key id>.<base64url wrapped data key>.<base64url nonce+ciphertext>`.
//! Both AES-GCM operations bind the seal context (purpose, bot, record) as associated data.

use crate::crypto::{self, DataKey, Envelope, Sealed, KEY_LEN};
use crate::ports::{PreparedSeal, SealContext, SealError, Sealer};
use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use zeroize::{Zeroize, Zeroizing};

const SCHEME: &str = "v1";

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read or create the key file {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the key file {path} is readable by other users (mode {mode:o}); run: chmod 600 {path}"
    )]
    Permissions { path: String, mode: u32 },
    #[error("the key file {path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    active: String,
    keys: BTreeMap<String, String>,
}

pub struct LocalKeySealer {
    active: String,
    keys: BTreeMap<String, DataKey>,
}

fn aad(ctx: SealContext<'_>) -> Vec<u8> {
    // The fields cannot contain '\n' (ids are restricted), so the joining is unambiguous.
    format!(
        "bot-integrations/v1\n{}\n{}\n{}",
        ctx.purpose.as_str(),
        ctx.bot,
        ctx.record
    )
    .into_bytes()
}

/// Writes a key file with one fresh key, readable by its owner only.
fn create_key_file(path: &Path) -> std::io::Result<()> {
    let kid = format!("k{}", time::OffsetDateTime::now_utc().unix_timestamp());
    let mut key = crypto::random_bytes::<KEY_LEN>();
    let file = KeyFile {
        active: kid.clone(),
        keys: [(kid, STANDARD.encode(key))].into(),
    };
    key.zeroize();
    let mut body = serde_json::to_vec_pretty(&file)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options.open(path)?;
    let written = f.write_all(&body).and_then(|()| f.sync_all());
    body.zeroize();
    written
}

impl LocalKeySealer {
    /// Opens the key file, creating it with one fresh key and mode 0600 when it is missing.
    pub fn open_or_create(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let io = |source| KeyFileError::Io {
            path: shown.clone(),
            source,
        };
        if !path.exists() {
            create_key_file(path).map_err(io)?;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path).map_err(io)?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::Permissions { path: shown, mode });
            }
        }
        let raw = Zeroizing::new(std::fs::read(path).map_err(io)?);
        let invalid = |reason: &str| KeyFileError::Invalid {
            path: shown.clone(),
            reason: reason.to_owned(),
        };
        let file: KeyFile = serde_json::from_slice(&raw)
            .map_err(|_| invalid("expected {\"active\": id, \"keys\": {id: base64}}"))?;
        let mut keys = BTreeMap::new();
        for (kid, b64) in &file.keys {
            if kid.is_empty() || !kid.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') {
                return Err(invalid("key ids are letters, digits and '-'"));
            }
            let bytes = Zeroizing::new(
                STANDARD
                    .decode(b64)
                    .map_err(|_| invalid("a key is not base64"))?,
            );
            let key =
                crypto::data_key_from(&bytes).map_err(|_| invalid("a key is not 32 bytes"))?;
            keys.insert(kid.clone(), key);
        }
        if !keys.contains_key(&file.active) {
            return Err(invalid("'active' names no key of the file"));
        }
        Ok(Self {
            active: file.active,
            keys,
        })
    }
}

#[async_trait]
impl Sealer for LocalKeySealer {
    async fn prepare(&self, ctx: SealContext<'_>) -> Result<PreparedSeal, SealError> {
        let kek = self
            .keys
            .get(&self.active)
            .ok_or_else(|| SealError::UnknownKey(self.active.clone()))?;
        let aad = aad(ctx);
        let dek = crypto::new_data_key();
        Ok(PreparedSeal {
            scheme: SCHEME,
            key_id: self.active.clone(),
            wrapped_key: crypto::seal(kek, dek.as_slice(), &aad)?,
            data_key: dek,
            aad,
        })
    }

    async fn open(
        &self,
        sealed: &Sealed,
        ctx: SealContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let envelope = Envelope::parse(sealed, SCHEME)?;
        let kek = self
            .keys
            .get(&envelope.key_id)
            .ok_or_else(|| SealError::UnknownKey(envelope.key_id.clone()))?;
        let aad = aad(ctx);
        let dek = crypto::data_key_from(&crypto::open(kek, &envelope.wrapped_key, &aad)?)?;
        Ok(crypto::open(&dek, &envelope.ciphertext, &aad)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use crate::ports::Purpose;
    use std::sync::Arc;

    #[tokio::test]
    async fn contract() {
        let dir = tempfile::tempdir().unwrap();
        let sealer = LocalKeySealer::open_or_create(&dir.path().join("k")).unwrap();
        contract::sealer_binds_each_blob_to_its_record(Arc::new(sealer)).await;
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        LocalKeySealer::open_or_create(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = LocalKeySealer::open_or_create(&path).err().unwrap();
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[tokio::test]
    async fn keys_rotate_and_old_blobs_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let old = LocalKeySealer::open_or_create(&path).unwrap();
        let ctx = SealContext {
            purpose: Purpose::Token,
            bot: "acme",
            record: "tok_1",
        };
        let sealed_old = old.seal(b"secret", ctx).await.unwrap();

        // The operator adds a key and makes it active.
        let mut file: KeyFile = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        file.keys
            .insert("k-next".into(), STANDARD.encode([7u8; 32]));
        file.active = "k-next".into();
        std::fs::write(&path, serde_json::to_vec(&file).unwrap()).unwrap();
        let rotated = LocalKeySealer::open_or_create(&path).unwrap();
        let sealed_new = rotated.seal(b"secret", ctx).await.unwrap();
        assert!(sealed_new.as_str().starts_with("v1.k-next."));
        assert_eq!(
            rotated.open(&sealed_old, ctx).await.unwrap().as_slice(),
            b"secret"
        );

        // A blob naming a key the file no longer has fails clearly.
        assert!(
            matches!(old.open(&sealed_new, ctx).await, Err(SealError::UnknownKey(k)) if k == "k-next")
        );
    }
}
