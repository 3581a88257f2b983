//! Consumer groups for Klamm: membership, assignors and commits.
//!
//! Built so far:
//! - [`assignor`]: the partition assignors a group leader runs, wire-compatible with the Java
//!   client and librdkafka (`cooperative-sticky`, `range`, `roundrobin`);
//! - [`membership`]: the classic group protocol as a state machine with no IO.
//!
//! The task that drives the membership and the `GroupConsumer` come next; see the workspace
//! README for the status.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod assignor;
mod config;
mod consumer;
mod coordinator;
pub mod membership;
mod offsets;

pub use config::GroupConfig;
pub use consumer::{
    CommitFuture, GroupConsumer, NoListener, RebalanceHandle, RebalanceListener, RecordStream,
};
pub use offsets::NextOffset;
