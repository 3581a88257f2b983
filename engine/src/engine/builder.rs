//! [`EngineBuilder`]: the settings, handler and workspace store an [`Engine`] is made of.

use std::sync::Arc;

use klamm::{Error, ErrorKind};

use super::Engine;
use crate::config::{EngineConfig, StateStore};
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
    state_store: Option<StateStore>,
    exactly_once: Option<bool>,
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

    /// Where workspaces are kept: a store of the application's, which wins over
    /// [`EngineBuilder::state_store`] (default: the config's `state_store`).
    pub fn storage(mut self, storage: impl WorkspaceStorage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// Which of the engine's stores keeps workspaces, over the config's `state_store`
    /// (`KAFKA_STATE_STORE`): [`StateStore::File`] ([`FileStorage`] in `state_dir`) or
    /// [`StateStore::Kafka`] (the changelog topic, made and restored by the engine as it runs).
    ///
    /// ```
    /// use klamm_engine::{Engine, Handler, HandlerContext, HandlerError, Message, StateStore};
    ///
    /// struct Ignore;
    ///
    /// impl Handler for Ignore {
    ///     async fn handle(&self, _msg: &Message, _ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let engine = Engine::builder()
    ///     .handler(Ignore)
    ///     .state_store(StateStore::Kafka)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(engine.config().state_store, StateStore::Kafka);
    /// ```
    pub fn state_store(mut self, store: StateStore) -> Self {
        self.state_store = Some(store);
        self
    }

    /// Exactly-once mode, over the config's `exactly_once` (`KAFKA_ENGINE_EXACTLY_ONCE`): the
    /// events handlers publish, the workspace changelog writes and the input offsets go into
    /// one transaction per commit interval. It needs the Kafka store ([`StateStore::Kafka`]);
    /// [`EngineBuilder::build`] refuses it with any other store.
    ///
    /// ```
    /// use klamm_engine::{Engine, Handler, HandlerContext, HandlerError, Message, StateStore};
    ///
    /// struct Ignore;
    ///
    /// impl Handler for Ignore {
    ///     async fn handle(&self, _msg: &Message, _ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let refused = Engine::builder().handler(Ignore).exactly_once(true).build();
    /// assert!(refused.unwrap_err().to_string().contains("KAFKA_STATE_STORE"));
    /// let engine =
    ///     Engine::builder().handler(Ignore).state_store(StateStore::Kafka).exactly_once(true).build().unwrap();
    /// assert!(engine.config().exactly_once);
    /// ```
    pub fn exactly_once(mut self, on: bool) -> Self {
        self.exactly_once = Some(on);
        self
    }

    /// Checks the settings and makes the engine (no connection yet). With
    /// [`EngineConfig::http_addr`] set it binds the HTTP endpoint's address now (see
    /// [`Engine::http_addr`]), and fails with a [`ErrorKind::Config`] error when it cannot.
    pub fn build(self) -> Result<Engine, Error> {
        let mut config = self.config.unwrap_or_default();
        if let Some(store) = self.state_store {
            config.state_store = store;
        }
        if let Some(on) = self.exactly_once {
            config.exactly_once = on;
        }
        config.validate()?;
        if config.exactly_once && self.storage.is_some() {
            return Err(Error::with_message(
                ErrorKind::Config,
                "KAFKA_ENGINE_EXACTLY_ONCE: exactly-once needs the engine's Kafka store \
                 (KAFKA_STATE_STORE=kafka), not a store of the application's, which cannot take a \
                 write back when a transaction aborts",
            ));
        }
        let handler = self
            .handler
            .ok_or_else(|| Error::with_message(ErrorKind::Config, "engine: no handler was given"))?;
        // The Kafka store needs the cluster: the engine opens it when it runs.
        let storage: Option<Arc<dyn WorkspaceStorage>> = match (self.storage, config.state_store) {
            (Some(s), _) => Some(s),
            (None, StateStore::File) => Some(Arc::new(
                FileStorage::new(&config.state_dir)
                    .map_err(|e| Error::with_message(ErrorKind::Config, format!("KAFKA_STATE_DIR: {e}")))?,
            )),
            (None, StateStore::Kafka) => None,
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
