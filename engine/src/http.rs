//! The engine's HTTP endpoint for probes and scrapes: `/healthz` (liveness), `/readyz`
//! (readiness) and `/metrics` (the Prometheus text format, version 0.0.4).
//!
//! It is off unless [`EngineConfig::http_addr`](crate::EngineConfig::http_addr) (or
//! `KAFKA_ENGINE_HTTP_ADDR`) names an address. The listener is bound when the engine is built,
//! so a taken port fails `build` and port 0 gives a free one that
//! [`Engine::http_addr`](crate::Engine::http_addr) tells; it serves on the engine's runtime
//! from the start of [`Engine::run`](crate::Engine::run) until `run` returns.
//!
//! Every answer is made from the snapshots the engine keeps anyway ([`HealthSnapshot`],
//! [`MetricsSnapshot`](crate::MetricsSnapshot), the clients' [`ClientStats`]): a request
//! takes no lock that the consume loop holds for long and sends nothing to a broker.
//!
//! The server is axum over hyper (HTTP/1.1 only, no TLS: it is meant for the pod network or
//! the loopback, as probes and scrapers use it). The text format comes from
//! `prometheus-client`, the Prometheus project's Rust client, through a collector that reads
//! the snapshots at each scrape.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use klamm::{ClientStats, Error, ErrorKind};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::health::{EngineHealth, HealthSnapshot};
use crate::metrics::{HistogramSnapshot, MetricsSnapshot};

/// The `Content-Type` of `/metrics`.
pub const METRICS_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// How long the server gets to finish the requests it is answering once `run` returns.
const STOP_GRACE: Duration = Duration::from_secs(1);

/// A listener bound at build time, served once the engine runs.
#[derive(Debug)]
pub(crate) struct Endpoint {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

impl Endpoint {
    /// Binds `addr` (port 0: any free port). Needs no runtime.
    pub(crate) fn bind(addr: SocketAddr) -> Result<Endpoint, Error> {
        let fail = |e: std::io::Error| {
            Error::with_message(
                ErrorKind::Config,
                format!("KAFKA_ENGINE_HTTP_ADDR: cannot listen on {addr}: {e}"),
            )
        };
        let listener = std::net::TcpListener::bind(addr).map_err(fail)?;
        listener.set_nonblocking(true).map_err(fail)?;
        let addr = listener.local_addr().map_err(fail)?;
        Ok(Endpoint { listener, addr })
    }

    /// The address it listens on (with the port chosen when it was bound to port 0).
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts serving `health` on the current runtime.
    pub(crate) fn serve(self, health: EngineHealth) -> Result<Server, Error> {
        let addr = self.addr;
        let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|e| {
            Error::with_message(
                ErrorKind::Config,
                format!("KAFKA_ENGINE_HTTP_ADDR: cannot listen on {addr}: {e}"),
            )
        })?;
        let (stop, stopped) = oneshot::channel::<()>();
        let app = router(health);
        let span = tracing::info_span!("klamm.engine.http", %addr);
        let task = tokio::spawn(tracing::Instrument::instrument(
            async move {
                let served = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = stopped.await;
                });
                if let Err(e) = served.await {
                    tracing::warn!(error = %e, "http endpoint failed");
                }
            },
            span,
        ));
        tracing::info!(%addr, "http endpoint listening (/healthz, /readyz, /metrics)");
        Ok(Server { stop, task })
    }
}

/// A running endpoint.
pub(crate) struct Server {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Server {
    /// Stops accepting, lets the requests under way finish (for at most a second) and ends.
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
        }
    }
}

fn router(health: EngineHealth) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

#[tracing::instrument(name = "klamm.engine.http.healthz", level = "debug", skip_all)]
async fn healthz(State(health): State<EngineHealth>) -> Response {
    let s = health.snapshot();
    let body = serde_json::json!({
        "live": s.is_live(),
        "phase": s.phase.as_str(),
        "since_last_poll_ms": s.since_last_poll.map(|d| d.as_millis() as u64),
    });
    json(if s.is_live() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

#[tracing::instrument(name = "klamm.engine.http.readyz", level = "debug", skip_all)]
async fn readyz(State(health): State<EngineHealth>) -> Response {
    let s = health.snapshot();
    let reason = s.not_ready_because();
    let body = serde_json::json!({
        "ready": reason.is_none(),
        "reason": reason,
        "phase": s.phase.as_str(),
        "member_state": s.member_state.map(|m| format!("{m:?}")),
        "generation": s.generation,
        "assigned": s.assigned.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect::<Vec<_>>(),
        "restoring": s.restoring_partitions.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>(),
        "stopped": s.stopped_partitions.keys().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>(),
        "connected_brokers": s.connected_brokers,
    });
    json(if reason.is_none() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, body)
}

#[tracing::instrument(name = "klamm.engine.http.metrics", level = "debug", skip_all)]
async fn metrics(State(health): State<EngineHealth>) -> Response {
    match health.prometheus_text() {
        Ok(text) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot encode the metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode the metrics\n").into_response()
        }
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    let mut text = body.to_string();
    text.push('\n');
    (status, [(header::CONTENT_TYPE, "application/json")], text).into_response()
}

/// Everything `/metrics` shows, read at one moment.
#[derive(Debug)]
pub(crate) struct Scrape {
    pub(crate) metrics: MetricsSnapshot,
    pub(crate) health: HealthSnapshot,
    pub(crate) clients: Vec<(&'static str, ClientStats)>,
}

impl Scrape {
    /// The Prometheus text format of the scrape.
    pub(crate) fn encode(self) -> Result<String, std::fmt::Error> {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(ScrapeCollector(self)));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)?;
        Ok(out)
    }
}

#[derive(Debug)]
struct ScrapeCollector(Scrape);

/// `name` as a metric with one series per (labels, value).
fn family<L, V>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, V)>,
    mut write: impl FnMut(&mut MetricEncoder, &V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet,
{
    let mut metric = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        let mut one = metric.encode_family(&labels)?;
        write(&mut one, &value)?;
    }
    Ok(())
}

fn counter(m: &mut MetricEncoder, v: &u64) -> Result<(), std::fmt::Error> {
    m.encode_counter::<NoLabelSet, u64, u64>(v, None)
}

fn gauge(m: &mut MetricEncoder, v: &i64) -> Result<(), std::fmt::Error> {
    m.encode_gauge(v)
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &HistogramSnapshot,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    metric.encode_histogram::<NoLabelSet>(h.sum.as_secs_f64(), h.count, &h.buckets, None)
}

/// The labels of a per-partition series.
fn partition_labels(topic: &str, partition: i32) -> [(&'static str, String); 2] {
    [("topic", topic.to_string()), ("partition", partition.to_string())]
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Scrape { metrics: m, health: h, clients } = &self.0;
        let outcomes = [
            ("processed", m.processed),
            ("failed", m.failed),
            ("retried", m.retried),
            ("dead_lettered", m.dead_lettered),
            ("skipped", m.skipped),
            ("replayed", m.replayed),
        ];
        family(
            &mut e,
            "klamm_engine_events",
            "Events by outcome: processed (handled), failed (handler attempts that failed), retried (retries of transient failures), dead_lettered, skipped (business errors), replayed (already applied by their workspace).",
            MetricType::Counter,
            outcomes.map(|(o, n)| ([("outcome", o)], n)),
            counter,
        )?;
        histogram(
            &mut e,
            "klamm_engine_handler_duration_seconds",
            "How long each handler attempt took.",
            &m.handler_latency,
        )?;
        family(
            &mut e,
            "klamm_engine_rebalances",
            "Rebalances that assigned partitions to this engine, revoked partitions from it, or lost them.",
            MetricType::Counter,
            [("assigned", m.assignments), ("revoked", m.revocations), ("lost", m.losses)]
                .map(|(k, n)| ([("event", k)], n)),
            counter,
        )?;
        family(
            &mut e,
            "klamm_engine_transactions",
            "Exactly-once mode: transactions committed, and aborted (each followed by a rewind to the last committed one).",
            MetricType::Counter,
            [("committed", m.transactions_committed), ("aborted", m.transactions_aborted)]
                .map(|(k, n)| ([("outcome", k)], n)),
            counter,
        )?;
        histogram(
            &mut e,
            "klamm_engine_restore_duration_seconds",
            "How long each assignment took to restore: loading its partitions' workspaces and seeking to their stored offsets.",
            &m.restore_time,
        )?;
        let assigned: Vec<(String, i32)> =
            h.assigned.iter().map(|tp| (tp.topic.to_string(), tp.partition)).collect();
        family(
            &mut e,
            "klamm_engine_partition_lag",
            "Records behind the partition's high watermark after the last handled one (after the fetch position before any is handled).",
            MetricType::Gauge,
            h.lag.iter().map(|((t, p), l)| (partition_labels(t, *p), *l)),
            gauge,
        )?;
        family(
            &mut e,
            "klamm_engine_committed_offset",
            "The partition's committed offset (the next one to consume), as read at assignment and as this engine committed it.",
            MetricType::Gauge,
            m.committed
                .iter()
                .filter(|(k, _)| assigned.contains(k))
                .map(|((t, p), o)| (partition_labels(t, *p), *o)),
            gauge,
        )?;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let gauges = [
            (
                "klamm_engine_assigned_partitions",
                "Partitions assigned to this engine.",
                count(h.assigned.len()),
            ),
            (
                "klamm_engine_restoring_partitions",
                "Assigned partitions whose workspaces are being restored.",
                count(h.restoring_partitions.len()),
            ),
            (
                "klamm_engine_stopped_partitions",
                "Partitions stopped because a workspace could not be loaded (alert on this).",
                count(h.stopped_partitions.len()),
            ),
            (
                "klamm_engine_connected_brokers",
                "Brokers the engine's clients have an open connection to.",
                count(h.connected_brokers.len()),
            ),
            ("klamm_engine_live", "1 when /healthz answers 200.", i64::from(h.is_live())),
            ("klamm_engine_ready", "1 when /readyz answers 200.", i64::from(h.is_ready())),
        ];
        for (name, help, value) in gauges {
            e.encode_descriptor(name, help, None, MetricType::Gauge)?.encode_gauge(&value)?;
        }
        client_metrics(&mut e, clients)
    }
}

/// The client counters: connections for every client (label `client`), producer counters of
/// the `producer` client, consumer counters of the `consumer` client.
fn client_metrics(
    e: &mut DescriptorEncoder,
    clients: &[(&'static str, ClientStats)],
) -> Result<(), std::fmt::Error> {
    type Field = fn(&ClientStats) -> u64;
    let all: [(&str, &str, Field); 2] = [
        ("klamm_client_connections_opened", "Broker connections opened (each reconnect counts).", |s| {
            s.connections_opened
        }),
        ("klamm_client_connection_failures", "Broker connection attempts that failed.", |s| {
            s.connection_failures
        }),
    ];
    for (name, help, field) in all {
        let series = clients.iter().map(|(role, s)| ([("client", *role)], field(s)));
        family(e, name, help, MetricType::Counter, series, counter)?;
    }
    let of = |role: &'static str| clients.iter().filter(move |(r, _)| *r == role).map(|(_, s)| s);
    let producer: [(&str, &str, Field); 7] = [
        ("klamm_producer_records_sent", "Records the brokers acknowledged.", |s| s.records_sent),
        ("klamm_producer_bytes_sent", "Bytes of acknowledged record batches, as sent (compressed).", |s| {
            s.bytes_sent
        }),
        ("klamm_producer_batches_sent", "Record batches the brokers acknowledged.", |s| s.batches_sent),
        ("klamm_producer_batch_retries", "Batches sent again after a retriable failure.", |s| {
            s.batch_retries
        }),
        ("klamm_producer_records_failed", "Records whose delivery failed for good.", |s| s.records_failed),
        ("klamm_producer_requests", "Produce requests answered or failed.", |s| s.produce_requests),
        ("klamm_producer_request_errors", "Produce requests that failed as a whole.", |s| {
            s.produce_request_errors
        }),
    ];
    for (name, help, field) in producer {
        for s in of("producer") {
            counter(&mut e.encode_descriptor(name, help, None, MetricType::Counter)?, &field(s))?;
        }
    }
    let consumer: [(&str, &str, Field); 4] = [
        ("klamm_consumer_records_fetched", "Records the consumer handed to the engine.", |s| {
            s.records_fetched
        }),
        ("klamm_consumer_bytes_fetched", "Bytes of record data fetched (compressed, as sent).", |s| {
            s.bytes_fetched
        }),
        ("klamm_consumer_fetch_requests", "Fetch requests answered or failed.", |s| s.fetch_requests),
        ("klamm_consumer_fetch_request_errors", "Fetch requests that failed as a whole.", |s| {
            s.fetch_request_errors
        }),
    ];
    for (name, help, field) in consumer {
        for s in of("consumer") {
            counter(&mut e.encode_descriptor(name, help, None, MetricType::Counter)?, &field(s))?;
        }
    }
    Ok(())
}

impl EngineHealth {
    /// Everything the `/metrics` endpoint shows, in the Prometheus text format (version
    /// 0.0.4, [`METRICS_CONTENT_TYPE`]): for a service that serves it from an HTTP server of
    /// its own instead of the engine's. Cheap: reads the snapshots, sends nothing.
    ///
    /// ```no_run
    /// # fn example(engine: &klamm_engine::Engine) {
    /// let health = engine.health();
    /// // in the service's own /metrics handler:
    /// let body = health.prometheus_text().unwrap_or_default();
    /// # }
    /// ```
    pub fn prometheus_text(&self) -> Result<String, std::fmt::Error> {
        Scrape {
            metrics: self.metrics.snapshot(),
            health: self.snapshot(),
            clients: self.health.client_stats(),
        }
        .encode()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use klamm::TopicPartition;
    use klamm_group::membership::MemberState;

    use super::*;
    use crate::health::EnginePhase;

    fn scrape() -> Scrape {
        let tp = |p: i32| TopicPartition { topic: "events".into(), partition: p };
        let metrics = MetricsSnapshot {
            processed: 40,
            failed: 3,
            retried: 2,
            dead_lettered: 1,
            skipped: 0,
            replayed: 5,
            assignments: 1,
            revocations: 0,
            losses: 0,
            transactions_committed: 7,
            transactions_aborted: 1,
            handler_latency: HistogramSnapshot {
                buckets: vec![(0.001, 30), (0.01, 12), (0.1, 0)],
                count: 43,
                sum: Duration::from_millis(75),
            },
            restore_time: HistogramSnapshot {
                buckets: vec![(0.01, 1)],
                count: 1,
                sum: Duration::from_millis(4),
            },
            lag: BTreeMap::new(),
            // Partition 7 is no longer assigned: not shown.
            committed: BTreeMap::from([(("events".to_string(), 0), 20), (("events".to_string(), 7), 3)]),
        };
        let health = HealthSnapshot {
            phase: EnginePhase::Running,
            connected_brokers: vec![1],
            member_state: Some(MemberState::Stable),
            generation: 3,
            member_id: "m".into(),
            assigned: vec![tp(0), tp(1)],
            lag: BTreeMap::from([(("events".to_string(), 0), 0), (("events".to_string(), 1), 12)]),
            last_error: None,
            stopped_partitions: BTreeMap::new(),
            restoring_partitions: BTreeSet::new(),
            since_last_poll: Some(Duration::from_millis(5)),
        };
        let mut producer = ClientStats::default();
        (producer.records_sent, producer.bytes_sent, producer.batches_sent) = (1, 120, 1);
        let mut consumer = ClientStats::default();
        (consumer.records_fetched, consumer.fetch_requests, consumer.connections_opened) = (46, 9, 2);
        Scrape {
            metrics,
            health,
            clients: vec![("admin", ClientStats::default()), ("producer", producer), ("consumer", consumer)],
        }
    }

    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn events_are_a_counter_per_outcome() {
        let text = scrape().encode().unwrap();
        assert!(text.contains("# TYPE klamm_engine_events_total counter\n"), "{text}");
        let l = lines(&text);
        for want in [
            r#"klamm_engine_events_total{outcome="processed"} 40"#,
            r#"klamm_engine_events_total{outcome="failed"} 3"#,
            r#"klamm_engine_events_total{outcome="retried"} 2"#,
            r#"klamm_engine_events_total{outcome="dead_lettered"} 1"#,
            r#"klamm_engine_events_total{outcome="skipped"} 0"#,
            r#"klamm_engine_events_total{outcome="replayed"} 5"#,
            r#"klamm_engine_rebalances_total{event="assigned"} 1"#,
            r#"klamm_engine_rebalances_total{event="lost"} 0"#,
            r#"klamm_engine_transactions_total{outcome="committed"} 7"#,
            r#"klamm_engine_transactions_total{outcome="aborted"} 1"#,
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn histograms_are_cumulative_with_an_infinite_bucket_sum_and_count() {
        let text = scrape().encode().unwrap();
        assert!(text.contains("# TYPE klamm_engine_handler_duration_seconds histogram\n"), "{text}");
        let l = lines(&text);
        for want in [
            r#"klamm_engine_handler_duration_seconds_bucket{le="0.001"} 30"#,
            r#"klamm_engine_handler_duration_seconds_bucket{le="0.01"} 42"#,
            r#"klamm_engine_handler_duration_seconds_bucket{le="0.1"} 42"#,
            r#"klamm_engine_handler_duration_seconds_bucket{le="+Inf"} 43"#,
            "klamm_engine_handler_duration_seconds_sum 0.075",
            "klamm_engine_handler_duration_seconds_count 43",
            r#"klamm_engine_restore_duration_seconds_bucket{le="+Inf"} 1"#,
            "klamm_engine_restore_duration_seconds_count 1",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn per_partition_series_carry_topic_and_partition_and_only_assigned_ones_are_shown() {
        let text = scrape().encode().unwrap();
        let l = lines(&text);
        for want in [
            r#"klamm_engine_partition_lag{topic="events",partition="0"} 0"#,
            r#"klamm_engine_partition_lag{topic="events",partition="1"} 12"#,
            r#"klamm_engine_committed_offset{topic="events",partition="0"} 20"#,
            "klamm_engine_assigned_partitions 2",
            "klamm_engine_restoring_partitions 0",
            "klamm_engine_ready 1",
            "klamm_engine_live 1",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
        assert!(!text.contains(r#"partition="7""#), "{text}");
    }

    #[test]
    fn client_counters_are_shown_by_role() {
        let text = scrape().encode().unwrap();
        let l = lines(&text);
        for want in [
            r#"klamm_client_connections_opened_total{client="admin"} 0"#,
            r#"klamm_client_connections_opened_total{client="consumer"} 2"#,
            "klamm_producer_records_sent_total 1",
            "klamm_producer_bytes_sent_total 120",
            "klamm_producer_batches_sent_total 1",
            "klamm_consumer_records_fetched_total 46",
            "klamm_consumer_fetch_requests_total 9",
        ] {
            assert!(l.contains(&want), "{want} missing:\n{text}");
        }
        // Every series line is `name{labels} value` or `name value`, with a number.
        for line in l {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value == "+Inf" || value.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn a_bound_endpoint_tells_its_port() {
        let e = Endpoint::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        assert_ne!(e.addr().port(), 0);
        let taken = Endpoint::bind(e.addr()).unwrap_err();
        assert_eq!(taken.kind(), &ErrorKind::Config);
        assert!(taken.to_string().contains("KAFKA_ENGINE_HTTP_ADDR"), "{taken}");
    }
}
