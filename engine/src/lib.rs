//! The Klamm workspace engine: consume topics into per-workspace state, with handlers,
//! retries, a dead-letter queue, and offsets that resume where each workspace stopped.
//!
//! A service gives the engine a [`Handler`] (or a [`Router`] of handlers by topic, wrapped
//! in [`Layer`]s), and the engine runs the consume-handle-commit loop:
//!
//! - each assigned partition is handled by a task of its own, one message at a time, so
//!   order within a partition is kept while partitions run concurrently;
//! - a [`HandlerError`] is [`ErrorClass::Transient`] (retried with doubling backoff and jitter
//!   up to `max_retries`, then dead-lettered), [`ErrorClass::Permanent`] (dead-lettered at
//!   once; a panic counts as one) or [`ErrorClass::Business`] (logged and skipped);
//! - the dead-letter record keeps the key, value and headers and adds `original-topic`,
//!   `original-partition`, `original-offset`, `error`, `error-class`, `retry-count` and
//!   `timestamp`; nothing past a message is committed until it was handled or its
//!   dead-letter write was acknowledged;
//! - messages are keyed by workspace id; a [`Workspace`] lives on the partition its id hashes
//!   to ([`partition_of`]), is loaded when that partition is assigned, records the next
//!   offset it has to apply from each partition it has events on, and is saved
//!   ([`WorkspaceStorage`], [`FileStorage`] by default) before any commit covers it. An event
//!   below the workspace's stored offset for its partition is never applied again, so a
//!   replay after a crash applies nothing twice; a workspace that cannot be loaded stops its
//!   partition rather than start empty over what is stored;
//! - a shutdown or a revocation takes at most `shutdown_timeout`, whatever the handlers do;
//! - with [`EngineConfig::http_addr`] (`KAFKA_ENGINE_HTTP_ADDR`) set, it serves `/healthz`,
//!   `/readyz` and `/metrics` (Prometheus text) over HTTP while it runs
//!   ([`Engine::http_addr`], [`EngineHealth::prometheus_text`]).
//!
//! ```no_run
//! use klamm_engine::{Engine, EngineConfig, Handler, HandlerContext, HandlerError, Message};
//!
//! struct Count;
//!
//! impl Handler for Count {
//!     async fn handle(&self, _msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
//!         let ws = ctx.workspace().ok_or_else(|| HandlerError::permanent("no workspace id"))?;
//!         let n = ws.data.get("events").and_then(|v| v.as_u64()).unwrap_or(0);
//!         ws.data.insert("events".into(), (n + 1).into());
//!         Ok(())
//!     }
//! }
//!
//! # async fn example() -> Result<(), klamm::Error> {
//! let engine = Engine::builder().config(EngineConfig::from_env()?).handler(Count).build()?;
//! engine.run(async { tokio::signal::ctrl_c().await.ok(); }).await
//! # }
//! ```
#![warn(missing_docs)]

mod changelog;
mod config;
mod dlq;
mod engine;
mod handler;
mod health;
mod http;
mod layer;
mod metrics;
mod publish;
mod units;
mod workspace;

pub use changelog::{changelog_topic, KafkaStorage, RESTORE_TIMEOUT};
pub use config::{
    misspelled_variables, EngineConfig, StateStore, CONSUMER_PREFIX, DEFAULT_RETRY_BACKOFF_MAX,
    MAX_COMMIT_INTERVAL, MAX_SHUTDOWN_TIMEOUT, PRODUCER_PREFIX, SEED_VARIABLES, VARIABLES,
};
pub use dlq::{dead_letter_record, now_rfc3339, retry_backoff, rfc3339_utc};
pub use engine::{Engine, EngineBuilder, EngineMetrics};
pub use handler::{
    BoxHandler, ErrorClass, Handler, HandlerContext, HandlerError, HandlerFuture, Message, Router,
};
pub use health::{EngineHealth, EnginePhase, HealthSnapshot, LastError, STALL_TIMEOUT};
pub use http::METRICS_CONTENT_TYPE;
/// Where a group member stands in the group protocol (part of a [`HealthSnapshot`]).
pub use klamm_group::membership::MemberState;
pub use layer::{
    HandlerExt, HandlerStats, Layer, Logging, LoggingLayer, Metered, MetricsLayer, Tracing, TracingLayer,
};
pub use metrics::{HistogramSnapshot, MetricsSnapshot, HANDLER_SECONDS_BUCKETS, RESTORE_SECONDS_BUCKETS};
pub use publish::{
    new_event_id, EventBuilder, EventPublisher, OutgoingEvent, PublishLayer, PublishLogging, PublishMetrics,
    Published,
};
pub use units::{parse_duration, parse_size, UnitError};
pub use workspace::{
    partition_of, DeadLettering, FileStorage, SavedThrough, StorageError, StorageFuture, StoredOffset,
    Workspace, WorkspaceStorage,
};
