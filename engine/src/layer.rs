//! Middleware: a [`Layer`] wraps a [`Handler`] in another. Provided: [`LoggingLayer`] (one
//! log line per outcome), [`TracingLayer`] (a span per message) and [`MetricsLayer`] (call
//! counts and time spent, read through [`HandlerStats`]).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::handler::{ErrorClass, Handler, HandlerContext, HandlerError, Message};

/// Wraps a handler in another.
pub trait Layer<H: Handler> {
    /// The wrapped handler.
    type Handler: Handler;

    /// Wraps `inner`.
    fn layer(&self, inner: H) -> Self::Handler;
}

/// `handler.with(layer)`: layering as a method, so stacks read outside-in.
pub trait HandlerExt: Handler + Sized {
    /// Wraps `self` in `layer`.
    fn with<L: Layer<Self>>(self, layer: L) -> L::Handler {
        layer.layer(self)
    }
}

impl<H: Handler> HandlerExt for H {}

/// Logs each message's outcome: debug for success, info for business refusals, warn for
/// failures.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoggingLayer;

/// The handler made by [`LoggingLayer`].
#[derive(Debug, Clone)]
pub struct Logging<H>(H);

impl<H: Handler> Layer<H> for LoggingLayer {
    type Handler = Logging<H>;

    fn layer(&self, inner: H) -> Logging<H> {
        Logging(inner)
    }
}

impl<H: Handler> Handler for Logging<H> {
    async fn handle(&self, msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
        let start = Instant::now();
        let attempt = ctx.attempt();
        let result = self.0.handle(msg, ctx).await;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let (topic, partition, offset) = (&*msg.topic, msg.partition, msg.offset);
        match &result {
            Ok(()) => tracing::debug!(topic, partition, offset, attempt, ms, "handled"),
            Err(e) if e.class() == ErrorClass::Business => {
                tracing::info!(topic, partition, offset, attempt, ms, error = %e, "refused")
            }
            Err(e) => tracing::warn!(topic, partition, offset, attempt, ms, error = %e, "handler failed"),
        }
        result
    }
}

/// Runs each message's handling in a `klamm.engine.handle` span with its topic, partition,
/// offset, workspace and attempt.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingLayer;

/// The handler made by [`TracingLayer`].
#[derive(Debug, Clone)]
pub struct Tracing<H>(H);

impl<H: Handler> Layer<H> for TracingLayer {
    type Handler = Tracing<H>;

    fn layer(&self, inner: H) -> Tracing<H> {
        Tracing(inner)
    }
}

impl<H: Handler> Handler for Tracing<H> {
    fn handle(
        &self,
        msg: &Message,
        ctx: &mut HandlerContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let span = tracing::info_span!(
            "klamm.engine.handle",
            topic = &*msg.topic,
            partition = msg.partition,
            offset = msg.offset,
            workspace = msg.workspace_id().unwrap_or(""),
            attempt = ctx.attempt(),
        );
        self.0.handle(msg, ctx).instrument(span)
    }
}

/// Counts handler calls by outcome and the time spent in them.
#[derive(Debug, Clone, Default)]
pub struct MetricsLayer {
    stats: Arc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    calls: AtomicU64,
    ok: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
    business: AtomicU64,
    micros: AtomicU64,
}

/// What a [`MetricsLayer`] counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandlerStats {
    /// Calls (every attempt counts).
    pub calls: u64,
    /// Calls that returned `Ok`.
    pub ok: u64,
    /// Calls that failed transiently.
    pub transient: u64,
    /// Calls that failed permanently (panics included once the engine has caught them
    /// outside this layer: they are not counted here).
    pub permanent: u64,
    /// Business refusals.
    pub business: u64,
    /// Total time in the handler, in microseconds.
    pub total_micros: u64,
}

impl MetricsLayer {
    /// A layer with its own counters (clones share them).
    pub fn new() -> Self {
        Self::default()
    }

    /// The counts so far.
    pub fn stats(&self) -> HandlerStats {
        let c = &self.stats;
        HandlerStats {
            calls: c.calls.load(Ordering::Relaxed),
            ok: c.ok.load(Ordering::Relaxed),
            transient: c.transient.load(Ordering::Relaxed),
            permanent: c.permanent.load(Ordering::Relaxed),
            business: c.business.load(Ordering::Relaxed),
            total_micros: c.micros.load(Ordering::Relaxed),
        }
    }
}

/// The handler made by [`MetricsLayer`].
#[derive(Debug, Clone)]
pub struct Metered<H> {
    inner: H,
    stats: Arc<Counters>,
}

impl<H: Handler> Layer<H> for MetricsLayer {
    type Handler = Metered<H>;

    fn layer(&self, inner: H) -> Metered<H> {
        Metered { inner, stats: Arc::clone(&self.stats) }
    }
}

impl<H: Handler> Handler for Metered<H> {
    async fn handle(&self, msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
        let start = Instant::now();
        let result = self.inner.handle(msg, ctx).await;
        let c = &self.stats;
        c.calls.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
        c.micros.fetch_add(micros, Ordering::Relaxed);
        let counter = match &result {
            Ok(()) => &c.ok,
            Err(e) => match e.class() {
                ErrorClass::Transient => &c.transient,
                ErrorClass::Permanent => &c.permanent,
                ErrorClass::Business => &c.business,
            },
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FailsFirst;
    impl Handler for FailsFirst {
        async fn handle(&self, _msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
            match ctx.attempt() {
                0 => Err(HandlerError::transient("not yet")),
                1 => Err(HandlerError::business("refused")),
                _ => Ok(()),
            }
        }
    }

    #[test]
    fn layers_compose_and_count() {
        let metrics = MetricsLayer::new();
        let h = FailsFirst.with(metrics.clone()).with(TracingLayer).with(LoggingLayer);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let msg = crate::handler::tests::message("t", Some("w"), "{}");
        for attempt in 0..3 {
            let _ = rt.block_on(h.handle(&msg, &mut HandlerContext::new(attempt, None)));
        }
        let s = metrics.stats();
        assert_eq!((s.calls, s.ok, s.transient, s.business, s.permanent), (3, 1, 1, 1, 0));
    }
}
