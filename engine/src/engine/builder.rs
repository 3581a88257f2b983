//! [`EngineBuilder`]: the settings, handler and workspace store an [`Engine`] is made of.

use std::sync::Arc;

use klamm::{Error, ErrorKind};

use super::Engine;
use crate::config::EngineConfig;
use crate::handler::{BoxHandler, Handler};
use crate::health::Health;
use crate::http::Endpoint;
use crate::metrics::Metrics;
use crate::workspace::{FileStorage, WorkspaceStorage};

/// Builds an [`Engine`].
#[derive(Default)]
pub struct EngineBuilder {
    config: Option<EngineConfig>,
    handler: Option<BoxHandler>,
    storage: Option<Arc<dyn WorkspaceStorage>>,
}

impl EngineBuilder {
    /// The settings (default: [`EngineConfig::default`]).
    pub fn config(mut self, config: EngineConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// The handler of every message (a [`Router`](crate::Router) to route by topic). Required.
    pub fn handler(mut self, handler: impl Handler) -> Self {
        self.handler = Some(BoxHandler::new(handler));
        self
    }

    /// Where workspaces are kept (default: [`FileStorage`] in the config's `state_dir`).
    pub fn storage(mut self, storage: impl WorkspaceStorage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Checks the settings and makes the engine (no connection yet). With
    /// [`EngineConfig::http_addr`] set it binds the HTTP endpoint's address now (see
    /// [`Engine::http_addr`]), and fails with a [`ErrorKind::Config`] error when it cannot.
    pub fn build(self) -> Result<Engine, Error> {
        let config = self.config.unwrap_or_default();
        config.validate()?;
        let handler = self
            .handler
            .ok_or_else(|| Error::with_message(ErrorKind::Config, "engine: no handler was given"))?;
        let storage = match self.storage {
            Some(s) => s,
            None => Arc::new(
                FileStorage::new(&config.state_dir)
                    .map_err(|e| Error::with_message(ErrorKind::Config, format!("KAFKA_STATE_DIR: {e}")))?,
            ),
        };
        let http = config.http_addr.map(Endpoint::bind).transpose()?;
        Ok(Engine {
            config,
            handler,
            storage,
            http,
            metrics: Arc::new(Metrics::default()),
            health: Arc::new(Health::default()),
        })
    }
}
