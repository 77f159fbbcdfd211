//! Implementations of the ports.

pub mod dispatch;
#[cfg(feature = "aws")]
pub mod dynamodb;
#[cfg(feature = "aws")]
pub mod eventbridge;
pub mod id_token;
pub mod jsonl_events;
#[cfg(feature = "aws")]
pub mod kms;
pub mod local_key;
pub mod oauth;
pub mod sqlite;
