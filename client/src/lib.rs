//! The Klamm Kafka client: connections, metadata, producer, partition consumer and admin.
//!
//! The types that matter most:
//! - [`Producer`]: `send` a [`ProducerRecord`], await its [`DeliveryFuture`] for the partition
//!   and offset. Batching per partition (`batch.size`, `linger.ms`), every compression codec,
//!   bounded buffer memory, idempotence on by default, retries without duplicates or
//!   reordering, the Java client's partitioner ([`partitioner`]). With `transactional.id`,
//!   transactions ([`Producer::init_transactions`], [`Producer::begin_transaction`],
//!   [`Producer::send_offsets_to_transaction`] with a [`ConsumerGroupMetadata`],
//!   [`Producer::commit_transaction`], [`Producer::abort_transaction`]); errors split into
//!   abortable and fatal ([`Error::is_abortable`], [`Error::is_fatal`]).
//! - [`Consumer`]: a partition-level consumer (assign, seek, pause/resume), records as a stream
//!   or from `poll`, with `auto.offset.reset` and `isolation.level`.
//! - [`Admin`]: topics (create, delete, add partitions, describe), the cluster, offsets (list
//!   by earliest, latest or timestamp; delete records), leader elections (preferred, unclean)
//!   and consumer groups (list, describe).
//! - [`Client`]: what they share: the bootstrap list, the metadata cache, and one connection
//!   per broker and traffic kind, reconnecting with backoff. [`ClientConfig`] and the role
//!   configs accept Kafka property names and `KAFKA_BROKERS`.
//! - [`Connection`]: one broker connection with API version negotiation and pipelining.
//! - [`Error`]: with [`Error::kind`], [`Error::is_retriable`] and [`Error::code`]
//!   ([`ErrorCode`]). The consumers return retriable errors as reports of what keeps them from
//!   reading (no broker at an address, a missing topic) while they keep retrying: see
//!   [`Consumer::poll`].
//! - [`Header`], [`TimestampType`], [`Bytes`]: the parts of records, shared by
//!   [`ProducerRecord`] and [`ConsumerRecord`] (`ProducerRecord::from(&consumed)` forwards one).
//! - [`suggest`], [`UnknownProperty`]: a misspelled property fails at once with a "did you
//!   mean" hint.
//! - [`ClientStats`]: counters of connections, produced and fetched records and bytes,
//!   retries and errors ([`Client::stats`], [`Producer::stats`], [`Consumer::stats`]).
//!
//! Logs go through `tracing`: WARN for what keeps the client from progress, DEBUG for the
//! protocol. The repository's README has a "Using Klamm as a library" section with every
//! piece put together (Cargo lines, producer, consumers, groups, logs).
//!
//! What this crate is not: consumer groups live in `klamm-group`, on top of it. How
//! connections are secured is chosen by `security.protocol` ([`SecurityProtocol`]): TLS
//! ([`TlsConfig`]) and SASL ([`SaslConfig`]); see `docs/security.md`.
//!
//! Cargo features: `zstd` (default) compresses with the C libzstd; `ring` (default) gives TLS
//! its cryptography from `ring`; build with `default-features = false, features = ["pure-rust"]`
//! for a client with no C code at all (zstd through `ruzstd`, TLS cryptography from
//! `rustls-graviola`). Every other codec is pure Rust either way.
//!
//! ```no_run
//! use klamm::{Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn example() -> Result<(), klamm::Error> {
//! let producer = Producer::new(ProducerConfig::new("127.0.0.1:9092"))?;
//! let written = producer.send(ProducerRecord::new("orders", "hello").key("k1")).await?.await?;
//! println!("partition {} offset {}", written.partition, written.offset);
//! producer.close(std::time::Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod admin;
mod admin_elect;
mod admin_groups;
mod admin_offsets;
mod admin_scram;
mod admin_transactions;
mod client;
mod config;
mod connection;
mod consumer;
mod error;
mod metadata;
pub mod partitioner;
mod producer;
mod random;
mod sasl;
mod security;
mod stats;
mod suggest;
mod tls;

pub use admin::{
    Admin, ClusterDescription, CreateTopicsOptions, CreatedTopic, NewTopic, TopicResults,
    DEFAULT_ADMIN_TIMEOUT,
};
pub use admin_elect::ElectionType;
pub use admin_groups::{GroupDescription, GroupListing, MemberDescription, COORDINATOR_ATTEMPTS};
pub use admin_offsets::{ListedOffset, OffsetSpec, PartitionResults, LEADER_ATTEMPTS};
pub use admin_scram::{ScramCredentialChange, ScramCredentialInfo, DEFAULT_SCRAM_ITERATIONS};
pub use admin_transactions::{
    ActiveProducer, ListTransactionsOptions, TransactionDescription, TransactionListing, TransactionState,
};
/// The byte buffer keys, values and headers are held in (from the `bytes` crate).
pub use bytes::Bytes;
pub use client::{Client, ConnectionKind};
pub use config::{ClientConfig, BROKERS_ENV};
pub use connection::{Connection, ConnectionConfig, PendingResponse};
pub use consumer::{
    Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, Offset, OffsetReset, TopicPartition,
};
pub use error::{Error, ErrorKind, TransactionFailure};
/// The wire protocol the client speaks: request and response types, error codes.
pub use klamm_protocol as protocol;
pub use klamm_protocol::records::{Header, TimestampType};
pub use klamm_protocol::ErrorCode;
pub use metadata::{BrokerMetadata, ClusterMetadata, PartitionMetadata, TopicMetadata};
pub use producer::{
    Acks, ConsumerGroupMetadata, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
    TopicName, TransactionOffset,
};
pub use sasl::{
    OAuthBearerToken, SaslConfig, SaslMechanism, Secret, TokenFuture, TokenProvider, UnsecuredJwt,
};
pub use security::SecurityProtocol;
pub use stats::ClientStats;
pub use suggest::{suggest, unknown_property, UnknownProperty};
pub use tls::{Pem, TlsConfig, TlsFailure};
