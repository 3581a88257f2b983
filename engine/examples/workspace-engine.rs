//! `workspace-engine`: consumes JSON workspace events into one state file per workspace.
//!
//! Events are `{"workspace_id": "...", "type": "...", ...}` keyed by workspace id. Each
//! workspace's state, `$KAFKA_STATE_DIR/<workspace_id>.json`, holds `workspace_id`,
//! `partition`, `offsets` (the next offset to consume, per source partition), `events` (how
//! many were applied) and `seqs` (the `seq` number of each applied event that has one, in the
//! order applied). An event of type `poison` fails permanently (to the dead-letter topic);
//! `flaky` fails transiently twice, then succeeds; `hang` never returns (a handler stuck on a
//! call that does not answer, for shutdown tests); a value that is not JSON is a permanent
//! error.
//!
//! With `KAFKA_STATE_STORE=kafka` the same documents are kept in the changelog topic
//! `<group id>-workspaces-changelog` instead of files (several replicas, no shared disk).
//!
//! With `WORKSPACE_ENGINE_PUBLISH_TOPIC` set, each applied event publishes one `event-applied`
//! event to that topic (`HandlerContext::publish`), keyed by the workspace id, with the
//! input's topic, partition, offset and `seq`. With `KAFKA_ENGINE_EXACTLY_ONCE=true` (and the
//! Kafka store) those events, the workspace writes and the input offsets commit together.
//!
//! Settings come from `KAFKA_*` variables (see `EngineConfig::from_env`). The HTTP endpoint
//! (`/healthz`, `/readyz`, `/metrics`) is on, at `127.0.0.1:9464` unless
//! `KAFKA_ENGINE_HTTP_ADDR` says otherwise (`off` turns it off; port 0 picks a free port, logged
//! as `http endpoint listening addr=...`). Besides them,
//! `WORKSPACE_ENGINE_DELAY_MS` makes each event take that long (for demos and tests that stop
//! the engine part way). Logs go to stderr (`RUST_LOG` filters them; default `info`). SIGINT or
//! SIGTERM shuts down gracefully; the engine's health snapshot, as a probe would see it at that
//! moment, is logged first (`health at shutdown`).

use std::time::Duration;

use klamm_engine::{
    Engine, EngineConfig, Handler, HandlerContext, HandlerError, HandlerExt, HealthSnapshot, LoggingLayer,
    Message, TracingLayer,
};
use serde::Deserialize;

/// Where the example serves `/healthz`, `/readyz` and `/metrics` unless
/// `KAFKA_ENGINE_HTTP_ADDR` is set (9464 is the port Prometheus exporters commonly take for
/// application metrics).
const DEFAULT_HTTP_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 9464));

#[derive(Deserialize)]
struct Event {
    workspace_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    seq: Option<u64>,
}

struct Apply {
    delay: Duration,
    publish_topic: Option<String>,
}

impl Handler for Apply {
    async fn handle(&self, msg: &Message, ctx: &mut HandlerContext) -> Result<(), HandlerError> {
        let event: Event = msg.decode_value()?;
        let attempt = ctx.attempt();
        let key =
            msg.workspace_id().ok_or_else(|| HandlerError::permanent("event has no workspace id key"))?;
        if let Some(id) = &event.workspace_id {
            if id != key {
                return Err(HandlerError::permanent(format!(
                    "workspace_id {id:?} does not match key {key:?}"
                )));
            }
        }
        match event.kind.as_deref() {
            Some("poison") => return Err(HandlerError::permanent("poison event")),
            Some("flaky") if attempt < 2 => {
                return Err(HandlerError::transient(format!("flaky event, attempt {attempt}")))
            }
            Some("hang") => {
                tracing::info!(workspace = key, offset = msg.offset, "hanging");
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let ws = ctx.workspace().ok_or_else(|| HandlerError::permanent("event has no workspace"))?;
        let events = ws.data.get("events").and_then(|v| v.as_u64()).unwrap_or(0) + 1;
        ws.data.insert("events".into(), events.into());
        if let Some(seq) = event.seq {
            let seqs = ws.data.entry("seqs").or_insert_with(|| serde_json::Value::Array(Vec::new()));
            if let Some(list) = seqs.as_array_mut() {
                list.push(seq.into());
            }
        }
        if let Some(topic) = &self.publish_topic {
            let applied = serde_json::json!({
                "workspace_id": key, "topic": &*msg.topic, "partition": msg.partition,
                "offset": msg.offset, "seq": event.seq, "events": events,
            });
            let out = ctx
                .event(topic.as_str(), "event-applied")
                .key(key.to_string())
                .json(&applied)
                .and_then(|e| e.build())
                .map_err(|e| HandlerError::permanent("cannot build the published event").with_source(e))?;
            ctx.publish(out);
        }
        tracing::debug!(workspace = key, offset = msg.offset, events, "applied");
        Ok(())
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
            tracing::error!("cannot install signal handlers; stopping");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("interrupt received");
    }
}

/// Logs what a liveness or readiness probe would see now.
fn log_health(h: &HealthSnapshot) {
    let assigned: Vec<String> =
        h.assigned.iter().map(|tp| format!("{}-{}", tp.topic, tp.partition)).collect();
    let lag: Vec<String> = h.lag.iter().map(|((t, p), l)| format!("{t}-{p}={l}")).collect();
    let last_error = h.last_error.as_ref().map(|e| format!("{} at {}", e.message, e.at_rfc3339()));
    let stopped: Vec<String> =
        h.stopped_partitions.iter().map(|((t, p), why)| format!("{t}-{p}: {why}")).collect();
    tracing::info!(
        live = h.is_live(),
        ready = h.is_ready(),
        phase = h.phase.as_str(),
        member_state = ?h.member_state,
        generation = h.generation,
        connected_brokers = ?h.connected_brokers,
        assigned = ?assigned,
        lag = ?lag,
        stopped = ?stopped,
        last_error = ?last_error,
        "health at shutdown"
    );
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let run = async {
        let mut config = EngineConfig::from_env()?;
        if std::env::var_os("KAFKA_ENGINE_HTTP_ADDR").is_none() {
            config.http_addr = Some(DEFAULT_HTTP_ADDR);
        }
        let delay = match std::env::var("WORKSPACE_ENGINE_DELAY_MS") {
            Ok(v) => v.trim().parse().map(Duration::from_millis).map_err(|_| {
                klamm::Error::with_message(
                    klamm::ErrorKind::Config,
                    format!("WORKSPACE_ENGINE_DELAY_MS: {v:?} is not a number of milliseconds"),
                )
            })?,
            Err(_) => Duration::ZERO,
        };
        let publish_topic =
            std::env::var("WORKSPACE_ENGINE_PUBLISH_TOPIC").ok().filter(|t| !t.trim().is_empty());
        let handler = Apply { delay, publish_topic }.with(TracingLayer).with(LoggingLayer);
        let engine = Engine::builder().config(config).handler(handler).build()?;
        let health = engine.health();
        engine
            .run(async move {
                shutdown_signal().await;
                log_health(&health.snapshot());
            })
            .await
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(run);
    // A handler that blocks its thread would hold the runtime's drop; the engine has saved
    // and committed what it could by now.
    rt.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "workspace-engine failed");
            std::process::ExitCode::FAILURE
        }
    }
}
