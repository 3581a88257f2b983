//! Consumer groups for Klamm: membership, assignors and commits.
//!
//! - [`GroupConsumer`]: a group member that reads the partitions the group gives it (by
//!   `poll` or as a stream), calls a [`RebalanceListener`] from inside `poll`, commits
//!   ([`NextOffset`]), and reports what keeps it from progress (no broker, a missing topic, a
//!   group that does not become stable) as retriable errors from `poll`;
//! - [`Committer`]: commits for a consumer while its stream (or another task) holds it;
//! - [`assignor`]: the partition assignors a group leader runs, wire-compatible with the Java
//!   client and librdkafka (`cooperative-sticky`, `range`, `roundrobin`);
//! - [`membership`]: the classic group protocol as a state machine with no IO, driven by a
//!   task of each `GroupConsumer`;
//! - [`consumer_membership`]: the KIP-848 `consumer` group protocol (`group.protocol=consumer`)
//!   as a second state machine with the same events, driven the same way.
//!
//! `docs/consumer-groups.md` in the repository is the guide.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod assignor;
mod committer;
mod config;
mod consumer;
mod consumer_driver;
pub mod consumer_membership;
mod coordinator;
mod member;
pub mod membership;
mod offsets;
mod stall;

pub use committer::Committer;
pub use config::{GroupConfig, GroupProtocol};
pub use consumer::{
    CommitFuture, GroupConsumer, NoListener, RebalanceHandle, RebalanceListener, RecordStream,
};
pub use offsets::NextOffset;
