//! The runtime: [`Engine`] and its [`EngineBuilder`]. It joins the group, hands each assigned
//! partition's records to a task of its own (one message at a time per partition, partitions
//! concurrently), retries and dead-letters failures, keeps the workspaces of its partitions,
//! and commits an offset only once everything before it was handled or dead-lettered and the
//! workspaces it changed were saved.
//!
//! Where each part lives:
//! - `builder`: [`EngineBuilder`], which checks the settings and picks the workspace store;
//! - `runtime`: [`Engine::run`], the poll loop, flow control, commits and the shutdown order;
//! - `worker`: the partition tasks, which handle records one at a time, retry, and save the
//!   workspaces a batch changed;
//! - `rebalance`: what happens on assignment (load workspaces, seek) and revocation (drain,
//!   commit);
//! - `shared`: the state the tasks and the rebalance listener share (loaded workspaces,
//!   topic metadata, stopped partitions);
//! - `dead_letter`: writes to the dead-letter topic;
//! - `eos`: exactly-once mode: the transaction per commit interval, its abort and the rewind
//!   that follows;
//! - `topics`: topic metadata and the dead-letter topic made at startup.

mod builder;
mod dead_letter;
mod eos;
mod rebalance;
mod runtime;
mod shared;
mod topics;
mod worker;

use std::sync::Arc;

use crate::config::EngineConfig;
use crate::handler::BoxHandler;
use crate::health::{EngineHealth, Health};
use crate::http::Endpoint;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::workspace::WorkspaceStorage;

pub use builder::EngineBuilder;

/// A read handle on an engine's metrics, usable while it runs.
#[derive(Debug, Clone)]
pub struct EngineMetrics(Arc<Metrics>);

impl EngineMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> MetricsSnapshot {
        self.0.snapshot()
    }
}

/// The workspace engine. See the crate docs.
pub struct Engine {
    config: EngineConfig,
    handler: BoxHandler,
    /// `None`: the Kafka store, opened when the engine runs.
    storage: Option<Arc<dyn WorkspaceStorage>>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    /// The HTTP endpoint's listener, bound by the builder, served by `run`.
    http: Option<Endpoint>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder.
    pub fn builder() -> EngineBuilder {
        EngineBuilder::default()
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The address the HTTP endpoint (`/healthz`, `/readyz`, `/metrics`) listens on, with the
    /// port the system chose when [`EngineConfig::http_addr`](crate::EngineConfig::http_addr)
    /// has port 0; `None` when the endpoint is off. Bound by [`EngineBuilder::build`], served
    /// from the start of [`Engine::run`] until it returns.
    ///
    /// ```no_run
    /// # use klamm_engine::{Engine, EngineConfig};
    /// # fn example(handler: impl klamm_engine::Handler) -> Result<(), klamm::Error> {
    /// let config = EngineConfig { http_addr: Some("127.0.0.1:0".parse().unwrap()), ..EngineConfig::default() };
    /// let engine = Engine::builder().config(config).handler(handler).build()?;
    /// println!("metrics at http://{}/metrics", engine.http_addr().unwrap());
    /// # Ok(())
    /// # }
    /// ```
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().map(Endpoint::addr)
    }

    /// A handle on the metrics, to read them while [`Engine::run`] runs.
    pub fn metrics(&self) -> EngineMetrics {
        EngineMetrics(Arc::clone(&self.metrics))
    }

    /// A handle on the engine's health (connected brokers, group state, assigned partitions,
    /// lag, last error), to serve from liveness and readiness probes while [`Engine::run`]
    /// runs.
    pub fn health(&self) -> EngineHealth {
        EngineHealth { health: Arc::clone(&self.health), metrics: Arc::clone(&self.metrics) }
    }
}
