//! Consumer groups for Klamm: membership, assignors and commits.
//!
//! This crate is being built up; see the workspace README for its status.
