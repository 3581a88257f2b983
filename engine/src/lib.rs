//! The Klamm workspace engine: handlers, retries, dead-letter queue and per-workspace state.
//!
//! This crate is being built up; see the workspace README for its status.
