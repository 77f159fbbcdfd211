//! Implementations of the ports.

pub mod jsonl_events;
pub mod local_key;
pub mod sqlite;
