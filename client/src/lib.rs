//! The Klamm Kafka client: connections, metadata, producer, partition consumer and admin.
//!
//! This crate is being built up; see the workspace README for its status.
