//! The Klamm Kafka client: connections, metadata, producer, partition consumer and admin.
//!
//! What exists today:
//! - [`Connection`]: one connection to one broker. It opens the TCP socket (with the socket
//!   options of [`ConnectionConfig`]), negotiates API versions with ApiVersions, and pipelines
//!   typed `klamm-protocol` requests over one socket, matching responses by correlation id.
//! - [`Error`]: the client's error, with [`Error::kind`] and [`Error::is_retriable`].
//! - [`partitioner`]: the key-to-partition hash shared with the Java client and librdkafka.
//! - [`Consumer`]: the partition consumer. Assigned partitions, seek (offset, beginning, end,
//!   timestamp), pause/resume, `auto.offset.reset`, read_committed; records as `poll` batches
//!   or a `Stream`, with bounded prefetch ([`ConsumerConfig`]).
//!
//! What comes next: a `Client` over a bootstrap list with a metadata cache and reconnects, the
//! producer, the partition consumer and admin operations (see the workspace's design notes).
//! Requests without a response (Produce with acks=0) are not supported yet.
//!
//! ```no_run
//! use klamm::{Connection, ConnectionConfig};
//! use klamm_protocol::api::metadata::MetadataRequest;
//!
//! # async fn example() -> Result<(), klamm::Error> {
//! let conn = Connection::connect("127.0.0.1:9092", ConnectionConfig::default()).await?;
//! let metadata = conn.send(&MetadataRequest::default()).await?;
//! for broker in &metadata.brokers {
//!     println!("{} at {}:{}", broker.node_id, broker.host, broker.port);
//! }
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod client;
mod config;
mod connection;
mod consumer;
mod error;
mod metadata;
pub mod partitioner;
mod producer;
mod random;

pub use client::{Client, ConnectionKind};
pub use config::{ClientConfig, BROKERS_ENV};
pub use connection::{Connection, ConnectionConfig};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetReset, TopicPartition,
};
pub use error::{Error, ErrorKind};
/// The wire protocol the client speaks: request and response types, error codes.
pub use klamm_protocol as protocol;
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use producer::{Acks, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata};
