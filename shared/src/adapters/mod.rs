//! Implementations of the ports.

#[cfg(feature = "aws")]
pub mod aws_http;
#[cfg(feature = "embedded")]
pub mod dispatch;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod id_token;
#[cfg(feature = "embedded")]
pub mod jsonl_events;
#[cfg(feature = "aws")]
pub mod kms;
#[cfg(feature = "embedded")]
pub mod local_key;
pub mod oauth;
pub mod provider_calls;
#[cfg(feature = "embedded")]
pub mod sqlite;
