//! Pure types and rules: no storage, no HTTP framework, no cloud SDK.

pub mod catalog;
pub mod events;
pub mod flow_secret;
pub mod ids;
pub mod integrations;
pub mod network;
pub mod providers;
pub mod proxy;
pub mod token;
pub mod upkeep;
pub mod user_info;
