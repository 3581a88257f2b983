//! TLS against Apache Kafka (`security.protocol=SSL`), with certificates made by the test run
//! (`klamm_tests::Pki`): Klamm producing and consuming, mutual TLS (a client certificate, its
//! key encrypted with a password, the Java client's PEM key store), librdkafka and the Java
//! client reading what Klamm wrote over TLS and the reverse, TLS 1.2 and 1.3 against the JDK,
//! and every way a handshake goes wrong: an untrusted CA, a host name mismatch (and accepted
//! with verification off), an expired certificate, a missing client certificate, TLS against a
//! plaintext listener and plaintext against a TLS listener, a key file that does not parse.
//! Each failure must be a typed [`ErrorKind::Tls`] within seconds, never a retry loop. Over
//! TLS also: every compression codec, a consumer group that commits and resumes, and admin.
//!
//! One broker for the whole file, with a listener per case:
//! - `SSL`: the good certificate, TLS 1.2 and 1.3, no client authentication;
//! - `MTLS`: the same, client certificate required;
//! - `OTHERNAME`: a certificate for `kafka.invalid` only;
//! - `EXPIRED`: an expired certificate;
//! - `TLS12`: TLS 1.2 only;
//! - `SASLSSL`: SASL (PLAIN and SCRAM-SHA-512) inside TLS, as hosted clusters run it.
//!
//! `scripts/test` runs this file with the default crypto provider (`ring`) and again with
//! `--features pure-rust` (`rustls-graviola`).

mod engine_common;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::compression::Compression;
use klamm::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, CreateTopicsOptions, ErrorKind, NewTopic,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, TlsConfig, TlsFailure, TopicPartition,
};
use klamm_group::{GroupConfig, GroupConsumer};
use klamm_tests::{
    unique_topic, Broker, BrokerCertificate, BrokerKind, ConsumeOptions, NegotiatedConnection, Peer,
    PeerKind, PeerRecord, Pki, ProduceOptions, CLIENT_KEY_PASSWORD,
};

/// The broker's PLAIN users on the `SASLSSL` listener.
const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     username=\"admin\" password=\"admin-secret\" user_alice=\"alice-secret\";";

/// Records per round trip.
const COUNT: usize = 2_000;
/// A failing connection must say why within this.
const FAIL_FAST: Duration = Duration::from_secs(10);

struct Setup {
    pki: Pki,
    broker: Broker,
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let pki = Pki::new().expect("test certificates");
        let mut b = Broker::builder(BrokerKind::Kafka).partitions(2);
        b = pki.ssl_listener(b, "SSL", BrokerCertificate::Good, false, None);
        b = pki.ssl_listener(b, "MTLS", BrokerCertificate::Good, true, None);
        b = pki.ssl_listener(b, "OTHERNAME", BrokerCertificate::OtherName, false, None);
        b = pki.ssl_listener(b, "EXPIRED", BrokerCertificate::Expired, false, None);
        b = pki.ssl_listener(b, "TLS12", BrokerCertificate::Good, false, Some("TLSv1.2"));
        b = pki
            .tls_listener(b, "SASLSSL", "SASL_SSL", BrokerCertificate::Good, false, None)
            .config("listener.name.saslssl.sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512")
            .config("listener.name.saslssl.plain.sasl.jaas.config", PLAIN_JAAS)
            .config(
                "listener.name.saslssl.scram-sha-512.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            );
        let broker = b.start().expect("a Kafka broker with SSL listeners");
        Setup { pki, broker }
    })
}

/// Runs blocking harness code (peers, raw connections) off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task panicked")
}

/// A new 2-partition topic, made over the plaintext listener.
async fn new_topic(prefix: &str) -> String {
    let topic = unique_topic(prefix);
    let (addr, t) = (setup().broker.addr(), topic.clone());
    blocking(move || NegotiatedConnection::connect(addr).create_topic(&t, 2)).await;
    topic
}

/// Client properties for the `listener` with TLS trusting the test CA, plus `extra`.
fn client_config(listener: &str, extra: &[(&str, String)]) -> ClientConfig {
    let s = setup();
    let mut props = vec![
        ("bootstrap.servers", s.broker.listener_addr(listener)),
        ("security.protocol", "SSL".to_owned()),
        ("ssl.ca.location", s.pki.ca().display().to_string()),
        ("socket.connection.setup.timeout.ms", "5000".to_owned()),
        ("request.timeout.ms", "5000".to_owned()),
    ];
    props.extend(extra.iter().cloned());
    ClientConfig::from_properties(props).expect("valid TLS properties")
}

fn producer_config(client: ClientConfig) -> ProducerConfig {
    let mut config = ProducerConfig::default();
    config.client = client;
    config
}

fn client_certificate() -> Vec<(&'static str, String)> {
    let pki = &setup().pki;
    vec![
        ("ssl.certificate.location", pki.client_certificate().display().to_string()),
        ("ssl.key.location", pki.client_key().display().to_string()),
    ]
}

fn record(i: usize) -> PeerRecord {
    PeerRecord::new(format!("key-{i}"), format!("value {i} over TLS")).header("n", i.to_string())
}

/// Klamm produces `COUNT` records to `topic` with `client`.
async fn klamm_produce(client: ClientConfig, topic: &str) -> Vec<PeerRecord> {
    let producer = Producer::new(producer_config(client)).expect("producer");
    let sent: Vec<PeerRecord> = (0..COUNT).map(record).collect();
    let mut deliveries = Vec::with_capacity(COUNT);
    for r in &sent {
        let mut p = ProducerRecord::new(topic, r.value.clone().expect("a value"));
        p.key = r.key.clone().map(Bytes::from);
        p.headers = r
            .headers
            .iter()
            .map(|(k, v)| klamm::Header::with_value(k.clone(), v.clone().map(Bytes::from)))
            .collect();
        deliveries.push(producer.send(p).await.expect("send"));
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        d.await.unwrap_or_else(|e| panic!("delivery of record {i}: {e}"));
    }
    assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
    sent
}

/// Klamm reads `count` records of both partitions of `topic` with `client`.
async fn klamm_consume(client: ClientConfig, topic: &str, count: usize) -> Vec<PeerRecord> {
    let config = ConsumerConfig::with_client_config(client)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign((0..2).map(|p| TopicPartition::new(topic, p)));
    let mut out = Vec::with_capacity(count);
    let started = Instant::now();
    while out.len() < count && started.elapsed() < Duration::from_secs(30) {
        for r in consumer.poll(Duration::from_millis(200)).await.expect("poll") {
            let mut p = PeerRecord::new(
                r.key.clone().unwrap_or_default().to_vec(),
                r.value.clone().unwrap_or_default().to_vec(),
            );
            for h in &r.headers {
                p = p.header(
                    std::str::from_utf8(&h.key).expect("UTF-8 name"),
                    h.value.clone().unwrap_or_default().to_vec(),
                );
            }
            out.push(p);
        }
    }
    consumer.close(Duration::from_secs(5)).await.expect("close");
    out
}

/// Checks that `got` holds exactly the records of `sent`, in any order across partitions.
fn same_records(ctx: &str, sent: &[PeerRecord], got: &[PeerRecord]) {
    assert_eq!(got.len(), sent.len(), "{ctx}: record count");
    let mut want: Vec<_> = sent.iter().map(|r| format!("{:?}", r.content())).collect();
    let mut have: Vec<_> = got.iter().map(|r| format!("{:?}", r.content())).collect();
    want.sort();
    have.sort();
    assert!(want == have, "{ctx}: the records read differ from those written");
}

/// Connects a Klamm client and expects a TLS error of `failure` within [`FAIL_FAST`].
async fn expect_tls_failure(ctx: &str, config: ClientConfig, failure: TlsFailure) -> klamm::Error {
    let started = Instant::now();
    let e = Client::connect(config).await.map(|_| ()).expect_err(ctx);
    let took = started.elapsed();
    assert_eq!(e.kind(), &ErrorKind::Tls(failure), "{ctx}: {e}");
    // A hang-up during the handshake may be a broker going away: the one retriable case.
    assert_eq!(e.is_retriable(), failure == TlsFailure::HandshakeInterrupted, "{ctx}: {e}");
    assert!(took < FAIL_FAST, "{ctx}: took {took:?}");
    eprintln!("{ctx}: {e} (after {took:?})");
    e
}

#[test]
fn the_expected_crypto_provider_is_used() {
    let expected = if cfg!(feature = "pure-rust") { "graviola" } else { "ring" };
    assert_eq!(TlsConfig::crypto_provider_name(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klamm_produces_and_consumes_over_tls() {
    let topic = new_topic("tls-klamm").await;
    let sent = klamm_produce(client_config("SSL", &[]), &topic).await;
    let got = klamm_consume(client_config("SSL", &[]), &topic, COUNT).await;
    same_records("klamm over SSL", &sent, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_against_the_jdk() {
    let topic = new_topic("tls-12").await;
    let sent = klamm_produce(client_config("TLS12", &[]), &topic).await;
    let got = klamm_consume(client_config("TLS12", &[]), &topic, COUNT).await;
    same_records("klamm over TLS 1.2", &sent, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_with_a_client_certificate() {
    let topic = new_topic("tls-mutual").await;
    let sent = klamm_produce(client_config("MTLS", &client_certificate()), &topic).await;
    // The Java client's spelling: PEM stores, the key and chain in one file.
    let pki = &setup().pki;
    let java_form = [
        ("ssl.truststore.type", "PEM".to_owned()),
        ("ssl.truststore.location", pki.ca().display().to_string()),
        ("ssl.keystore.type", "PEM".to_owned()),
        ("ssl.keystore.location", pki.client_keystore().display().to_string()),
    ];
    let got = klamm_consume(client_config("MTLS", &java_form), &topic, COUNT).await;
    same_records("klamm over mutual TLS", &sent, &got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_key_encrypted_with_a_password() {
    let pki = &setup().pki;
    let encrypted = vec![
        ("ssl.certificate.location", pki.client_certificate().display().to_string()),
        ("ssl.key.location", pki.client_key_encrypted().display().to_string()),
        ("ssl.key.password", CLIENT_KEY_PASSWORD.to_owned()),
    ];
    let client =
        Client::connect(client_config("MTLS", &encrypted)).await.expect("mutual TLS with an encrypted key");
    assert!(client.metadata().brokers.len() == 1);
    client.close().await;
    // The wrong password fails when the client is made, naming the key file and not the password.
    let mut wrong = encrypted.clone();
    wrong[2].1 = "not-the-password".to_owned();
    let e = Client::new(client_config("MTLS", &wrong)).map(|_| ()).expect_err("wrong password");
    assert_eq!(e.kind(), &ErrorKind::Tls(TlsFailure::BadCertificateOrKey), "{e}");
    assert!(
        e.to_string().contains("client-encrypted.key") && !e.to_string().contains("not-the-password"),
        "{e}"
    );
    // No password at all.
    let e = Client::new(client_config("MTLS", &encrypted[..2])).map(|_| ()).expect_err("no password");
    assert!(e.to_string().contains("ssl.key.password"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_that_does_not_parse_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("broken.key");
    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        .expect("write");
    let config = client_config(
        "MTLS",
        &[
            ("ssl.certificate.location", setup().pki.client_certificate().display().to_string()),
            ("ssl.key.location", key.display().to_string()),
        ],
    );
    let e = Producer::new(producer_config(config)).map(|_| ()).expect_err("a broken key");
    assert_eq!(e.kind(), &ErrorKind::Tls(TlsFailure::BadCertificateOrKey), "{e}");
    assert!(e.to_string().contains("broken.key"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_client_certificate_is_refused_by_the_broker() {
    let config = client_config("MTLS", &[]);
    expect_tls_failure("no client certificate", config, TlsFailure::ClientCertificateRejected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_ca_is_a_typed_error_without_retries() {
    let other = setup().pki.other_ca().display().to_string();
    let config = client_config("SSL", &[("ssl.ca.location", other.clone())]);
    expect_tls_failure("untrusted CA", config, TlsFailure::UntrustedCertificate).await;
    // A producer's send fails with the same error instead of retrying until its timeout.
    let topic = new_topic("tls-untrusted").await;
    let config = producer_config(client_config("SSL", &[("ssl.ca.location", other)]));
    let producer = Producer::new(config).expect("producer");
    let started = Instant::now();
    let outcome = match producer.send(ProducerRecord::new(&topic, "v")).await {
        Ok(delivery) => delivery.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let e = outcome.expect_err("an untrusted broker");
    assert_eq!(e.kind(), &ErrorKind::Tls(TlsFailure::UntrustedCertificate), "{e}");
    assert!(started.elapsed() < FAIL_FAST, "took {:?}", started.elapsed());
    producer.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_name_mismatch_is_refused_unless_verification_is_off() {
    let e = expect_tls_failure(
        "host name mismatch",
        client_config("OTHERNAME", &[]),
        TlsFailure::HostnameMismatch,
    )
    .await;
    assert!(e.to_string().contains("does not name the host"), "{e}");
    for off in ["", "none"] {
        let config = client_config("OTHERNAME", &[("ssl.endpoint.identification.algorithm", off.to_owned())]);
        let client = Client::connect(config).await.expect("host names not verified");
        client.close().await;
    }
    // With host names unchecked the chain still is.
    let other = setup().pki.other_ca().display().to_string();
    let config = client_config(
        "OTHERNAME",
        &[("ssl.endpoint.identification.algorithm", String::new()), ("ssl.ca.location", other)],
    );
    expect_tls_failure("host names off, untrusted CA", config, TlsFailure::UntrustedCertificate).await;
    // enable.ssl.certificate.verification=false accepts even that.
    let other = setup().pki.other_ca().display().to_string();
    let config = client_config(
        "OTHERNAME",
        &[("enable.ssl.certificate.verification", "false".to_owned()), ("ssl.ca.location", other)],
    );
    let client = Client::connect(config).await.expect("certificates not verified");
    client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_certificate_is_a_typed_error() {
    expect_tls_failure("expired certificate", client_config("EXPIRED", &[]), TlsFailure::ExpiredCertificate)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_against_a_plaintext_listener_fails_fast() {
    let mut config = client_config("SSL", &[]);
    config.bootstrap_servers = vec![setup().broker.bootstrap()];
    let e = expect_tls_failure("TLS to a plaintext listener", config, TlsFailure::HandshakeInterrupted).await;
    assert!(e.to_string().contains("plaintext"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_against_a_tls_listener_fails_fast() {
    let config = ClientConfig::new(&setup().broker.listener_addr("SSL"))
        .connect_timeout(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(5));
    let e = expect_tls_failure("plaintext to a TLS listener", config, TlsFailure::BrokerExpectsTls).await;
    assert!(e.to_string().contains("security.protocol=SSL"), "{e}");
}

/// The peer's properties for mutual TLS on the `MTLS` listener.
fn peer(kind: PeerKind) -> Peer {
    let pki = &setup().pki;
    let props = match kind {
        PeerKind::Rdkafka => pki.rdkafka_properties(true),
        PeerKind::Java => pki.java_properties(true),
    };
    Peer::new(kind).with_properties(props)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_read_what_klamm_wrote_over_tls() {
    let topic = new_topic("tls-to-peers").await;
    let sent = klamm_produce(client_config("MTLS", &client_certificate()), &topic).await;
    let readers: Vec<_> = [PeerKind::Rdkafka, PeerKind::Java]
        .into_iter()
        .map(|kind| {
            let (addr, t) = (setup().broker.listener_addr("MTLS"), topic.clone());
            tokio::task::spawn_blocking(move || {
                let options = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..Default::default() };
                (kind, peer(kind).consume(&addr, &t, COUNT, &options))
            })
        })
        .collect();
    for reader in readers {
        let (kind, got) = reader.await.expect("peer");
        same_records(&format!("{} over mutual TLS", kind.name()), &sent, &got);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn klamm_reads_what_peers_wrote_over_tls() {
    for kind in [PeerKind::Rdkafka, PeerKind::Java] {
        let topic = new_topic(&format!("tls-from-{}", kind.name())).await;
        let sent: Vec<PeerRecord> = (0..COUNT).map(record).collect();
        let (addr, t, records) = (setup().broker.listener_addr("MTLS"), topic.clone(), sent.clone());
        blocking(move || peer(kind).produce(&addr, &t, &ProduceOptions::default(), &records)).await;
        let got = klamm_consume(client_config("MTLS", &client_certificate()), &topic, COUNT).await;
        same_records(&format!("klamm reading {} over mutual TLS", kind.name()), &sent, &got);
    }
}

/// The TLS properties of [`client_config`] for `listener`, as key/value pairs (for a group).
fn tls_properties(listener: &str) -> Vec<(String, String)> {
    let s = setup();
    vec![
        ("bootstrap.servers".into(), s.broker.listener_addr(listener)),
        ("security.protocol".into(), "SSL".into()),
        ("ssl.ca.location".into(), s.pki.ca().display().to_string()),
    ]
}

/// A group member with `props` (bootstrap and security) reads until it has `count` records,
/// commits and leaves.
async fn group_read(props: &[(String, String)], group: &str, topic: &str, count: usize) -> Vec<PeerRecord> {
    let mut config =
        GroupConfig::new(&props[0].1, group).consumer(|c| c.auto_offset_reset(OffsetReset::Earliest));
    for (k, v) in props {
        config.set(k, v).expect("a security property");
    }
    let mut member = GroupConsumer::new(config).expect("group consumer");
    member.subscribe([topic]);
    let mut out = Vec::new();
    let started = Instant::now();
    while out.len() < count && started.elapsed() < Duration::from_secs(60) {
        for r in member.poll(Duration::from_millis(200)).await.expect("poll") {
            out.push(PeerRecord::new(
                r.key.clone().unwrap_or_default().to_vec(),
                r.value.clone().unwrap_or_default().to_vec(),
            ));
        }
    }
    // Nothing beyond what was asked for.
    let extra = member.poll(Duration::from_millis(500)).await.expect("poll");
    assert!(extra.is_empty(), "{} records more than the {count} expected", extra.len());
    member.commit_consumed().await.expect("commit over TLS");
    member.close(Duration::from_secs(10)).await.expect("close");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_a_group_that_resumes_and_admin_over_tls() {
    every_codec_a_group_that_resumes_and_admin(&tls_properties("SSL"), "TLS").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_a_group_that_resumes_and_admin_over_sasl_ssl() {
    let props: Vec<(String, String)> =
        sasl_ssl_properties("alice", "alice-secret").into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    every_codec_a_group_that_resumes_and_admin(&props, "SASL_SSL").await;
}

/// Admin (describe, create, delete), every codec produced and read by a group that commits,
/// and the group resuming after more records: all with `props` (bootstrap first).
async fn every_codec_a_group_that_resumes_and_admin(props: &[(String, String)], over: &str) {
    let config =
        || ClientConfig::from_properties(props.iter().map(|(k, v)| (k.as_str(), v.as_str()))).unwrap();
    let admin = Admin::connect(config()).await.expect("admin");
    let cluster = admin.describe_cluster().await.expect("describe the cluster");
    assert_eq!(cluster.brokers.len(), 1);
    let topic = unique_topic("tls-codecs");
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    for (name, result) in admin.create_topics_with(&[NewTopic::new(&topic, 2, 1)], &options).await {
        result.unwrap_or_else(|e| panic!("creating {name} over {over}: {e}"));
    }
    let codecs =
        [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd];
    let mut sent = Vec::new();
    for (n, codec) in codecs.into_iter().enumerate() {
        let mut config = producer_config(config());
        config.compression = codec;
        let producer = Producer::new(config).expect("producer");
        for i in 0..200 {
            let r = record(n * 1000 + i);
            let mut p = ProducerRecord::new(&topic, r.value.clone().expect("a value"));
            p.key = r.key.clone().map(Bytes::from);
            producer.send(p).await.expect("send").await.unwrap_or_else(|e| panic!("{}: {e}", codec.name()));
            sent.push(PeerRecord { headers: Vec::new(), ..r });
        }
        assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
    }
    let group = unique_topic("tls-group");
    let got = group_read(props, &group, &topic, sent.len()).await;
    same_records(&format!("a group over {over}"), &sent, &got);
    // More records; the group resumes after its committed offsets.
    let more: Vec<PeerRecord> = (0..300).map(|i| record(9_000 + i)).collect();
    let (addr, t, records) = (setup().broker.listener_addr("MTLS"), topic.clone(), more.clone());
    blocking(move || peer(PeerKind::Rdkafka).produce(&addr, &t, &ProduceOptions::default(), &records)).await;
    let resumed = group_read(props, &group, &topic, more.len()).await;
    let more: Vec<PeerRecord> = more.into_iter().map(|r| PeerRecord { headers: Vec::new(), ..r }).collect();
    same_records(&format!("the group resuming over {over}"), &more, &resumed);
    let deleted = admin.delete_topics(&[topic.as_str()]).await;
    for (name, result) in deleted {
        result.unwrap_or_else(|e| panic!("deleting {name} over {over}: {e}"));
    }
}

/// SASL_SSL properties for the `SASLSSL` listener (PLAIN as `user`), as key/value pairs.
fn sasl_ssl_properties(user: &str, password: &str) -> Vec<(&'static str, String)> {
    let s = setup();
    vec![
        ("bootstrap.servers", s.broker.listener_addr("SASLSSL")),
        ("security.protocol", "SASL_SSL".to_owned()),
        ("ssl.ca.location", s.pki.ca().display().to_string()),
        ("sasl.mechanism", "PLAIN".to_owned()),
        ("sasl.username", user.to_owned()),
        ("sasl.password", password.to_owned()),
        ("socket.connection.setup.timeout.ms", "5000".to_owned()),
        ("request.timeout.ms", "5000".to_owned()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_inside_tls_with_plain_and_scram_and_peers_both_ways_on_the_same_listener() {
    let topic = new_topic("sasl-ssl").await;
    let plain =
        ClientConfig::from_properties(sasl_ssl_properties("alice", "alice-secret")).expect("properties");
    let sent = klamm_produce(plain.clone(), &topic).await;
    let got = klamm_consume(plain.clone(), &topic, COUNT).await;
    same_records("klamm over SASL_SSL (PLAIN)", &sent, &got);

    // SCRAM-SHA-512 inside TLS, with a user made through the same listener.
    let admin = Admin::new(Client::connect(plain).await.expect("a client over SASL_SSL"));
    let results = admin
        .alter_user_scram_credentials(&[klamm::ScramCredentialChange::upsert(
            "bob",
            klamm::SaslMechanism::ScramSha512,
            "bob-secret",
        )])
        .await;
    for (user, result) in results {
        result.unwrap_or_else(|e| panic!("creating SCRAM user {user} over SASL_SSL: {e}"));
    }
    let mut scram = sasl_ssl_properties("bob", "bob-secret");
    scram.retain(|(k, _)| *k != "sasl.mechanism");
    scram.push(("sasl.mechanism", "SCRAM-SHA-512".to_owned()));
    let scram = ClientConfig::from_properties(scram).expect("properties");
    // The broker may take a moment to make the new credential known to the listener.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let (config, t) = (scram.clone(), topic.clone());
        let attempt = async move {
            tokio::time::timeout(Duration::from_secs(30), klamm_consume(config, &t, COUNT)).await
        };
        match tokio::spawn(attempt).await {
            Ok(Ok(got)) => break got,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(500)).await,
            other => panic!("SCRAM-SHA-512 over SASL_SSL never read the topic: {other:?}"),
        }
    };
    same_records("klamm over SASL_SSL (SCRAM-SHA-512)", &sent, &got);

    // A wrong password inside TLS is an authentication error, not a TLS one, and comes fast.
    let mut wrong =
        ClientConfig::from_properties(sasl_ssl_properties("alice", "not-it")).expect("properties");
    wrong.reconnect_backoff_max = Duration::from_millis(200);
    let started = Instant::now();
    let err = Client::connect(wrong).await.map(|_| ()).expect_err("a wrong password");
    assert!(err.is_authentication_error(), "a wrong password over SASL_SSL: {err}");
    assert!(started.elapsed() < FAIL_FAST, "took {:?}", started.elapsed());

    // librdkafka and the Java client on the same listener read what Klamm wrote.
    let ca = setup().pki.ca().display().to_string();
    let rd = sasl_ssl_peer_properties(&ca);
    let java = vec![
        ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
        ("ssl.truststore.type".to_owned(), "PEM".to_owned()),
        ("ssl.truststore.location".to_owned(), ca),
        ("sasl.mechanism".to_owned(), "PLAIN".to_owned()),
        (
            "sasl.jaas.config".to_owned(),
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"alice\" \
             password=\"alice-secret\";"
                .to_owned(),
        ),
    ];
    let peer_props = [(PeerKind::Rdkafka, rd), (PeerKind::Java, java)];
    for (kind, props) in peer_props.clone() {
        let (addr, t) = (setup().broker.listener_addr("SASLSSL"), topic.clone());
        let got = blocking(move || {
            let options = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..Default::default() };
            Peer::new(kind).with_properties(props).consume(&addr, &t, COUNT, &options)
        })
        .await;
        same_records(&format!("{} over SASL_SSL", kind.name()), &sent, &got);
    }
    // The reverse: each peer writes over the same listener, Klamm reads.
    for (kind, props) in peer_props {
        let back = new_topic(&format!("sasl-ssl-from-{}", kind.name())).await;
        let written: Vec<PeerRecord> = (0..COUNT).map(record).collect();
        let (addr, t, records) = (setup().broker.listener_addr("SASLSSL"), back.clone(), written.clone());
        blocking(move || {
            Peer::new(kind).with_properties(props).produce(&addr, &t, &ProduceOptions::default(), &records)
        })
        .await;
        let config = ClientConfig::from_properties(sasl_ssl_properties("alice", "alice-secret")).unwrap();
        let got = klamm_consume(config, &back, COUNT).await;
        same_records(&format!("klamm reading {} over SASL_SSL", kind.name()), &written, &got);
    }
}

/// The workspace engine configured only through its environment (`KAFKA_SECURITY_PROTOCOL`,
/// `KAFKA_SSL_*`, `KAFKA_SASL_*`) on the SASL_SSL listener: its group consumer applies every
/// event and its dead-letter producer writes the poison one, which librdkafka reads back over
/// the same listener.
#[test]
fn the_engine_runs_over_sasl_ssl_from_its_environment() {
    use engine_common::{runtime, states, temp_dir, wait_for_events, EngineProcess};

    let rt = runtime();
    let topic = rt.block_on(new_topic("engine-sasl-ssl"));
    let brokers = setup().broker.listener_addr("SASLSSL");
    let ca = setup().pki.ca().display().to_string();
    let mut events = Vec::new();
    for i in 0..20 {
        let kind = if i == 7 { "poison" } else { "add" };
        let ws = format!("ws-{}", i % 4);
        events.push(PeerRecord::new(
            ws.clone(),
            serde_json::json!({"workspace_id": ws, "type": kind}).to_string(),
        ));
    }
    let records = events.clone();
    let (addr, t) = (brokers.clone(), topic.clone());
    let props = sasl_ssl_peer_properties(&ca);
    Peer::rdkafka().with_properties(props.clone()).produce(&addr, &t, &ProduceOptions::default(), &records);

    let dir = temp_dir("engine-sasl-ssl");
    let state = dir.join("state");
    let group = unique_topic("engine-sasl-ssl-group");
    let env = [
        ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
        ("KAFKA_SSL_CA_LOCATION", ca.as_str()),
        ("KAFKA_SASL_MECHANISM", "PLAIN"),
        ("KAFKA_SASL_USERNAME", "alice"),
        ("KAFKA_SASL_PASSWORD", "alice-secret"),
    ];
    let mut engine = EngineProcess::start(&brokers, &topic, &group, &state, dir.join("engine.log"), &env);
    wait_for_events(&mut engine, &state, 19, Duration::from_secs(90));
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(15), ..Default::default() };
    let dead = Peer::rdkafka().with_properties(props).consume(&brokers, &format!("{topic}.dlq"), 1, &options);
    let log = engine.stop(Duration::from_secs(60));
    assert!(!log.contains("alice-secret"), "the password reached the engine's log:\n{log}");
    let found = states(&state);
    let applied: u64 = found.values().map(|v| v["events"].as_u64().unwrap_or(0)).sum();
    assert_eq!(applied, 19, "{found:?}\n{log}");
    assert_eq!(dead.len(), 1, "{dead:?}\n{log}");
    assert_eq!(dead[0].value, events[7].value, "the poison event, dead-lettered over SASL_SSL");
    let _ = std::fs::remove_dir_all(&dir);
}

/// librdkafka's properties for the SASLSSL listener as `alice`.
fn sasl_ssl_peer_properties(ca: &str) -> Vec<(String, String)> {
    [
        ("security.protocol", "SASL_SSL"),
        ("ssl.ca.location", ca),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}
