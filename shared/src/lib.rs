//! The bot integrations service: integrations files, OAuth flows, sealed tokens and events,
//! behind ports that have embedded (SQLite, key file, events file) and AWS implementations.
//!
//! Read in this order: `domain` (the types and rules), `ports` (what the service needs),
//! `service` (the use cases), `http` (routes and the error table), `adapters` and `wiring`.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod adapters;
pub mod config;
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;
pub mod crypto;
pub mod domain;
pub mod http;
pub mod logging;
pub mod ports;
pub mod providers_file;
pub mod relay;
pub mod service;
pub mod wiring;

pub use config::{AdminKeyHash, Backend, Config};
pub use service::Service;
