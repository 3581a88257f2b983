//! [`EventPublisher`]: publishing events over klamm's [`Producer`] with the standard headers
//! (`event-id`, `event-type`, `correlation-id`, `source`, `schema-version`, `timestamp`, and
//! `conversation-id` when the caller sets one), JSON values through serde, and
//! [`PublishLayer`]s around each publish (logging, metrics).
//!
//! A publisher can have a dead-letter topic: an event that fails to publish (once the
//! producer has given up on it) is written there with its key, value and headers and the
//! headers `original-topic`, `original-partition` (when the record named one), `error`,
//! `error-class` and `timestamp`, as the engine's dead-letter records have them. An
//! asynchronous publisher returns once the producer has taken the event and does not wait for
//! the broker: a failure then reaches only the dead-letter topic, the layers (logs, metrics)
//! and [`EventPublisher::flush`], which waits for those writes too.
//!
//! The `event-id` is a UUID version 4 made from 16 bytes of operating-system randomness
//! (`getrandom`, already in the dependency tree): ids only need to be unique, and the layout
//! of a v4 UUID is a few bit operations, so no `uuid` crate is pulled in for it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::{Error, ErrorKind, Producer, ProducerRecord, RecordMetadata};
use serde::Serialize;

use crate::config::EngineConfig;
use crate::dlq::now_rfc3339;

/// A new random UUID (version 4, RFC 9562 variant), as 36 lower-case characters.
pub fn new_event_id() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)
        .map_err(|e| Error::with_message(ErrorKind::Io, format!("no randomness for an event id: {e}")))?;
    Ok(format_uuid_v4(b))
}

fn format_uuid_v4(mut b: [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

/// An event ready to publish: its record and the standard header values.
#[derive(Debug, Clone)]
pub struct OutgoingEvent {
    /// The `event-id` header.
    pub event_id: String,
    /// The `event-type` header.
    pub event_type: String,
    /// The record, with every header set.
    pub record: ProducerRecord,
}

/// Builds an [`OutgoingEvent`]; see [`EventPublisher::event`].
#[derive(Debug, Clone)]
pub struct EventBuilder {
    topic: String,
    event_type: String,
    source: String,
    key: Option<Bytes>,
    value: Option<Bytes>,
    correlation_id: Option<String>,
    conversation_id: Option<String>,
    schema_version: String,
    headers: Vec<(String, Bytes)>,
}

impl EventBuilder {
    pub(crate) fn new(topic: String, event_type: String, source: String) -> Self {
        EventBuilder {
            topic,
            event_type,
            source,
            key: None,
            value: None,
            correlation_id: None,
            conversation_id: None,
            schema_version: "1".into(),
            headers: Vec::new(),
        }
    }

    /// The record key (a workspace id keeps the event on that workspace's partition).
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The `correlation-id` header (default: the event's own id).
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The `conversation-id` header: the conversation (a chat, a workflow, a user session) the
    /// event belongs to, kept across the events that follow from it. Without it the event has
    /// no such header.
    pub fn conversation_id(mut self, id: impl Into<String>) -> Self {
        self.conversation_id = Some(id.into());
        self
    }

    /// The `schema-version` header (default `1`).
    pub fn schema_version(mut self, version: impl Into<String>) -> Self {
        self.schema_version = version.into();
        self
    }

    /// An extra header, after the standard ones.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Result<Self, Error> {
        let v = serde_json::to_vec(value).map_err(|e| {
            Error::with_message(
                ErrorKind::User,
                format!("event {}: cannot encode JSON: {e}", self.event_type),
            )
        })?;
        self.value = Some(v.into());
        Ok(self)
    }

    /// The value as given bytes.
    pub fn value(mut self, value: impl Into<Bytes>) -> Self {
        self.value = Some(value.into());
        self
    }

    /// The event, with a new `event-id` and the `timestamp` of now.
    pub fn build(self) -> Result<OutgoingEvent, Error> {
        let event_id = new_event_id()?;
        let mut record = match self.value {
            Some(v) => ProducerRecord::new(self.topic, v),
            None => ProducerRecord::tombstone(self.topic),
        };
        if let Some(k) = self.key {
            record = record.key(k);
        }
        let correlation = self.correlation_id.unwrap_or_else(|| event_id.clone());
        record = record
            .header("event-id", event_id.clone())
            .header("event-type", self.event_type.clone())
            .header("correlation-id", correlation);
        if let Some(conversation) = self.conversation_id {
            record = record.header("conversation-id", conversation);
        }
        record = record
            .header("source", self.source)
            .header("schema-version", self.schema_version)
            .header("timestamp", now_rfc3339());
        for (k, v) in self.headers {
            record = record.header(k, v);
        }
        Ok(OutgoingEvent { event_id, event_type: self.event_type, record })
    }
}

/// Runs around each publish, outermost first: the publishing side's middleware.
pub trait PublishLayer: Send + Sync + 'static {
    /// Before the event is sent.
    fn before(&self, _event: &OutgoingEvent) {}
    /// Once the broker acknowledged it, or it failed, `elapsed` after [`PublishLayer::before`].
    fn after(
        &self,
        event: &OutgoingEvent,
        result: &Result<RecordMetadata, Error>,
        elapsed: std::time::Duration,
    );
    /// After an event that failed to publish was written to the dead-letter topic (or that
    /// write failed too), with the dead-letter write's outcome.
    fn dead_lettered(&self, _event: &OutgoingEvent, _result: &Result<RecordMetadata, Error>) {}
}

/// Logs each publish: `debug` when acknowledged, `warn` when it failed.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublishLogging;

impl PublishLayer for PublishLogging {
    fn after(
        &self,
        event: &OutgoingEvent,
        result: &Result<RecordMetadata, Error>,
        elapsed: std::time::Duration,
    ) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        match result {
            Ok(m) => tracing::debug!(
                topic = &*event.record.topic, event_id = %event.event_id, event_type = %event.event_type,
                partition = m.partition, offset = m.offset, ms, "published"
            ),
            Err(e) => tracing::warn!(
                topic = &*event.record.topic, event_id = %event.event_id, event_type = %event.event_type,
                ms, error = %e, "publish failed"
            ),
        }
    }

    fn dead_lettered(&self, event: &OutgoingEvent, result: &Result<RecordMetadata, Error>) {
        match result {
            Ok(m) => tracing::warn!(
                topic = &*event.record.topic, event_id = %event.event_id, event_type = %event.event_type,
                dlq_partition = m.partition, dlq_offset = m.offset, "failed publish dead-lettered"
            ),
            Err(e) => tracing::error!(
                topic = &*event.record.topic, event_id = %event.event_id, event_type = %event.event_type,
                error = %e, "failed publish could not be dead-lettered either; the event is lost"
            ),
        }
    }
}

/// Counts publishes; read with [`PublishMetrics::snapshot`] and
/// [`PublishMetrics::dead_lettered`] (clones share the counters).
#[derive(Debug, Clone, Default)]
pub struct PublishMetrics(Arc<[AtomicU64; 4]>);

impl PublishMetrics {
    /// (published, failed) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.0[0].load(Ordering::Relaxed), self.0[1].load(Ordering::Relaxed))
    }

    /// (written to the dead-letter topic, lost because that write failed too) so far.
    pub fn dead_lettered(&self) -> (u64, u64) {
        (self.0[2].load(Ordering::Relaxed), self.0[3].load(Ordering::Relaxed))
    }
}

impl PublishLayer for PublishMetrics {
    fn after(&self, _event: &OutgoingEvent, result: &Result<RecordMetadata, Error>, _: std::time::Duration) {
        self.0[usize::from(result.is_err())].fetch_add(1, Ordering::Relaxed);
    }

    fn dead_lettered(&self, _event: &OutgoingEvent, result: &Result<RecordMetadata, Error>) {
        self.0[2 + usize::from(result.is_err())].fetch_add(1, Ordering::Relaxed);
    }
}

/// What [`EventPublisher::publish`] did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// The broker acknowledged it, here.
    Acknowledged(RecordMetadata),
    /// The producer took it; an asynchronous publisher does not wait for the broker (a
    /// failure goes to the dead-letter topic and the layers).
    Queued,
}

impl Published {
    /// Where the record was written, when the publisher waited for it.
    pub fn metadata(&self) -> Option<RecordMetadata> {
        match self {
            Published::Acknowledged(m) => Some(*m),
            Published::Queued => None,
        }
    }
}

/// The copy of a record that failed to publish, for the dead-letter topic: the same key,
/// value and headers, plus `original-topic`, `original-partition` (when the record named
/// one), `error`, `error-class` (`transient` when the error is one a retry might get past,
/// else `permanent`) and `timestamp` (RFC 3339 UTC).
fn failed_publish_record(dlq_topic: &str, record: &ProducerRecord, error: &Error) -> ProducerRecord {
    let mut out = record.clone();
    out.topic = dlq_topic.into();
    out.partition = None;
    out.timestamp = None;
    out = out.header("original-topic", record.topic.to_string());
    if let Some(p) = record.partition {
        out = out.header("original-partition", p.to_string());
    }
    let class = if error.is_retriable() { "transient" } else { "permanent" };
    out.header("error", error.to_string()).header("error-class", class).header("timestamp", now_rfc3339())
}

/// Asynchronous publishes not yet finished (acknowledged or failed, and dead-lettered).
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn done(&self) {
        if self.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }
}

/// Publishes events through a [`Producer`], with the standard headers and layers, and
/// optionally a dead-letter topic and without waiting for acknowledgements.
#[derive(Clone)]
pub struct EventPublisher {
    producer: Producer,
    source: String,
    layers: Vec<Arc<dyn PublishLayer>>,
    dead_letter_topic: Option<String>,
    asynchronous: bool,
    in_flight: Arc<InFlight>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher")
            .field("source", &self.source)
            .field("dead_letter_topic", &self.dead_letter_topic)
            .field("asynchronous", &self.asynchronous)
            .finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher over `producer`; `source` is the `source` header of every event. It waits
    /// for each acknowledgement and has no dead-letter topic until told otherwise.
    pub fn new(producer: Producer, source: impl Into<String>) -> Self {
        EventPublisher {
            producer,
            source: source.into(),
            layers: Vec::new(),
            dead_letter_topic: None,
            asynchronous: false,
            in_flight: Arc::new(InFlight::default()),
        }
    }

    /// A publisher with its own producer, set from the config's `KAFKA_PRODUCER_*` properties,
    /// its dead-letter topic (`KAFKA_PRODUCER_DLQ_TOPIC`) and whether it waits for
    /// acknowledgements (`KAFKA_PRODUCER_ASYNC`).
    pub fn from_config(config: &EngineConfig, source: impl Into<String>) -> Result<Self, Error> {
        let mut p = Self::new(Producer::new(config.producer_config()?)?, source);
        p.dead_letter_topic = config.publish_dlq_topic.clone();
        p.asynchronous = config.publish_async;
        Ok(p)
    }

    /// Adds a layer (inside those added before).
    pub fn layer(mut self, layer: impl PublishLayer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Writes events that fail to publish to `topic` (see the module docs for the record).
    /// The topic must exist unless the producer may create topics
    /// (`allow.auto.create.topics`, off for [`EventPublisher::from_config`]).
    ///
    /// ```no_run
    /// # async fn example(producer: klamm::Producer) -> Result<(), klamm::Error> {
    /// use klamm_engine::EventPublisher;
    ///
    /// let publisher = EventPublisher::new(producer, "billing").dead_letter_topic("billing.publish.dlq");
    /// let event = publisher.event("invoices", "invoice-paid").conversation_id("chat-7").build()?;
    /// publisher.publish(event).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn dead_letter_topic(mut self, topic: impl Into<String>) -> Self {
        self.dead_letter_topic = Some(topic.into()).filter(|t| !t.trim().is_empty());
        self
    }

    /// Whether [`EventPublisher::publish`] returns as soon as the producer took the event
    /// (`true`) or waits for the broker's acknowledgement (`false`, the default).
    pub fn asynchronous(mut self, asynchronous: bool) -> Self {
        self.asynchronous = asynchronous;
        self
    }

    /// Starts an event of `event_type` for `topic`.
    pub fn event(&self, topic: impl Into<String>, event_type: impl Into<String>) -> EventBuilder {
        EventBuilder::new(topic.into(), event_type.into(), self.source.clone())
    }

    /// Sends the event. A synchronous publisher waits until the broker acknowledged it
    /// ([`Published::Acknowledged`]); when it failed, the error is returned once the event was
    /// written to the dead-letter topic (if there is one). An asynchronous publisher returns
    /// [`Published::Queued`] once the producer took the event (waiting only while its buffer
    /// is full); a failure later goes to the dead-letter topic and the layers. An event the
    /// producer refuses at once (too large, producer closed) is an error in both modes, and
    /// dead-lettered too.
    pub async fn publish(&self, event: OutgoingEvent) -> Result<Published, Error> {
        for l in &self.layers {
            l.before(&event);
        }
        let start = Instant::now();
        let delivery = match self.producer.send(event.record.clone()).await {
            Ok(delivery) => delivery,
            Err(e) => {
                self.failed(&event, &e, start.elapsed()).await;
                return Err(e);
            }
        };
        if !self.asynchronous {
            return match delivery.await {
                Ok(m) => {
                    self.after(&event, &Ok(m), start.elapsed());
                    Ok(Published::Acknowledged(m))
                }
                Err(e) => {
                    self.failed(&event, &e, start.elapsed()).await;
                    Err(e)
                }
            };
        }
        self.in_flight.count.fetch_add(1, Ordering::AcqRel);
        let this = self.clone();
        tokio::spawn(async move {
            match delivery.await {
                Ok(m) => this.after(&event, &Ok(m), start.elapsed()),
                Err(e) => this.failed(&event, &e, start.elapsed()).await,
            }
            this.in_flight.done();
        });
        Ok(Published::Queued)
    }

    fn after(&self, event: &OutgoingEvent, result: &Result<RecordMetadata, Error>, elapsed: Duration) {
        for l in self.layers.iter().rev() {
            l.after(event, result, elapsed);
        }
    }

    /// Tells the layers that `event` failed, then writes it to the dead-letter topic, if any,
    /// and waits for that write.
    async fn failed(&self, event: &OutgoingEvent, error: &Error, elapsed: Duration) {
        self.after(event, &Err(error.clone()), elapsed);
        let Some(topic) = &self.dead_letter_topic else { return };
        let record = failed_publish_record(topic, &event.record, error);
        let written = match self.producer.send(record).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        for l in self.layers.iter().rev() {
            l.dead_lettered(event, &written);
        }
    }

    /// Waits, at most `timeout`, until every asynchronous publish has finished (acknowledged,
    /// or failed and dead-lettered) and the producer has nothing queued. Returns whether
    /// everything finished in time.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.in_flight.idle.notified();
            if self.in_flight.count.load(Ordering::Acquire) == 0 {
                break;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.producer.flush(left).await == 0
    }

    /// [`EventPublisher::flush`], then closes the producer with what is left of `timeout`.
    /// Returns whether everything finished in time.
    pub async fn close(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let flushed = self.flush(timeout).await;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.producer.close(left).await == 0 && flushed
    }

    /// The producer underneath.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_version_4_uuids() {
        let a = new_event_id().unwrap();
        let b = new_event_id().unwrap();
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 36);
            let parts: Vec<&str> = id.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "{id}");
            assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        }
        assert_eq!(format_uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(format_uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
    }

    fn header<'a>(e: &'a OutgoingEvent, name: &str) -> Option<&'a [u8]> {
        e.record.headers.iter().find(|h| h.key == name.as_bytes()).and_then(|h| h.value.as_deref())
    }

    #[tokio::test]
    async fn the_builder_sets_every_standard_header_and_json() {
        let producer = Producer::new(klamm::ProducerConfig::new("127.0.0.1:1")).unwrap();
        let p = EventPublisher::new(producer, "billing");
        let e = p
            .event("t", "invoice-paid")
            .key("ws-1")
            .schema_version("3")
            .header("extra", "x")
            .json(&serde_json::json!({"amount": 5}))
            .unwrap()
            .build()
            .unwrap();
        assert_eq!(header(&e, "event-id"), Some(e.event_id.as_bytes()));
        assert_eq!(header(&e, "event-type"), Some(&b"invoice-paid"[..]));
        assert_eq!(header(&e, "correlation-id"), Some(e.event_id.as_bytes()));
        assert_eq!(header(&e, "source"), Some(&b"billing"[..]));
        assert_eq!(header(&e, "schema-version"), Some(&b"3"[..]));
        assert_eq!(header(&e, "extra"), Some(&b"x"[..]));
        let ts = std::str::from_utf8(header(&e, "timestamp").unwrap()).unwrap();
        assert!(ts.len() == 24 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T', "{ts}");
        assert_eq!(e.record.value.as_deref(), Some(&br#"{"amount":5}"#[..]));
        assert_eq!(e.record.key.as_deref(), Some(&b"ws-1"[..]));
        let c = p.event("t", "x").correlation_id("req-9").build().unwrap();
        assert_eq!(header(&c, "correlation-id"), Some(&b"req-9"[..]));
        assert!(c.record.value.is_none());
        // No conversation, no header; with one, the header beside the standard ones.
        assert_eq!(header(&e, "conversation-id"), None);
        let c = p.event("t", "x").conversation_id("chat-7").header("extra", "y").build().unwrap();
        assert_eq!(header(&c, "conversation-id"), Some(&b"chat-7"[..]));
        let names: Vec<&[u8]> = c.record.headers.iter().map(|h| &h.key[..]).collect();
        let standard: [&[u8]; 7] = [
            b"event-id",
            b"event-type",
            b"correlation-id",
            b"conversation-id",
            b"source",
            b"schema-version",
            b"timestamp",
        ];
        assert_eq!(names[..7], standard);
        assert_eq!(names[7], b"extra");
    }

    #[test]
    fn a_failed_publish_keeps_the_record_and_adds_error_headers() {
        let record =
            ProducerRecord::new("orders", "v").key("k").partition(3).header("conversation-id", "c-1");
        let error = Error::with_message(ErrorKind::User, "too big");
        let out = failed_publish_record("orders.dlq", &record, &error);
        assert_eq!(&*out.topic, "orders.dlq");
        assert_eq!(out.partition, None, "the dead-letter topic's partitioner places it");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.value.as_deref(), Some(&b"v"[..]));
        assert_eq!(out.headers[0], record.headers[0]);
        let get = |name: &str| {
            out.headers.iter().find(|h| h.key == name.as_bytes()).and_then(|h| h.value.as_deref())
        };
        assert_eq!(get("original-topic"), Some(&b"orders"[..]));
        assert_eq!(get("original-partition"), Some(&b"3"[..]));
        assert!(std::str::from_utf8(get("error").unwrap()).unwrap().contains("too big"));
        assert_eq!(get("error-class"), Some(&b"permanent"[..]));
        assert!(get("timestamp").unwrap().ends_with(b"Z"));
        let retriable = Error::with_message(ErrorKind::Timeout, "slow");
        let out = failed_publish_record("d", &ProducerRecord::tombstone("t"), &retriable);
        assert!(out.value.is_none());
        assert!(!out.headers.iter().any(|h| h.key == b"original-partition".as_slice()));
        let class = out.headers.iter().find(|h| h.key == b"error-class".as_slice()).unwrap();
        assert_eq!(class.value.as_deref(), Some(&b"transient"[..]));
    }

    /// A producer whose every write fails: no broker listens on its address.
    fn failing_producer() -> Producer {
        let config = klamm::ProducerConfig::from_properties([
            ("bootstrap.servers", "127.0.0.1:1"),
            ("max.block.ms", "100"),
            ("request.timeout.ms", "100"),
            ("delivery.timeout.ms", "200"),
            ("reconnect.backoff.max.ms", "50"),
        ])
        .unwrap();
        Producer::new(config).unwrap()
    }

    #[tokio::test]
    async fn a_failure_reaches_the_layers_and_the_dead_letter_attempt_in_both_modes() {
        for asynchronous in [false, true] {
            let metrics = PublishMetrics::default();
            let p = EventPublisher::new(failing_producer(), "s")
                .dead_letter_topic("t.dlq")
                .asynchronous(asynchronous)
                .layer(PublishLogging)
                .layer(metrics.clone());
            let event = p.event("t", "x").conversation_id("c").build().unwrap();
            let outcome = p.publish(event).await;
            // Either refused at once (no metadata within max.block.ms) or, asynchronously,
            // queued and failed later; the layers hear of it by the end of the flush.
            assert!(
                outcome.is_err() || (asynchronous && matches!(outcome, Ok(Published::Queued))),
                "{outcome:?}"
            );
            assert!(p.close(Duration::from_secs(10)).await || outcome.is_err());
            assert_eq!(metrics.snapshot(), (0, 1), "async: {asynchronous}");
            // The dead-letter write went to the same unreachable cluster, and failed too.
            assert_eq!(metrics.dead_lettered(), (0, 1), "async: {asynchronous}");
        }
    }

    #[tokio::test]
    async fn without_a_dead_letter_topic_a_failure_is_only_reported() {
        let metrics = PublishMetrics::default();
        let p = EventPublisher::new(failing_producer(), "s").layer(metrics.clone());
        let event = p.event("t", "x").build().unwrap();
        assert!(p.publish(event).await.is_err());
        assert_eq!(metrics.snapshot(), (0, 1));
        assert_eq!(metrics.dead_lettered(), (0, 0));
    }

    #[test]
    fn metrics_count_successes_and_failures() {
        let m = PublishMetrics::default();
        let producer_less = OutgoingEvent {
            event_id: "id".into(),
            event_type: "t".into(),
            record: ProducerRecord::new("t", "v"),
        };
        let ok = Ok(RecordMetadata { partition: 0, offset: 1, timestamp: 0 });
        m.clone().after(&producer_less, &ok, std::time::Duration::ZERO);
        m.after(&producer_less, &Err(Error::with_message(ErrorKind::User, "no")), std::time::Duration::ZERO);
        assert_eq!(m.snapshot(), (1, 1));
    }
}
