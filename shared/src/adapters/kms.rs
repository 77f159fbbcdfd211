//! Envelope encryption with KMS: every sealed value gets its own data key from
//! `GenerateDataKey`, bound by an encryption context naming purpose, bot and record; the value
//! is sealed with AES-256-GCM under that key, with the same context as associated data. Only
//! the KMS-encrypted data key is kept, beside the ciphertext.
//!
//! Sealed text: `kms1.<base64url key id>.<base64url encrypted data key>.<base64url nonce+ciphertext>`.
//!
//! Plaintext data keys live only in zeroising buffers, and in a bounded cache (at most
//! [`CACHE_ENTRIES`] keys, each for at most [`CACHE_TTL`]) so that reading a token again
//! needs no KMS call.

use crate::crypto::{self, DataKey, Envelope, Sealed};
use crate::ports::{PreparedSeal, SealContext, SealError, Sealer};
use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use aws_sdk_kms::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

pub const CACHE_TTL: Duration = Duration::from_secs(5 * 60);
pub const CACHE_ENTRIES: usize = 1024;
const SCHEME: &str = "kms1";

pub struct KmsSealer {
    client: Client,
    key_id: String,
    cache: Mutex<HashMap<[u8; 32], (DataKey, Instant)>>,
}

fn context_map(ctx: SealContext<'_>) -> HashMap<String, String> {
    HashMap::from([
        ("purpose".to_owned(), ctx.purpose.as_str().to_owned()),
        ("bot".to_owned(), ctx.bot.to_owned()),
        ("record".to_owned(), ctx.record.to_owned()),
    ])
}

fn aad(ctx: SealContext<'_>) -> Vec<u8> {
    format!(
        "bot-integrations/kms1\n{}\n{}\n{}",
        ctx.purpose.as_str(),
        ctx.bot,
        ctx.record
    )
    .into_bytes()
}

fn cache_key(encrypted_key: &[u8], aad: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((encrypted_key.len() as u64).to_be_bytes());
    h.update(encrypted_key);
    h.update(aad);
    h.finalize().into()
}

fn to_data_key(plain: Option<Blob>) -> Result<DataKey, SealError> {
    let bytes = Zeroizing::new(plain.ok_or(SealError::Malformed)?.into_inner());
    Ok(crypto::data_key_from(&bytes)?)
}

fn kms_error<E>(e: aws_sdk_kms::error::SdkError<E>) -> SealError
where
    E: aws_sdk_kms::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e
        .as_service_error()
        .and_then(|se| se.code())
        .unwrap_or_default()
        .to_owned();
    // A refused decryption (wrong context, wrong key) is a blob that does not open here.
    if code == "InvalidCiphertextException" || code == "IncorrectKeyException" {
        SealError::Open
    } else {
        SealError::Unavailable(Box::new(e))
    }
}

impl KmsSealer {
    pub fn new(client: Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, k: &[u8; 32]) -> Option<DataKey> {
        let cache = self.cache.lock().ok()?;
        let (key, at) = cache.get(k)?;
        (at.elapsed() < CACHE_TTL).then(|| key.clone())
    }

    fn remember(&self, k: [u8; 32], key: DataKey) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_ENTRIES {
                cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_ENTRIES {
                    let oldest = cache.iter().min_by_key(|(_, (_, at))| *at).map(|(k, _)| *k);
                    if let Some(o) = oldest {
                        cache.remove(&o);
                    }
                }
            }
            cache.insert(k, (key, Instant::now()));
        }
    }

    /// Number of data keys held in memory now.
    pub fn cached_keys(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or(0)
    }
}

#[async_trait]
impl Sealer for KmsSealer {
    async fn prepare(&self, ctx: SealContext<'_>) -> Result<PreparedSeal, SealError> {
        let out = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(context_map(ctx)))
            .send()
            .await
            .map_err(kms_error)?;
        let key_id = out.key_id.clone().unwrap_or_else(|| self.key_id.clone());
        let encrypted_key = out
            .ciphertext_blob
            .clone()
            .ok_or(SealError::Malformed)?
            .into_inner();
        let data_key = to_data_key(out.plaintext)?;
        let aad = aad(ctx);
        self.remember(cache_key(&encrypted_key, &aad), data_key.clone());
        // Key ids are ARNs: base64url keeps the text's '.'-separated layout intact.
        Ok(PreparedSeal {
            scheme: SCHEME,
            key_id: URL_SAFE_NO_PAD.encode(key_id),
            wrapped_key: encrypted_key,
            data_key,
            aad,
        })
    }

    async fn open(
        &self,
        sealed: &Sealed,
        ctx: SealContext<'_>,
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        let envelope = Envelope::parse(sealed, SCHEME)?;
        let key_id = URL_SAFE_NO_PAD
            .decode(&envelope.key_id)
            .ok()
            .and_then(|k| String::from_utf8(k).ok())
            .ok_or(SealError::Malformed)?;
        let aad = aad(ctx);
        let ck = cache_key(&envelope.wrapped_key, &aad);
        let data_key = match self.cached(&ck) {
            Some(k) => k,
            None => {
                let out = self
                    .client
                    .decrypt()
                    .key_id(key_id)
                    .ciphertext_blob(Blob::new(envelope.wrapped_key))
                    .set_encryption_context(Some(context_map(ctx)))
                    .send()
                    .await
                    .map_err(kms_error)?;
                let k = to_data_key(out.plaintext)?;
                self.remember(ck, k.clone());
                k
            }
        };
        Ok(crypto::open(&data_key, &envelope.ciphertext, &aad)?)
    }
}
