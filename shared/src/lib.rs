//! The bot integrations service: integrations files, OAuth flows, sealed tokens and events,
//! behind ports that have embedded (SQLite, key file, events file) and AWS implementations.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod adapters;
#[cfg(feature = "aws")]
pub mod aws;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod domain;
pub mod http;
pub mod oauth;
pub mod ports;
pub mod providers_file;
pub mod service;
