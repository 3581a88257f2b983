//! The test bed: real brokers (Apache Kafka, tansu) and real peer clients (librdkafka, the Java
//! client) for the integration tests in `tests/tests/`.
//!
//! - [`Broker`]: starts a broker on a free 127.0.0.1 port in a fresh directory and stops it when
//!   dropped, or when the test process dies. [`Broker::shared_kafka`] is one broker per test
//!   binary, for tests that only need *a* broker.
//! - [`Cluster`]: several Kafka nodes (3 by default, each broker and controller) with per-node
//!   SIGKILL, SIGTERM, SIGSTOP/SIGCONT and restart, for failover tests.
//! - [`Peer`]: runs a third-party client to produce or consume [`PeerRecord`]s.
//! - [`RawConnection`]: a blocking connection that sends one `klamm-protocol` request at the
//!   version a test chooses. [`NegotiatedConnection`] wraps one with the broker's ApiVersions
//!   and sends each request at the highest version both sides implement.
//! - [`FaultProxy`]: the one TCP proxy between clients and a broker. It forwards Kafka frames,
//!   shows them to [`FrameHook`]s, and cuts, stalls or refuses connections on command; it also
//!   models a broker that is down at start. [`RecordingProxy`] is one with a
//!   [`Recorder`], which records every frame to capture fixtures; [`VersionCapProxy`] is one
//!   with a [`VersionCap`], which keeps clients to versions the codec implements.
//!
//! - [`GroupMember`]: a consumer-group member as a child process: the `group-consume` example or
//!   either peer's `group-member` command, all with the same flags and output
//!   ([`example_binary`] builds and finds any example program).
//!
//! - [`http_get`]: a plain HTTP GET, to read the engine's `/healthz`, `/readyz` and `/metrics`
//!   ([`metric_value`] reads one series of the Prometheus text).
//!
//! - [`Pki`]: a throwaway CA with broker and client certificates, and the Kafka listener and
//!   peer settings that use them, for the TLS tests.
//!
//! Everything runs from the cache `scripts/install-test-deps` fills; when something is missing
//! the harness fails with a message naming that script. See `docs/testing.md`.
//!
//! ```no_run
//! use klamm_tests::{unique_topic, Broker, ConsumeOptions, Peer, PeerRecord, ProduceOptions};
//!
//! let broker = Broker::shared_kafka();
//! let topic = unique_topic("example");
//! let peer = Peer::rdkafka();
//! peer.create_topic(&broker.bootstrap(), &topic, 1);
//! let sent = vec![PeerRecord::new("k", "v").header("h", "x")];
//! peer.produce(&broker.bootstrap(), &topic, &ProduceOptions::default(), &sent);
//! let got = peer.consume(&broker.bootstrap(), &topic, 1, &ConsumeOptions::default());
//! assert_eq!(got[0].content(), sent[0].content());
//! ```
#![warn(missing_docs, unreachable_pub)]
#![forbid(unsafe_code)]

mod broker;
mod cluster;
mod example;
mod fixture_scenario;
mod http_get;
mod install;
mod negotiated;
mod peer;
mod pki;
mod ports;
mod proxy;
mod raw_connection;
mod raw_records;
mod recording;
mod soak;
mod topics;
mod transactional_copy;
mod version_cap;

pub use broker::{Broker, BrokerBuilder, BrokerKind};
pub use cluster::{Cluster, ClusterBuilder, PartitionState};
pub use example::{
    assert_not_revoked, example_binary, kept, wait_for_exact_cover, GroupMember, MemberKind, MemberLog,
};
pub use fixture_scenario::run_fixture_scenario;
pub use http_get::{http_get, metric_value, HttpAnswer};
pub use install::{cache_dir, Component};
pub use negotiated::{api_versions_request, leader_address, ApiVersionTable, NegotiatedConnection};
pub use peer::{
    Acks, CommittedOffset, Compression, ConsumeOptions, Delivery, Header, Isolation, Partitioner, Peer,
    PeerKind, PeerRecord, ProduceOptions, Transaction,
};
pub use pki::{BrokerCertificate, Pki, CLIENT_KEY_PASSWORD};
pub use ports::free_port;
pub use proxy::{CutPoint, Direction, FaultProxy, FrameHook, PeriodicCut};
pub use raw_connection::{RawConnection, RawError, DEFAULT_READ_TIMEOUT};
pub use raw_records::{build_batch, fetch_all, peer_record, records_of, Fetched};
pub use recording::{RecordedFrame, Recorder, RecordingProxy};
pub use soak::{
    reliable_producer_config, run as run_soak, Fault, FaultPlan, SoakOptions, SoakProducer, SoakReport,
};
pub use topics::{create_topic, produce_keyed, shared_topic_and_group};
pub use transactional_copy::{copy_defects, source_offset, Copier, CopierExit};
pub use version_cap::{cap_api_versions, VersionCap, VersionCapProxy};

/// The README's code, compiled (and, where it needs no broker, run) as doc tests, so the
/// snippets a library user copies stay in step with the API.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeSnippets;

/// The harness's error: a message for the test's panic, whatever the cause.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Logs the test's clients to stderr when `KLAMM_TEST_LOG` holds a `tracing` filter (say
/// `klamm::producer=debug`), to see what a failing test's clients did; nothing otherwise.
/// Safe to call from every test of a file.
pub fn log_to_stderr_if_asked() {
    if let Ok(filter) = std::env::var("KLAMM_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    }
}

/// A topic name no other test (in this or another process) uses: `<prefix>-<pid>-<n>-<nanos>`.
pub fn unique_topic(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{}-{nanos:x}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
