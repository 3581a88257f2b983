//! Records the codec fixtures in `protocol/tests/fixtures/`: the request frames librdkafka and
//! the Java client send and the response frames Apache Kafka returns, for every API a
//! producing, consuming, group-joining client uses.
//!
//! A tool, not part of the normal suite: the tests are `#[ignore]`d and `scripts/record-fixtures`
//! runs them. Each client runs its fixture scenario (see `run_fixture_scenario`) against a fresh
//! Kafka broker through client -> [`VersionCapProxy`] -> [`RecordingProxy`] -> broker, the
//! broker advertising the first proxy's port so that every connection stays on the proxies. The
//! cap keeps the clients to versions klamm-protocol implements; the recording holds the frames
//! exactly as the client and the broker sent them.
//!
//! A recording fails if the scenario did not make the client send each API of [`REQUIRED`].
//! Then, per client directory (`librdkafka/`, `java/`), the old `.bin` files are replaced by
//! at most two pairs per API and version (the first one, and the largest,
//! which for Produce and Fetch is the one with the most records), skipping frames over
//! [`MAX_FRAME`] bytes and APIs the codec does not implement:
//! `<ApiName>-v<version>-<n>-request.bin` and `...-response.bin`, each a frame without its
//! 4-byte size prefix. `protocol/tests/fixtures.rs` checks them.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use klamm_protocol::api::any::IMPLEMENTED;
use klamm_protocol::{decode_request_frame, decode_response_frame, ApiKey};
use klamm_tests::{
    run_fixture_scenario, Broker, BrokerKind, PeerKind, RecordedFrame, RecordingProxy, VersionCapProxy,
};

/// The APIs each client must have sent for a recording to count.
const REQUIRED: [ApiKey; 13] = [
    ApiKey::API_VERSIONS,
    ApiKey::METADATA,
    ApiKey::CREATE_TOPICS,
    ApiKey::PRODUCE,
    ApiKey::FETCH,
    ApiKey::LIST_OFFSETS,
    ApiKey::FIND_COORDINATOR,
    ApiKey::JOIN_GROUP,
    ApiKey::SYNC_GROUP,
    ApiKey::HEARTBEAT,
    ApiKey::OFFSET_COMMIT,
    ApiKey::OFFSET_FETCH,
    ApiKey::INIT_PRODUCER_ID,
];

/// Frames larger than this are not kept, to keep the repository small.
const MAX_FRAME: usize = 64 * 1024;

/// Where the fixtures go: `$KLAMM_FIXTURES_DIR`, else the protocol crate's `tests/fixtures`.
fn fixtures_dir() -> PathBuf {
    match std::env::var_os("KLAMM_FIXTURES_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("protocol").join("tests").join("fixtures")
        }
    }
}

/// The frames to keep: per (API, version), the first pair and the largest, of APIs the codec
/// implements, each side at most [`MAX_FRAME`] bytes.
fn select(frames: &[RecordedFrame]) -> BTreeMap<(String, i16), Vec<&RecordedFrame>> {
    let mut groups: BTreeMap<(String, i16), Vec<&RecordedFrame>> = BTreeMap::new();
    for f in frames {
        let Some(response) = &f.response else { continue };
        if !IMPLEMENTED.iter().any(|(key, _, _)| *key == f.api_key)
            || f.request.len() > MAX_FRAME
            || response.len() > MAX_FRAME
        {
            continue;
        }
        groups.entry((f.api_name(), f.api_version)).or_default().push(f);
    }
    let size = |f: &RecordedFrame| f.request.len() + f.response.as_ref().map_or(0, |r| r.len());
    for group in groups.values_mut() {
        let first = group[0];
        let largest = group.iter().copied().max_by_key(|f| size(f)).expect("groups are not empty");
        *group = if std::ptr::eq(first, largest) { vec![first] } else { vec![first, largest] };
    }
    groups
}

/// Replaces the `.bin` files of `dir` by the selected frames; returns the names written.
fn save(dir: &Path, selected: &BTreeMap<(String, i16), Vec<&RecordedFrame>>) -> Vec<String> {
    fs::create_dir_all(dir).unwrap();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bin") {
            fs::remove_file(&path).unwrap();
        }
    }
    let mut written = Vec::new();
    for ((name, version), frames) in selected {
        for (n, f) in frames.iter().enumerate() {
            let stem = format!("{name}-v{version}-{}", n + 1);
            fs::write(dir.join(format!("{stem}-request.bin")), &f.request).unwrap();
            fs::write(dir.join(format!("{stem}-response.bin")), f.response.as_ref().unwrap()).unwrap();
            written.push(stem);
        }
    }
    written
}

/// The transaction APIs the Java scenario must send too (librdkafka's runs no transaction).
const JAVA_TRANSACTIONS: [ApiKey; 4] =
    [ApiKey::ADD_PARTITIONS_TO_TXN, ApiKey::ADD_OFFSETS_TO_TXN, ApiKey::END_TXN, ApiKey::TXN_OFFSET_COMMIT];

/// Runs `client`'s scenario against a fresh broker formatted with `features`, through the
/// version cap and the recorder; returns the frames.
fn run_recorded(
    client: PeerKind,
    dir_name: &str,
    compression: &str,
    features: &[&str],
) -> Vec<RecordedFrame> {
    let cap = VersionCapProxy::bind().unwrap();
    let mut builder = Broker::builder(BrokerKind::Kafka).advertised_port(cap.port());
    for feature in features {
        builder = builder.feature(feature);
    }
    let broker = builder.start().unwrap();
    let recorder = RecordingProxy::start(broker.addr()).unwrap();
    let recorder_addr: SocketAddr = recorder.bootstrap().parse().unwrap();
    cap.forward_to(recorder_addr);

    let summary =
        run_fixture_scenario(client, &cap.bootstrap(), "klamm-fixtures", "klamm-fixtures-group", compression)
            .unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{dir_name} scenario {features:?}: {summary}");
    recorder.frames()
}

fn record(client: PeerKind, dir_name: &str, compression: &str) {
    let mut frames = run_recorded(client, dir_name, compression, &[]);
    if client == PeerKind::Java {
        // Again under transactions version 1, where the Java client adds partitions and offsets
        // to its transaction explicitly (AddPartitionsToTxn, AddOffsetsToTxn) and uses older
        // EndTxn and TxnOffsetCommit versions; the first run had version 2 (the 4.1 default).
        frames.extend(run_recorded(client, dir_name, compression, &["transaction.version=1"]));
    }
    // A request the broker has not answered yet (a fetch waiting for data) is not a fixture.
    let mut seen: Vec<(String, i16)> = frames.iter().map(|f| (f.api_name(), f.api_version)).collect();
    seen.sort();
    seen.dedup();
    let extra: &[ApiKey] = if client == PeerKind::Java { &JAVA_TRANSACTIONS } else { &[] };
    for key in REQUIRED.iter().chain(extra).copied() {
        assert!(
            frames.iter().any(|f| f.api_key == key),
            "{dir_name}: the scenario sent no {}; it sent {seen:?}",
            key.name().unwrap()
        );
    }

    let selected = select(&frames);
    // Report (not fail on) what klamm-protocol cannot read: `protocol/tests/fixtures.rs` is the
    // judge, and the fixture is what shows the problem.
    for f in selected.values().flatten() {
        if let Err(e) = decode_request_frame(f.request.clone()) {
            eprintln!("{dir_name}: {} v{} request does not decode: {e}", f.api_name(), f.api_version);
        }
        if let Err(e) = decode_response_frame(f.api_key, f.api_version, f.response.clone().unwrap()) {
            eprintln!("{dir_name}: {} v{} response does not decode: {e}", f.api_name(), f.api_version);
        }
    }
    let dir = fixtures_dir().join(dir_name);
    let written = save(&dir, &selected);
    eprintln!("{dir_name}: {} fixture pairs in {}: {written:?}", written.len(), dir.display());
}

#[test]
#[ignore = "records fixtures: run by scripts/record-fixtures"]
fn record_librdkafka() {
    record(PeerKind::Rdkafka, "librdkafka", "zstd");
}

#[test]
#[ignore = "records fixtures: run by scripts/record-fixtures"]
fn record_java() {
    record(PeerKind::Java, "java", "snappy");
}
