//! [`EventPublisher`]: publishing events over klamm's [`Producer`] with the standard headers
//! (`event-id`, `event-type`, `correlation-id`, `source`, `schema-version`, `timestamp`), JSON
//! values through serde, and [`PublishLayer`]s around each publish (logging, metrics).
//!
//! The `event-id` is a UUID version 4 made from 16 bytes of operating-system randomness
//! (`getrandom`, already in the dependency tree): ids only need to be unique, and the layout
//! of a v4 UUID is a few bit operations, so no `uuid` crate is pulled in for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
    schema_version: String,
    headers: Vec<(String, Bytes)>,
}

impl EventBuilder {
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
            .header("correlation-id", correlation)
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
}

/// Counts publishes; read with [`PublishMetrics::snapshot`] (clones share the counters).
#[derive(Debug, Clone, Default)]
pub struct PublishMetrics(Arc<[AtomicU64; 2]>);

impl PublishMetrics {
    /// (published, failed) so far.
    pub fn snapshot(&self) -> (u64, u64) {
        (self.0[0].load(Ordering::Relaxed), self.0[1].load(Ordering::Relaxed))
    }
}

impl PublishLayer for PublishMetrics {
    fn after(&self, _event: &OutgoingEvent, result: &Result<RecordMetadata, Error>, _: std::time::Duration) {
        self.0[usize::from(result.is_err())].fetch_add(1, Ordering::Relaxed);
    }
}

/// Publishes events through a [`Producer`], with the standard headers and layers.
#[derive(Clone)]
pub struct EventPublisher {
    producer: Producer,
    source: String,
    layers: Vec<Arc<dyn PublishLayer>>,
}

impl std::fmt::Debug for EventPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventPublisher").field("source", &self.source).finish_non_exhaustive()
    }
}

impl EventPublisher {
    /// A publisher over `producer`; `source` is the `source` header of every event.
    pub fn new(producer: Producer, source: impl Into<String>) -> Self {
        EventPublisher { producer, source: source.into(), layers: Vec::new() }
    }

    /// A publisher with its own producer, set from the config's `KAFKA_PRODUCER_*` properties.
    pub fn from_config(config: &EngineConfig, source: impl Into<String>) -> Result<Self, Error> {
        Ok(Self::new(Producer::new(config.producer_config()?)?, source))
    }

    /// Adds a layer (inside those added before).
    pub fn layer(mut self, layer: impl PublishLayer) -> Self {
        self.layers.push(Arc::new(layer));
        self
    }

    /// Starts an event of `event_type` for `topic`.
    pub fn event(&self, topic: impl Into<String>, event_type: impl Into<String>) -> EventBuilder {
        EventBuilder {
            topic: topic.into(),
            event_type: event_type.into(),
            source: self.source.clone(),
            key: None,
            value: None,
            correlation_id: None,
            schema_version: "1".into(),
            headers: Vec::new(),
        }
    }

    /// Sends the event and waits until the broker acknowledged it.
    pub async fn publish(&self, event: OutgoingEvent) -> Result<RecordMetadata, Error> {
        for l in &self.layers {
            l.before(&event);
        }
        let start = Instant::now();
        let result = match self.producer.send(event.record.clone()).await {
            Ok(delivery) => delivery.await,
            Err(e) => Err(e),
        };
        for l in self.layers.iter().rev() {
            l.after(&event, &result, start.elapsed());
        }
        result
    }

    /// The producer underneath (to flush or close it).
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
