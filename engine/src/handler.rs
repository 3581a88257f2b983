//! What the application plugs in: the [`Handler`] trait, the [`Message`] it gets, the
//! [`HandlerContext`] that carries the message's workspace, [`HandlerError`] and its classes,
//! and the topic [`Router`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use klamm::ConsumerRecord;
use serde::de::DeserializeOwned;

use crate::publish::{EventBuilder, OutgoingEvent};
use crate::workspace::Workspace;

/// A record handed to a [`Handler`]; derefs to the [`ConsumerRecord`].
#[derive(Debug, Clone)]
pub struct Message {
    record: ConsumerRecord,
}

impl Message {
    /// Wraps a consumed record.
    pub fn new(record: ConsumerRecord) -> Self {
        Self { record }
    }

    /// The record.
    pub fn record(&self) -> &ConsumerRecord {
        &self.record
    }

    /// The workspace the message belongs to: its key, when it is non-empty UTF-8.
    pub fn workspace_id(&self) -> Option<&str> {
        let key = self.record.key.as_deref()?;
        std::str::from_utf8(key).ok().filter(|k| !k.is_empty())
    }

    /// The value decoded from JSON. A missing or malformed value is a permanent error (the
    /// message will not decode on a retry either).
    pub fn decode_value<T: DeserializeOwned>(&self) -> Result<T, HandlerError> {
        let value = self.record.value.as_deref().ok_or_else(|| HandlerError::permanent("no value"))?;
        serde_json::from_slice(value)
            .map_err(|e| HandlerError::permanent("value is not the expected JSON").with_source(e))
    }

    /// The value of the last header named `name`, if any.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.record.headers.iter().rev().find(|h| h.key.as_ref() == name.as_bytes())?.value.as_deref()
    }
}

impl Deref for Message {
    type Target = ConsumerRecord;

    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}

/// How a failure is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// Might succeed later: retried with backoff up to the limit, then dead-lettered.
    Transient,
    /// Will never succeed: dead-lettered at once.
    Permanent,
    /// An expected refusal by the application's rules: logged and skipped.
    Business,
}

impl ErrorClass {
    /// `transient`, `permanent` or `business` (the `error-class` header's value).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Transient => "transient",
            ErrorClass::Permanent => "permanent",
            ErrorClass::Business => "business",
        }
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a handler did not handle a message.
#[derive(Debug)]
pub struct HandlerError {
    class: ErrorClass,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl HandlerError {
    /// An error of `class`.
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self { class, message: message.into(), source: None }
    }

    /// A [`ErrorClass::Transient`] error.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Transient, message)
    }

    /// A [`ErrorClass::Permanent`] error.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// A [`ErrorClass::Business`] error.
    pub fn business(message: impl Into<String>) -> Self {
        Self::new(ErrorClass::Business, message)
    }

    /// Adds the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The class.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} error: {}", self.class, self.message)?;
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// What a handler gets besides the message: the attempt number, the message's workspace, and
/// the events it publishes.
///
/// The workspace is a copy: changes are kept only when the handler returns `Ok`, so a failed
/// attempt leaves no trace. Events given to [`HandlerContext::publish`] are held the same way:
/// the engine sends them once the handler returned `Ok`, before the message counts as handled.
#[derive(Debug)]
pub struct HandlerContext {
    pub(crate) attempt: u32,
    pub(crate) workspace: Option<Workspace>,
    pub(crate) source: String,
    pub(crate) events: Vec<OutgoingEvent>,
}

impl HandlerContext {
    /// A context for attempt `attempt` (0 for the first) with this workspace, for tests of
    /// handlers and for layers. Its events' `source` header is `klamm-engine`; the engine's
    /// contexts use the group id.
    pub fn new(attempt: u32, workspace: Option<Workspace>) -> Self {
        Self { attempt, workspace, source: "klamm-engine".into(), events: Vec::new() }
    }

    pub(crate) fn with_source(mut self, source: &str) -> Self {
        source.clone_into(&mut self.source);
        self
    }

    /// 0 on the first attempt, 1 on the first retry, ...
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The workspace of the message (see [`Message::workspace_id`]); a new, empty one the first
    /// time an id is seen. `None` for messages without a workspace id.
    pub fn workspace(&mut self) -> Option<&mut Workspace> {
        self.workspace.as_mut()
    }

    /// Takes the workspace back out.
    pub fn into_workspace(self) -> Option<Workspace> {
        self.workspace
    }

    /// Starts an event of `event_type` for `topic`, with the standard headers (see
    /// [`EventBuilder`]) and the engine's group id as its `source`; hand it to
    /// [`HandlerContext::publish`].
    pub fn event(&self, topic: impl Into<String>, event_type: impl Into<String>) -> EventBuilder {
        EventBuilder::new(topic.into(), event_type.into(), self.source.clone())
    }

    /// Publishes `event` with the message: the engine sends it once the handler returns `Ok`
    /// (an attempt that fails publishes nothing) and counts the message handled only once the
    /// event is written. In exactly-once mode
    /// ([`EngineConfig::exactly_once`](crate::EngineConfig::exactly_once)) it goes into the
    /// engine's transaction: read_committed readers see it exactly once, together with the
    /// workspace change and the input offset. Otherwise it is written at least once (a crash
    /// after the write and before the commit publishes it again on the replay), and a failed
    /// write is a transient error of the message.
    ///
    /// ```
    /// use klamm_engine::{Handler, HandlerContext, HandlerError, Message};
    ///
    /// struct Forward;
    ///
    /// impl Handler for Forward {
    ///     async fn handle(&self, msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
    ///         let id = msg.workspace_id().unwrap_or_default().to_string();
    ///         let event = ctx
    ///             .event("applied", "event-applied")
    ///             .key(id.clone())
    ///             .json(&serde_json::json!({"workspace_id": id, "offset": msg.offset}))
    ///             .and_then(|e| e.build())
    ///             .map_err(|e| HandlerError::permanent("cannot build the event").with_source(e))?;
    ///         ctx.publish(event);
    ///         Ok(())
    ///     }
    /// }
    /// ```
    pub fn publish(&mut self, event: OutgoingEvent) {
        self.events.push(event);
    }

    /// The events published so far in this attempt.
    pub fn published(&self) -> &[OutgoingEvent] {
        &self.events
    }

    /// Takes the workspace and the published events out.
    pub(crate) fn into_parts(self) -> (Option<Workspace>, Vec<OutgoingEvent>) {
        (self.workspace, self.events)
    }
}

/// Handles messages. Called concurrently for different partitions, one message at a time per
/// partition.
///
/// ```
/// use klamm_engine::{Handler, HandlerContext, HandlerError, Message};
///
/// struct Count;
///
/// impl Handler for Count {
///     async fn handle(&self, _msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
///         let ws = ctx.workspace().ok_or_else(|| HandlerError::permanent("no workspace id"))?;
///         let n = ws.data.get("events").and_then(|v| v.as_u64()).unwrap_or(0);
///         ws.data.insert("events".into(), (n + 1).into());
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Handles one message.
    fn handle(
        &self,
        msg: &Message,
        ctx: &mut HandlerContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

impl<H: Handler> Handler for Arc<H> {
    fn handle(
        &self,
        msg: &Message,
        ctx: &mut HandlerContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        (**self).handle(msg, ctx)
    }
}

/// A boxed handler future.
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>>;

/// A [`Handler`] as a trait object (for routers and for the engine).
pub(crate) trait DynHandler: Send + Sync + 'static {
    fn handle_dyn<'a>(&'a self, msg: &'a Message, ctx: &'a mut HandlerContext) -> HandlerFuture<'a>;
}

impl<H: Handler> DynHandler for H {
    fn handle_dyn<'a>(&'a self, msg: &'a Message, ctx: &'a mut HandlerContext) -> HandlerFuture<'a> {
        Box::pin(self.handle(msg, ctx))
    }
}

/// A type-erased handler: any [`Handler`] behind one type.
#[derive(Clone)]
pub struct BoxHandler(Arc<dyn DynHandler>);

impl BoxHandler {
    /// Erases `handler`'s type.
    pub fn new(handler: impl Handler) -> Self {
        Self(Arc::new(handler))
    }
}

impl fmt::Debug for BoxHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxHandler")
    }
}

impl Handler for BoxHandler {
    async fn handle(&self, msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
        self.0.handle_dyn(msg, ctx).await
    }
}

/// Sends each message to the handler of its topic, or to the default handler; a message with
/// neither is a permanent error.
#[derive(Debug, Default, Clone)]
pub struct Router {
    routes: HashMap<String, BoxHandler>,
    default: Option<BoxHandler>,
}

impl Router {
    /// A router with no routes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles `topic` with `handler`.
    pub fn route(mut self, topic: impl Into<String>, handler: impl Handler) -> Self {
        self.routes.insert(topic.into(), BoxHandler::new(handler));
        self
    }

    /// Handles topics without a route with `handler`.
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.default = Some(BoxHandler::new(handler));
        self
    }
}

impl Handler for Router {
    fn handle(
        &self,
        msg: &Message,
        ctx: &mut HandlerContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let handler = self.routes.get(&*msg.topic).or(self.default.as_ref());
        async move {
            match handler {
                Some(h) => h.handle(msg, ctx).await,
                None => Err(HandlerError::permanent(format!("no handler for topic {}", msg.topic))),
            }
        }
    }
}

/// Runs `fut`, turning a panic inside it into a permanent error.
pub(crate) async fn catch_panic<F>(fut: F) -> Result<(), HandlerError>
where
    F: Future<Output = Result<(), HandlerError>>,
{
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
        Ok(p) => p,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_string());
            Poll::Ready(Err(HandlerError::permanent(format!("handler panicked: {what}"))))
        }
    })
    .await
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;

    pub(crate) fn message(topic: &str, key: Option<&str>, value: &str) -> Message {
        Message::new(ConsumerRecord {
            topic: Arc::from(topic),
            partition: 0,
            offset: 5,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
            timestamp: 0,
            timestamp_type: klamm::protocol::records::TimestampType::CreateTime,
            high_watermark: 6,
            leader_epoch: None,
        })
    }

    struct Panics;
    impl Handler for Panics {
        async fn handle(&self, msg: &Message, _ctx: &mut HandlerContext) -> Result<(), HandlerError> {
            tokio::task::yield_now().await;
            panic!("boom at {}", msg.offset);
        }
    }

    struct Tag(&'static str);
    impl Handler for Tag {
        async fn handle(&self, _msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
            if let Some(ws) = ctx.workspace() {
                ws.data.insert("by".into(), self.0.into());
            }
            Ok(())
        }
    }

    fn run<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn a_panic_is_a_permanent_error() {
        let msg = message("t", None, "x");
        let mut ctx = HandlerContext::new(0, None);
        let e = run(catch_panic(Panics.handle(&msg, &mut ctx))).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.to_string().contains("boom at 5"), "{e}");
    }

    #[test]
    fn router_routes_by_topic_and_falls_back() {
        let router = Router::new().route("a", Tag("a")).fallback(Tag("default"));
        for (topic, by) in [("a", "a"), ("b", "default")] {
            let msg = message(topic, Some("w"), "x");
            let mut ctx = HandlerContext::new(0, Some(Workspace::new("w", 0)));
            run(router.handle(&msg, &mut ctx)).unwrap();
            assert_eq!(ctx.into_workspace().unwrap().data["by"], by);
        }
        let msg = message("b", None, "x");
        let e = run(Router::new().route("a", Tag("a")).handle(&msg, &mut HandlerContext::new(0, None)))
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
    }

    #[test]
    fn message_accessors() {
        let msg = message("t", Some("ws-1"), r#"{"type":"x"}"#);
        assert_eq!(msg.workspace_id(), Some("ws-1"));
        let v: serde_json::Value = msg.decode_value().unwrap();
        assert_eq!(v["type"], "x");
        let bad = message("t", Some(""), "not json");
        assert_eq!(bad.workspace_id(), None);
        let e = bad.decode_value::<serde_json::Value>().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
    }
}
