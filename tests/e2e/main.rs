//! End-to-end tests: the built local server and a real OAuth server, each a process.

mod bad_input;
mod browser;
mod concurrency;
mod flow;
mod lifecycle;
mod refresh;
