//! SASL against Apache Kafka: one broker with two SASL_PLAINTEXT listeners besides the
//! harness's plaintext one.
//!
//! - `SASL` enables PLAIN (users in the broker's JAAS config), SCRAM-SHA-256 and SCRAM-SHA-512
//!   (users made with AlterUserScramCredentials) and OAUTHBEARER (Kafka's unsecured validator).
//! - `REAUTH` enables PLAIN only, with sessions of `REAUTH_MS` (`connections.max.reauth.ms`):
//!   connections there must re-authenticate (KIP-368) while traffic flows.
//!
//! Each mechanism produces and consumes; bad credentials, a mechanism the listener does not
//! enable and SASL on the plaintext listener are each an authentication error that names the
//! cause, returned at once by the producer's `send` and the consumer's `poll`; librdkafka and
//! the Java client, with the same credentials on the same listener, read what Klamm wrote.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::protocol::api::metadata::MetadataRequest;
use klamm::{
    Admin, ClientConfig, Connection, Consumer, ConsumerConfig, Error, NewTopic, OAuthBearerToken,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, SaslMechanism, ScramCredentialChange, TokenFuture,
    TokenProvider, TopicPartition, UnsecuredJwt, DEFAULT_SCRAM_ITERATIONS,
};
use klamm_group::{GroupConfig, GroupConsumer, NextOffset};
use klamm_tests::{
    unique_topic, Broker, BrokerKind, ConsumeOptions, FaultProxy, Peer, PeerRecord, ProduceOptions,
    RecordingProxy,
};

const PLAIN_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
     username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" user_alice=\"alice-secret\";";
/// How long a session on the `REAUTH` listener lasts.
const REAUTH_MS: u64 = 2_000;
/// How long a bad-credential case may take to fail.
const FAIL_FAST: Duration = Duration::from_secs(10);

/// The test broker, started once for the whole file.
fn broker() -> &'static Broker {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    BROKER.get_or_init(|| {
        let scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;";
        Broker::builder(BrokerKind::Kafka)
            .listener("SASL", "SASL_PLAINTEXT")
            .config(
                "listener.name.sasl.sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512,OAUTHBEARER",
            )
            .config("listener.name.sasl.plain.sasl.jaas.config", PLAIN_JAAS)
            .config("listener.name.sasl.scram-sha-256.sasl.jaas.config", scram)
            .config("listener.name.sasl.scram-sha-512.sasl.jaas.config", scram)
            .config(
                "listener.name.sasl.oauthbearer.sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 unsecuredLoginStringClaim_sub=\"broker\";",
            )
            .listener("REAUTH", "SASL_PLAINTEXT")
            .config("listener.name.reauth.sasl.enabled.mechanisms", "PLAIN")
            .config("listener.name.reauth.plain.sasl.jaas.config", PLAIN_JAAS)
            .config("listener.name.reauth.plain.connections.max.reauth.ms", &REAUTH_MS.to_string())
            .start()
            .unwrap_or_else(|e| panic!("broker: {e}"))
    })
}

/// Client properties for `listener` with `mechanism` and these credentials.
fn sasl_properties(listener: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut props = vec![
        ("bootstrap.servers".to_owned(), broker().listener_addr(listener)),
        ("security.protocol".to_owned(), "SASL_PLAINTEXT".to_owned()),
    ];
    props.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    props
}

fn plain(user: &str, password: &str) -> Vec<(&'static str, String)> {
    vec![
        ("sasl.mechanism", "PLAIN".to_owned()),
        ("sasl.username", user.to_owned()),
        ("sasl.password", password.to_owned()),
    ]
}

fn as_refs<'a>(props: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    props.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A topic made over the plaintext listener.
async fn new_topic(prefix: &str, partitions: i32) -> String {
    let topic = unique_topic(prefix);
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap())).await.expect("admin");
    for (name, result) in admin.create_topics(&[NewTopic::new(&topic, partitions, 1)]).await {
        result.unwrap_or_else(|e| panic!("create {name}: {e}"));
    }
    topic
}

fn value(i: usize) -> String {
    format!("sasl-record-{i}")
}

/// Produces `values` with Klamm over `props` and waits for every acknowledgement.
async fn produce(props: &[(String, String)], topic: &str, values: impl Iterator<Item = String>) {
    let producer = Producer::new(ProducerConfig::from_properties(props.iter().cloned()).expect("config"))
        .expect("producer");
    let mut pending = Vec::new();
    for v in values {
        pending.push(producer.send(ProducerRecord::new(topic.to_owned(), v)).await.expect("send"));
    }
    for p in pending {
        p.await.expect("delivered");
    }
    assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
}

/// Reads `count` values of partition 0..partitions of `topic` with Klamm over `props`.
async fn consume(props: &[(String, String)], topic: &str, partitions: i32, count: usize) -> Vec<String> {
    let config = ConsumerConfig::from_properties(props.iter().cloned())
        .expect("config")
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign((0..partitions).map(|p| TopicPartition::new(topic, p)));
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < count && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(200)).await.expect("poll") {
            out.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    consumer.close(Duration::from_secs(5)).await.expect("close");
    out
}

/// Klamm writes 200 records and reads them back over `props`.
async fn round_trip(name: &str, props: &[(String, String)]) -> String {
    let topic = new_topic(name, 2).await;
    produce(props, &topic, (0..200).map(value)).await;
    let mut read = consume(props, &topic, 2, 200).await;
    read.sort();
    let mut expected: Vec<String> = (0..200).map(value).collect();
    expected.sort();
    assert_eq!(read, expected, "{name}");
    topic
}

/// What a producer's first send returns, and how long it took.
async fn first_send_error(props: &[(String, String)]) -> (Error, Duration) {
    let started = Instant::now();
    let producer = Producer::new(ProducerConfig::from_properties(props.iter().cloned()).expect("config"))
        .expect("producer");
    let topic = unique_topic("sasl-refused");
    let result = match producer.send(ProducerRecord::new(topic, Bytes::from_static(b"x"))).await {
        Ok(delivery) => delivery.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let error = result.expect_err("the send must fail");
    (error, started.elapsed())
}

fn assert_authentication_error(e: &Error, elapsed: Duration, needle: &str) {
    assert!(e.is_authentication_error(), "not an authentication error: {e:?}");
    assert!(!e.is_retriable(), "{e}");
    assert!(e.to_string().contains(needle), "{needle:?} not in: {e}");
    assert!(elapsed < FAIL_FAST, "took {elapsed:?}: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_produces_and_consumes_and_peers_read_it_and_the_reverse() {
    let props = sasl_properties("SASL", &as_refs(&plain("alice", "alice-secret")));
    let topic = round_trip("sasl-plain", &props).await;
    let bootstrap = broker().listener_addr("SASL");
    let peer_props = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "alice-secret"),
    ];
    let java_props = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"alice\" password=\"alice-secret\";",
        ),
    ];
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(10), ..Default::default() };
    let (rd, java) = tokio::task::spawn_blocking(move || {
        let rd = Peer::rdkafka().with_properties(peer_props).consume(&bootstrap, &topic, 200, &options);
        let java = Peer::java().with_properties(java_props).consume(&bootstrap, &topic, 200, &options);
        (rd, java)
    })
    .await
    .expect("peers");
    for (name, records) in [("librdkafka", rd), ("java", java)] {
        let mut got: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into())
            .collect();
        got.sort();
        let mut expected: Vec<String> = (0..200).map(value).collect();
        expected.sort();
        assert_eq!(got, expected, "{name} over SASL PLAIN");
    }

    // The reverse: both peers write over the same listener, Klamm reads.
    let back = new_topic("sasl-plain-peers", 1).await;
    let bootstrap = broker().listener_addr("SASL");
    let (topic, brokers) = (back.clone(), bootstrap.clone());
    tokio::task::spawn_blocking(move || {
        let from =
            |peer: &str| (0..50).map(|i| PeerRecord::new("k", format!("{peer}-{i}"))).collect::<Vec<_>>();
        let options = ProduceOptions::default();
        Peer::rdkafka().with_properties(peer_props).produce(&brokers, &topic, &options, &from("rdkafka"));
        Peer::java().with_properties(java_props).produce(&brokers, &topic, &options, &from("java"));
    })
    .await
    .expect("peers");
    let props = sasl_properties("SASL", &as_refs(&plain("alice", "alice-secret")));
    let mut read = consume(&props, &back, 1, 100).await;
    read.sort();
    let mut expected: Vec<String> =
        ["rdkafka", "java"].iter().flat_map(|p| (0..50).map(move |i| format!("{p}-{i}"))).collect();
    expected.sort();
    assert_eq!(read, expected, "Klamm reading what the peers wrote over SASL PLAIN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_from_a_java_jaas_config() {
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                username=\"alice\" password=\"alice-secret\";";
    let props = sasl_properties("SASL", &[("sasl.mechanism", "PLAIN"), ("sasl.jaas.config", jaas)]);
    round_trip("sasl-plain-jaas", &props).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_codec_over_sasl() {
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let mut props = sasl_properties("SASL", &as_refs(&plain("alice", "alice-secret")));
        props.push(("compression.type".to_owned(), codec.to_owned()));
        let topic = new_topic(&format!("sasl-codec-{codec}"), 1).await;
        produce(&props, &topic, (0..100).map(value)).await;
        props.pop();
        let read = consume(&props, &topic, 1, 100).await;
        assert_eq!(read, (0..100).map(value).collect::<Vec<_>>(), "{codec}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_fast_in_send_and_poll() {
    let props = sasl_properties("SASL", &as_refs(&plain("alice", "not-her-password")));
    let (e, elapsed) = first_send_error(&props).await;
    assert_authentication_error(&e, elapsed, "Invalid username or password");
    assert!(!format!("{e} {e:?}").contains("not-her-password"), "{e:?}");

    let started = Instant::now();
    let config = ConsumerConfig::from_properties(props.iter().cloned()).expect("config");
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign([TopicPartition::new("sasl-any", 0)]);
    let e = loop {
        match consumer.poll(Duration::from_millis(500)).await {
            Err(e) => break e,
            Ok(records) => {
                assert!(records.is_empty());
                assert!(started.elapsed() < FAIL_FAST, "poll did not return the authentication error");
            }
        }
    };
    assert_authentication_error(&e, started.elapsed(), "Invalid username or password");

    let props = sasl_properties("SASL", &as_refs(&plain("mallory", "whatever")));
    let (e, elapsed) = first_send_error(&props).await;
    assert_authentication_error(&e, elapsed, "Invalid username or password");
}

/// A producer whose credentials are refused does not keep reconnecting: through a counting
/// proxy, a failed send costs a few connections (metadata, producer id), nothing happens while
/// the application does not send, and the next send costs no more than the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_producer_makes_no_retry_storm() {
    let addr = broker().listener_addr("SASL").parse().expect("address");
    let proxy = FaultProxy::start(addr).expect("proxy");
    let mut props = sasl_properties("SASL", &as_refs(&plain("alice", "not-her-password")));
    props[0].1 = proxy.bootstrap();
    let producer = Producer::new(ProducerConfig::from_properties(props.iter().cloned()).expect("config"))
        .expect("producer");
    let topic = unique_topic("sasl-storm");
    let send = || async {
        let started = Instant::now();
        let e = match producer.send(ProducerRecord::new(topic.clone(), Bytes::from_static(b"x"))).await {
            Ok(delivery) => delivery.await.expect_err("refused"),
            Err(e) => e,
        };
        assert_authentication_error(&e, started.elapsed(), "Invalid username or password");
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    send().await;
    let first = proxy.connections_accepted();
    assert!((1..=3).contains(&first), "{first} connections for one send");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(proxy.connections_accepted(), first, "connections while nothing was sent");
    send().await;
    let second = proxy.connections_accepted() - first;
    assert!(second <= first, "{second} connections for the second send, {first} for the first");
    producer.close(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mechanism_the_listener_does_not_enable_names_the_enabled_ones() {
    let props = sasl_properties(
        "REAUTH",
        &[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.username", "alice"), ("sasl.password", "x")],
    );
    let (e, elapsed) = first_send_error(&props).await;
    assert_authentication_error(&e, elapsed, "does not enable SCRAM-SHA-512");
    assert!(e.to_string().contains("it enables: PLAIN"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_on_the_plaintext_listener_is_a_clear_error() {
    let mut props = sasl_properties("SASL", &as_refs(&plain("alice", "alice-secret")));
    props[0].1 = broker().bootstrap();
    let (e, elapsed) = first_send_error(&props).await;
    assert_authentication_error(&e, elapsed, "did not expect SASL");
}

/// Creates `user` with `password` for `mechanism` over the plaintext listener, and waits until
/// the broker lists the credential.
async fn scram_user(user: &str, mechanism: SaslMechanism, password: &str) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap())).await.expect("admin");
    let changes = [ScramCredentialChange::upsert(user, mechanism, password)];
    for (name, result) in admin.alter_user_scram_credentials(&changes).await {
        result.unwrap_or_else(|e| panic!("SCRAM credential of {name}: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let described = admin.describe_user_scram_credentials(&[user]).await.expect("describe");
        if let [(name, Ok(infos))] = &described[..] {
            assert_eq!(name, user);
            if infos.iter().any(|i| i.mechanism == mechanism && i.iterations == DEFAULT_SCRAM_ITERATIONS) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{user}'s credential never showed: {described:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks that a peer read exactly the 200 values of [`round_trip`].
fn assert_read_by(peer: &str, records: &[klamm_tests::PeerRecord]) {
    let mut got: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into())
        .collect();
    got.sort();
    let mut expected: Vec<String> = (0..200).map(value).collect();
    expected.sort();
    assert_eq!(got, expected, "{peer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_sha_256_and_512_produce_and_consume_and_peers_read_it() {
    let user = unique_topic("scram-user");
    scram_user(&user, SaslMechanism::ScramSha256, "pw-256").await;
    scram_user(&user, SaslMechanism::ScramSha512, "pw-512").await;
    let bootstrap = broker().listener_addr("SASL");

    let props = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "SCRAM-SHA-256"), ("sasl.username", &user), ("sasl.password", "pw-256")],
    );
    let topic256 = round_trip("sasl-scram-256", &props).await;
    // The Java form of the same credentials, and the programmatic one.
    let jaas = format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"{user}\" password=\"pw-512\";"
    );
    let props = sasl_properties("SASL", &[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.jaas.config", &jaas)]);
    let topic512 = round_trip("sasl-scram-512", &props).await;
    let admin = Admin::connect(ClientConfig::new(&bootstrap).sasl_scram(
        SaslMechanism::ScramSha512,
        user.clone(),
        "pw-512",
    ))
    .await
    .expect("an admin over SCRAM-SHA-512");
    assert!(!admin.describe_cluster().await.expect("describe").brokers.is_empty());

    let wrong = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.username", &user), ("sasl.password", "pw-256")],
    );
    let (e, elapsed) = first_send_error(&wrong).await;
    assert_authentication_error(&e, elapsed, "invalid credentials");
    let unknown = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "SCRAM-SHA-256"), ("sasl.username", "nobody-here"), ("sasl.password", "x")],
    );
    let (e, elapsed) = first_send_error(&unknown).await;
    assert_authentication_error(&e, elapsed, "invalid credentials");

    let rd = [
        ("security.protocol", "SASL_PLAINTEXT".to_owned()),
        ("sasl.mechanism", "SCRAM-SHA-256".to_owned()),
        ("sasl.username", user.clone()),
        ("sasl.password", "pw-256".to_owned()),
    ];
    let java = [
        ("security.protocol", "SASL_PLAINTEXT".to_owned()),
        ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
        ("sasl.jaas.config", jaas),
    ];
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(10), ..Default::default() };
    let (rd, java) = tokio::task::spawn_blocking(move || {
        let rd = Peer::rdkafka().with_properties(rd).consume(&bootstrap, &topic256, 200, &options);
        let java = Peer::java().with_properties(java).consume(&bootstrap, &topic512, 200, &options);
        (rd, java)
    })
    .await
    .expect("peers");
    assert_read_by("librdkafka over SCRAM-SHA-256", &rd);
    assert_read_by("java over SCRAM-SHA-512", &java);
}

/// Unsigned JWTs for `principal`, counting how often it is asked.
struct CountingTokens {
    principal: &'static str,
    calls: Arc<AtomicU32>,
}

impl TokenProvider for CountingTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Ok(UnsecuredJwt::new(self.principal).issue())
        })
    }
}

/// A provider whose tokens no validator accepts.
struct GarbageTokens;

impl TokenProvider for GarbageTokens {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async { Ok(OAuthBearerToken::new("not-a-jwt", Duration::from_secs(60), "nobody")) })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_with_unsecured_jwts_and_a_token_provider() {
    let props = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "OAUTHBEARER"), ("sasl.oauthbearer.config", "principal=alice lifeSeconds=600")],
    );
    let topic = round_trip("sasl-oauthbearer", &props).await;

    let calls = Arc::new(AtomicU32::new(0));
    let provider = CountingTokens { principal: "carol", calls: Arc::clone(&calls) };
    let bootstrap = broker().listener_addr("SASL");
    let mut config = ConsumerConfig::new(&bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    config.client = config.client.sasl_oauthbearer(provider);
    let mut consumer = Consumer::new(config).expect("consumer");
    consumer.assign((0..2).map(|p| TopicPartition::new(topic.as_str(), p)));
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while read < 200 && Instant::now() < deadline {
        read += consumer.poll(Duration::from_millis(200)).await.expect("poll").len();
    }
    assert_eq!(read, 200);
    consumer.close(Duration::from_secs(5)).await.expect("close");
    // One token serves every connection of the client while it is fresh.
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let started = Instant::now();
    let e = Admin::connect(ClientConfig::new(&bootstrap).sasl_oauthbearer(GarbageTokens))
        .await
        .expect_err("a token the broker cannot parse");
    assert_authentication_error(&e, started.elapsed(), "invalid_token");
    assert!(!format!("{e:?}").contains("not-a-jwt"), "{e:?}");

    let rd = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("enable.sasl.oauthbearer.unsecure.jwt", "true"),
        ("sasl.oauthbearer.config", "principal=alice"),
    ];
    let java = [
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"alice\";",
        ),
    ];
    let options = ConsumeOptions { idle_timeout: Duration::from_secs(10), ..Default::default() };
    let (rd, java) = tokio::task::spawn_blocking(move || {
        let rd = Peer::rdkafka().with_properties(rd).consume(&bootstrap, &topic, 200, &options);
        let java = Peer::java().with_properties(java).consume(&bootstrap, &topic, 200, &options);
        (rd, java)
    })
    .await
    .expect("peers");
    assert_read_by("librdkafka over OAUTHBEARER", &rd);
    assert_read_by("java over OAUTHBEARER", &java);
}

/// Sessions on `REAUTH` last 2 s. One connection carries pipelined requests from four tasks for
/// 7 s: without re-authentication the broker would close it at the first request after its
/// session ended. Then a producer and a consumer run across several re-authentications and
/// every record arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_reauthenticate_before_their_sessions_end_and_nothing_is_lost() {
    let addr = broker().listener_addr("REAUTH");
    let config =
        ClientConfig::from_properties(sasl_properties("REAUTH", &as_refs(&plain("alice", "alice-secret"))))
            .expect("config");
    let conn = Connection::connect(&addr, config.connection.clone()).await.expect("connect");
    let run_for = Duration::from_millis(REAUTH_MS * 7 / 2);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let conn = conn.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let mut answered = 0u32;
                while started.elapsed() < run_for {
                    conn.send(&MetadataRequest::default()).await.expect("the connection stays usable");
                    answered += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                answered
            })
        })
        .collect();
    for w in workers {
        assert!(w.await.expect("worker") > 20);
    }
    assert!(!conn.is_closed());

    let props = sasl_properties("REAUTH", &as_refs(&plain("alice", "alice-secret")));
    let topic = new_topic("sasl-reauth", 2).await;
    let producer_props = props.clone();
    let producer_topic = topic.clone();
    let count = 3_000;
    let producer = tokio::spawn(async move {
        // Spread over about three sessions.
        let per_ms = count as u64 / (REAUTH_MS * 3) + 1;
        let values = (0..count).map(value);
        let config = ProducerConfig::from_properties(producer_props.iter().cloned()).expect("config");
        let producer = Producer::new(config).expect("producer");
        let mut pending = Vec::new();
        for (i, v) in values.enumerate() {
            pending.push(producer.send(ProducerRecord::new(producer_topic.clone(), v)).await.expect("send"));
            if (i as u64 + 1).is_multiple_of(per_ms * 10) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for p in pending {
            p.await.expect("delivered across re-authentications");
        }
        assert_eq!(producer.close(Duration::from_secs(10)).await, 0);
    });
    let mut read = consume(&props, &topic, 2, count).await;
    producer.await.expect("producer");
    read.sort();
    let mut expected: Vec<String> = (0..count).map(value).collect();
    expected.sort();
    assert_eq!(read.len(), count);
    assert_eq!(read, expected);
}

/// A group member over `props` (SASL settings included) for `group`, reading from the start.
fn group_config(props: &[(String, String)], group: &str) -> GroupConfig {
    let mut all = props.to_vec();
    all.push(("group.id".to_owned(), group.to_owned()));
    all.push(("auto.offset.reset".to_owned(), "earliest".to_owned()));
    all.push(("fetch.max.wait.ms".to_owned(), "100".to_owned()));
    all.push(("heartbeat.interval.ms".to_owned(), "500".to_owned()));
    GroupConfig::from_properties(all).expect("group config")
}

/// A consumer group over SCRAM-SHA-512 reads, commits and leaves; a new member resumes at the
/// committed offset. With a wrong password, the group's `poll` returns the authentication
/// error instead of looking for the coordinator forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_and_resumes_over_scram_and_a_wrong_password_stops_it() {
    let user = unique_topic("group-user");
    scram_user(&user, SaslMechanism::ScramSha512, "group-pw").await;
    let props = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.username", &user), ("sasl.password", "group-pw")],
    );
    let topic = new_topic("sasl-group", 1).await;
    produce(&props, &topic, (0..20).map(value)).await;
    let group = unique_topic("sasl-g");

    let mut member = GroupConsumer::new(group_config(&props, &group)).expect("member");
    member.subscribe([topic.as_str()]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 20 && Instant::now() < deadline {
        got.extend(member.poll(Duration::from_millis(200)).await.expect("poll"));
    }
    assert_eq!(got.len(), 20);
    let tp = TopicPartition::new(topic.as_str(), 0);
    member.commit([(tp.clone(), NextOffset::after(&got[11]))]).await.expect("commit");
    member.close(Duration::from_secs(10)).await.expect("close");

    let mut again = GroupConsumer::new(group_config(&props, &group)).expect("member");
    again.subscribe([topic.as_str()]);
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.is_empty() && Instant::now() < deadline {
        first = again.poll(Duration::from_millis(200)).await.expect("poll");
    }
    assert_eq!(first.first().map(|r| r.offset), Some(12), "resumes at the committed offset");
    again.close(Duration::from_secs(10)).await.expect("close");

    let wrong = sasl_properties(
        "SASL",
        &[("sasl.mechanism", "SCRAM-SHA-512"), ("sasl.username", &user), ("sasl.password", "nope")],
    );
    let mut refused = GroupConsumer::new(group_config(&wrong, &group)).expect("member");
    refused.subscribe([topic.as_str()]);
    let started = Instant::now();
    let e = loop {
        match refused.poll(Duration::from_millis(200)).await {
            Err(e) => break e,
            Ok(records) => {
                assert!(records.is_empty());
                assert!(started.elapsed() < FAIL_FAST, "the group kept going without authenticating");
            }
        }
    };
    assert_authentication_error(&e, started.elapsed(), "invalid credentials");
}

/// A tracing writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Every log line and span (at TRACE, with span fields) of successful and failed SASL
/// connections, as well as the errors and printed configurations, are free of passwords and
/// tokens. The runtime has one thread, so the connection tasks log to this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_in_logs_spans_errors_or_debug_output() {
    let user = unique_topic("quiet-user");
    scram_user(&user, SaslMechanism::ScramSha256, "scram-pw-4d1f").await;
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::FULL)
        .with_ansi(false)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let token = UnsecuredJwt::new("dave").issue();
    let secrets = ["alice-secret", "wrong-pw-93ab", "scram-pw-4d1f", token.value.expose()];
    let mut printed = String::new();
    let cases: Vec<Vec<(String, String)>> = vec![
        sasl_properties("SASL", &as_refs(&plain("alice", "alice-secret"))),
        sasl_properties("SASL", &as_refs(&plain("alice", "wrong-pw-93ab"))),
        sasl_properties(
            "SASL",
            &[
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", &user),
                ("sasl.password", "scram-pw-4d1f"),
            ],
        ),
        sasl_properties(
            "SASL",
            &[
                ("sasl.mechanism", "SCRAM-SHA-256"),
                ("sasl.username", &user),
                ("sasl.password", "wrong-pw-93ab"),
            ],
        ),
    ];
    for props in cases {
        let config = ClientConfig::from_properties(props).expect("config");
        printed.push_str(&format!("{config:?} {config:#?}\n"));
        match Admin::connect(config).await {
            Ok(admin) => {
                admin.describe_cluster().await.expect("describe");
            }
            Err(e) => printed.push_str(&format!("{e} {e:?}\n")),
        }
    }
    struct Fixed(OAuthBearerToken);
    impl TokenProvider for Fixed {
        fn token(&self) -> TokenFuture<'_> {
            Box::pin(async { Ok(self.0.clone()) })
        }
    }
    let config = ClientConfig::new(&broker().listener_addr("SASL")).sasl_oauthbearer(Fixed(token.clone()));
    printed.push_str(&format!("{config:?}\n"));
    let admin = Admin::connect(config).await.expect("OAUTHBEARER");
    admin.describe_cluster().await.expect("describe");
    drop(admin);

    let logged =
        String::from_utf8_lossy(&capture.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .into_owned();
    assert!(logged.contains("authenticated"), "the capture saw no SASL logging:\n{logged}");
    assert!(
        printed.contains("Invalid username or password") && printed.contains("invalid credentials"),
        "{printed}"
    );
    for secret in secrets {
        assert!(!logged.contains(secret), "{secret:?} logged");
        assert!(!printed.contains(secret), "{secret:?} printed:\n{printed}");
    }
}

/// The `produce` and `consume` examples take the SASL settings as `--property key=value`.
#[test]
fn the_produce_and_consume_examples_take_sasl_properties() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let topic = runtime.block_on(new_topic("sasl-examples", 1));
    let addr = broker().listener_addr("SASL");
    let sasl = [
        "--property",
        "security.protocol=SASL_PLAINTEXT",
        "--property",
        "sasl.mechanism=PLAIN",
        "--property",
        "sasl.username=alice",
        "--property",
        "sasl.password=alice-secret",
    ];
    let produce = klamm_tests::example_binary("klamm", "produce");
    let mut child = Command::new(produce)
        .args(["--brokers", &addr, "--topic", &topic])
        .args(sasl)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("produce runs");
    child.stdin.take().expect("stdin").write_all(b"one\ntwo\n").expect("write");
    let out = child.wait_with_output().expect("produce");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let consume = klamm_tests::example_binary("klamm", "consume");
    let out = Command::new(&consume)
        .args(["--brokers", &addr, "--topic", &topic, "--from", "beginning", "--count", "2"])
        .args(sasl)
        .output()
        .expect("consume");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("\tone") && stdout.contains("\ttwo"),
        "consume: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = Command::new(&consume)
        .args(["--brokers", &addr, "--topic", &topic, "--from", "beginning", "--count", "2"])
        .args(&sasl[..6])
        .args(["--property", "sasl.password=wrong"])
        .output()
        .expect("consume");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong"), "the password was printed: {stderr}");
}

/// The SaslHandshake and SaslAuthenticate frames librdkafka (SCRAM-SHA-512) and the Java client
/// (OAUTHBEARER) exchange with Kafka, recorded by a proxy in front of the listener: klamm-protocol
/// decodes each request and response and encodes it back to the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_sasl_frames_decode_and_re_encode_to_the_same_bytes() {
    use klamm::protocol::api::any::{encode_request_frame, encode_response_frame};
    use klamm::protocol::{decode_request_frame, decode_response_frame, ApiKey};

    let user = unique_topic("frames-user");
    scram_user(&user, SaslMechanism::ScramSha512, "frames-pw").await;
    let proxy =
        RecordingProxy::start(broker().listener_addr("SASL").parse().expect("address")).expect("proxy");
    let bootstrap = proxy.bootstrap();
    let rd = [
        ("security.protocol", "SASL_PLAINTEXT".to_owned()),
        ("sasl.mechanism", "SCRAM-SHA-512".to_owned()),
        ("sasl.username", user.clone()),
        ("sasl.password", "frames-pw".to_owned()),
    ];
    let java = [
        ("security.protocol", "SASL_PLAINTEXT".to_owned()),
        ("sasl.mechanism", "OAUTHBEARER".to_owned()),
        (
            "sasl.jaas.config",
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
             unsecuredLoginStringClaim_sub=\"alice\";"
                .to_owned(),
        ),
    ];
    let (topic_rd, topic_java) = (unique_topic("frames-rd"), unique_topic("frames-java"));
    tokio::task::spawn_blocking(move || {
        Peer::rdkafka().with_properties(rd).create_topic(&bootstrap, &topic_rd, 1);
        Peer::java().with_properties(java).create_topic(&bootstrap, &topic_java, 1);
    })
    .await
    .expect("peers");

    let frames: Vec<_> = proxy
        .frames()
        .into_iter()
        .filter(|f| matches!(f.api_key, ApiKey::SASL_HANDSHAKE | ApiKey::SASL_AUTHENTICATE))
        .collect();
    let handshakes = frames.iter().filter(|f| f.api_key == ApiKey::SASL_HANDSHAKE).count();
    let tokens = frames.len() - handshakes;
    // SCRAM: a handshake and two tokens; OAUTHBEARER: a handshake and one token.
    assert!(handshakes >= 2 && tokens >= 3, "{handshakes} handshakes and {tokens} tokens recorded");
    for f in frames {
        let at = format!("{} v{} (connection {})", f.api_name(), f.api_version, f.connection);
        let (header, body) = decode_request_frame(f.request.clone()).unwrap_or_else(|e| panic!("{at}: {e}"));
        let again = encode_request_frame(&header, &body).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(&again[..], &f.request[..], "{at}: the request re-encodes differently");
        let response = f.response.clone().expect("answered");
        let (rheader, rbody) = decode_response_frame(f.api_key, f.api_version, response.clone())
            .unwrap_or_else(|e| panic!("{at}: response: {e}"));
        let again =
            encode_response_frame(f.api_version, &rheader, &rbody).unwrap_or_else(|e| panic!("{at}: {e}"));
        assert_eq!(&again[..], &response[..], "{at}: the response re-encodes differently");
    }
}
