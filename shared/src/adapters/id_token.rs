//! OpenID Connect ID tokens, validated with the `openidconnect` crate: the signature against
//! the provider's JWKS (fetched through the provider client, so the outbound policy and the
//! body limit hold), then `iss`, `aud`/`azp`, `exp`, `iat` and the nonce.
//!
//! A provider that publishes no JWKS gets the claim checks without the signature check:
//! the token came straight from its token endpoint over TLS (OpenID Connect Core 3.1.3.7).

use super::oauth::ProviderHttp;
use crate::domain::ids::sha256_hex;
use crate::ports::{ProviderError, RegisteredApp};
use openidconnect::core::{
    CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm,
};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, JsonWebKeySetUrl, Nonce};
use secrecy::ExposeSecret;
use serde_json::Value;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// How far in the future an `iat` may be, in seconds, for clocks that disagree a little.
const CLOCK_SKEW_SECS: i64 = 300;

/// The signing algorithms accepted: the asymmetric ones and HMAC with the client secret.
/// `none` is never accepted.
const ALGORITHMS: [CoreJwsSigningAlgorithm; 10] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
    CoreJwsSigningAlgorithm::HmacSha256,
];

fn invalid(reason: impl std::fmt::Display) -> ProviderError {
    ProviderError::IdToken(reason.to_string())
}

pub(super) async fn verify(
    http: &ProviderHttp,
    client: &RegisteredApp,
    id_token: &str,
    nonce_hash: Option<&str>,
) -> Result<Value, ProviderError> {
    let app = &client.app;
    let issuer = app
        .issuer
        .as_deref()
        .ok_or_else(|| invalid("the provider has no issuer to check the token against"))?;
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(invalid)?;
    let keys = match &app.jwks_url {
        Some(url) => {
            let url = JsonWebKeySetUrl::new(url.clone()).map_err(invalid)?;
            CoreJsonWebKeySet::fetch_async(&url, http)
                .await
                .map_err(|_| ProviderError::Transient { retry_after: None })?
        }
        None => CoreJsonWebKeySet::new(Vec::new()),
    };
    let client_id = ClientId::new(app.client_id.clone());
    let mut verifier = match &client.secret {
        Some(s) => CoreIdTokenVerifier::new_confidential_client(
            client_id,
            ClientSecret::new(s.expose_secret().to_owned()),
            issuer,
            keys,
        ),
        None => CoreIdTokenVerifier::new_public_client(client_id, issuer, keys),
    }
    .set_allowed_algs(ALGORITHMS)
    .set_issue_time_verifier_fn(|iat| {
        if iat.timestamp() > time::OffsetDateTime::now_utc().unix_timestamp() + CLOCK_SKEW_SECS {
            Err("issued in the future".to_owned())
        } else {
            Ok(())
        }
    });
    if app.jwks_url.is_none() {
        verifier = verifier.insecure_disable_signature_check();
    }
    let token = CoreIdToken::from_str(id_token).map_err(|_| invalid("not a JWT"))?;
    let check_nonce = |claimed: Option<&Nonce>| -> Result<(), String> {
        match (nonce_hash, claimed) {
            (None, _) => Ok(()),
            (Some(expected), Some(n)) => {
                let got = sha256_hex(n.secret());
                if bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
                    Ok(())
                } else {
                    Err("the nonce is not this sign-in's".to_owned())
                }
            }
            (Some(_), None) => Err("the nonce is missing".to_owned()),
        }
    };
    let claims = token.claims(&verifier, check_nonce).map_err(invalid)?;
    serde_json::to_value(claims).map_err(|_| invalid("the claims could not be read"))
}
