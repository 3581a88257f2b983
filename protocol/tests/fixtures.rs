//! klamm-protocol reads and writes real clients' traffic byte for byte.
//!
//! `fixtures/librdkafka/` and `fixtures/java/` hold frames (without their 4-byte size prefix)
//! that librdkafka and Apache Kafka's Java client sent, and that an Apache Kafka broker
//! answered, recorded by `scripts/record-fixtures` (see `tests/tests/record_fixtures.rs` in
//! klamm-tests): `<ApiName>-v<version>-<n>-request.bin` and `...-response.bin`. For every pair:
//!
//! - the request decodes with `decode_request_frame`, its header names the API and version of
//!   the file name, and `encode_request_frame` gives back the very same bytes;
//! - the response decodes with `decode_response_frame` (API and version from the request),
//!   answers the request's correlation id, and `encode_response_frame` gives back the very same
//!   bytes;
//! - every record batch of a Produce request or a Fetch response decodes with `RecordBatches`,
//!   checksums verified, and so does each of its records; each client's fixtures hold at least
//!   one compressed batch with records in a Produce request and at least one in a Fetch
//!   response.
//!
//! The suite fails when the fixtures are missing, or when a client lacks any API a producing,
//! consuming, group-joining client sends ([`REQUIRED`]), or the Java client any transaction API
//! ([`JAVA_TRANSACTIONS`]). No broker is needed.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use klamm_protocol::api::any::{encode_request_frame, encode_response_frame, AnyRequest, AnyResponse};
use klamm_protocol::compression::Compression;
use klamm_protocol::records::RecordBatches;
use klamm_protocol::{decode_request_frame, decode_response_frame, ApiKey};

/// The clients whose traffic was recorded, by directory.
const CLIENTS: [&str; 2] = ["librdkafka", "java"];

/// The APIs each client must have fixtures of.
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

/// The transaction APIs the Java client's fixtures must have too (its scenario runs a
/// transaction; librdkafka's does not).
const JAVA_TRANSACTIONS: [ApiKey; 4] =
    [ApiKey::ADD_PARTITIONS_TO_TXN, ApiKey::ADD_OFFSETS_TO_TXN, ApiKey::END_TXN, ApiKey::TXN_OFFSET_COMMIT];

/// One recorded request and its response.
struct Fixture {
    client: &'static str,
    /// `<ApiName>-v<version>-<n>`.
    stem: String,
    request: Bytes,
    response: Bytes,
}

impl Fixture {
    /// The API name and version the file name gives.
    fn named(&self) -> (&str, i16) {
        let mut parts = self.stem.rsplitn(3, '-');
        let (_n, version, name) = (parts.next(), parts.next(), parts.next());
        let version = version.and_then(|v| v.strip_prefix('v')).and_then(|v| v.parse().ok());
        match (name, version) {
            (Some(name), Some(version)) => (name, version),
            _ => panic!("{}/{}: not <ApiName>-v<version>-<n>", self.client, self.stem),
        }
    }
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

/// Every fixture pair, per client directory; panics on a request without its response.
fn fixtures() -> Vec<Fixture> {
    let mut out = Vec::new();
    for client in CLIENTS {
        let dir = fixtures_dir().join(client);
        let Ok(entries) = fs::read_dir(&dir) else { continue };
        let mut names: Vec<String> =
            entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        for name in &names {
            let Some(stem) = name.strip_suffix("-request.bin") else {
                assert!(name.ends_with("-response.bin"), "{client}/{name}: not a fixture file");
                assert!(
                    names.contains(&name.replace("-response.bin", "-request.bin")),
                    "{client}/{name}: a response without its request"
                );
                continue;
            };
            let response = dir.join(format!("{stem}-response.bin"));
            let response =
                fs::read(&response).unwrap_or_else(|e| panic!("{client}/{stem}: no response: {e}"));
            let request = fs::read(dir.join(name)).unwrap();
            out.push(Fixture {
                client,
                stem: stem.to_owned(),
                request: Bytes::from(request),
                response: Bytes::from(response),
            });
        }
    }
    out
}

/// Fails with every message in `failures`, one per line.
fn assert_none(what: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{} {what}:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_client_has_every_api() {
    let all = fixtures();
    assert!(
        !all.is_empty(),
        "no fixtures in {}: run scripts/record-fixtures and commit what it writes",
        fixtures_dir().display()
    );
    let mut missing = Vec::new();
    for client in CLIENTS {
        let extra: &[ApiKey] = if client == "java" { &JAVA_TRANSACTIONS } else { &[] };
        for key in REQUIRED.iter().chain(extra) {
            let name = key.name().unwrap();
            if !all.iter().any(|f| f.client == client && f.named().0 == name) {
                missing.push(format!("{client}: {name}"));
            }
        }
    }
    assert_none("APIs without fixtures", missing);
}

#[test]
fn requests_re_encode_to_the_same_bytes() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let at = format!("{}/{}-request.bin", f.client, f.stem);
        let (header, body) = match decode_request_frame(f.request.clone()) {
            Ok(decoded) => decoded,
            Err(e) => {
                failures.push(format!("{at}: does not decode: {e}"));
                continue;
            }
        };
        let (name, version) = f.named();
        if (header.api_key.name(), header.api_version) != (Some(name), version) {
            failures.push(format!("{at}: the header says {:?} v{}", header.api_key, header.api_version));
        }
        match encode_request_frame(&header, &body) {
            Ok(again) if again[..] == f.request[..] => {}
            Ok(again) => failures.push(format!("{at}: {}", first_difference(&f.request, &again))),
            Err(e) => failures.push(format!("{at}: does not encode: {e}")),
        }
    }
    assert_none("request fixtures do not round-trip", failures);
}

#[test]
fn responses_re_encode_to_the_same_bytes() {
    let mut failures = Vec::new();
    for f in fixtures() {
        let at = format!("{}/{}-response.bin", f.client, f.stem);
        let (request, _) = decode_request_frame(f.request.clone())
            .unwrap_or_else(|e| panic!("{}/{}-request.bin does not decode: {e}", f.client, f.stem));
        let version = request.api_version;
        let (header, body) = match decode_response_frame(request.api_key, version, f.response.clone()) {
            Ok(decoded) => decoded,
            Err(e) => {
                failures.push(format!("{at}: does not decode: {e}"));
                continue;
            }
        };
        if header.correlation_id != request.correlation_id {
            failures.push(format!(
                "{at}: answers correlation id {}, the request has {}",
                header.correlation_id, request.correlation_id
            ));
        }
        match encode_response_frame(version, &header, &body) {
            Ok(again) if again[..] == f.response[..] => {}
            Ok(again) => failures.push(format!("{at}: {}", first_difference(&f.response, &again))),
            Err(e) => failures.push(format!("{at}: does not encode: {e}")),
        }
    }
    assert_none("response fixtures do not round-trip", failures);
}

/// Batches and records seen, per codec name.
type CodecCounts = BTreeMap<&'static str, (usize, usize)>;

/// Decodes every batch and record of `data` (checksums verified) and counts them in `into`.
fn read_batches(at: &str, data: Bytes, into: &mut CodecCounts) -> Result<(), String> {
    for batch in RecordBatches::new(data) {
        let batch = batch.map_err(|e| format!("{at}: a batch does not decode: {e}"))?;
        let mut records = 0;
        for record in batch.records().map_err(|e| format!("{at}: batch at {}: {e}", batch.base_offset()))? {
            let record =
                record.map_err(|e| format!("{at}: a record of the batch at {}: {e}", batch.base_offset()))?;
            if record.headers().iter().any(|h| std::str::from_utf8(h.key).is_err()) {
                return Err(format!("{at}: record {} has a header key that is not UTF-8", record.offset()));
            }
            records += 1;
        }
        if records != batch.record_count() as usize {
            return Err(format!(
                "{at}: batch at {} holds {records} of {} records",
                batch.base_offset(),
                batch.record_count()
            ));
        }
        let entry = into.entry(batch.compression().name()).or_default();
        entry.0 += 1;
        entry.1 += records;
    }
    Ok(())
}

#[test]
fn record_batches_in_produce_and_fetch_decode() {
    let mut failures = Vec::new();
    // Per client: what the Produce requests and the Fetch responses held.
    let mut produced: BTreeMap<&str, CodecCounts> = BTreeMap::new();
    let mut fetched: BTreeMap<&str, CodecCounts> = BTreeMap::new();
    for f in fixtures() {
        let (header, request) = decode_request_frame(f.request.clone()).unwrap();
        match request {
            AnyRequest::Produce(produce) => {
                let at = format!("{}/{}-request.bin", f.client, f.stem);
                let into = produced.entry(f.client).or_default();
                for partition in produce.topic_data.iter().flat_map(|t| &t.partition_data) {
                    let data = partition.records.clone().unwrap_or_default();
                    if let Err(e) = read_batches(&at, data, into) {
                        failures.push(e);
                    }
                }
            }
            AnyRequest::Fetch(_) => {
                let at = format!("{}/{}-response.bin", f.client, f.stem);
                let (_, response) =
                    decode_response_frame(header.api_key, header.api_version, f.response).unwrap();
                let AnyResponse::Fetch(fetch) = response else { unreachable!("a Fetch response") };
                let into = fetched.entry(f.client).or_default();
                for partition in fetch.responses.iter().flat_map(|t| &t.partitions) {
                    let data = partition.records.clone().unwrap_or_default();
                    if let Err(e) = read_batches(&at, data, into) {
                        failures.push(e);
                    }
                }
            }
            _ => {}
        }
    }
    assert_none("record data fixtures do not decode", failures);
    // The scenarios produce compressed batches: the fixtures must carry some, both ways.
    for client in CLIENTS {
        for (what, seen) in [("Produce requests", &produced), ("Fetch responses", &fetched)] {
            let counts = seen.get(client).cloned().unwrap_or_default();
            let compressed =
                counts.iter().any(|(codec, (_, records))| *codec != Compression::None.name() && *records > 0);
            assert!(compressed, "{client}: no compressed batch with records in the {what} ({counts:?})");
        }
    }
}

/// Where `got` first differs from `expected`, with a little context.
fn first_difference(expected: &[u8], got: &[u8]) -> String {
    let at = expected.iter().zip(got).position(|(a, b)| a != b).unwrap_or(expected.len().min(got.len()));
    let window = |b: &[u8]| {
        let end = (at + 16).min(b.len());
        b[at.saturating_sub(8)..end].iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
    };
    format!(
        "re-encodes to {} bytes instead of {}, first difference at byte {at}: expected [{}], got [{}]",
        got.len(),
        expected.len(),
        window(expected),
        window(got)
    )
}
