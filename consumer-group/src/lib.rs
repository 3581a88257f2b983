//! Consumer groups for Klamm: membership, assignors and commits.
//!
//! Built so far: the partition [`assignor`]s a group leader runs, wire-compatible with the
//! Java client and librdkafka (`cooperative-sticky`, `range`, `roundrobin`). Membership and
//! the `GroupConsumer` come next; see the workspace README for the status.
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

pub mod assignor;
