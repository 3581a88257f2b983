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

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use klamm::{
    Admin, ClientConfig, Consumer, ConsumerConfig, Error, NewTopic, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use klamm_tests::{unique_topic, Broker, BrokerKind, ConsumeOptions, Peer};

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
async fn plain_produces_and_consumes_and_peers_read_it() {
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_from_a_java_jaas_config() {
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                username=\"alice\" password=\"alice-secret\";";
    let props = sasl_properties("SASL", &[("sasl.mechanism", "PLAIN"), ("sasl.jaas.config", jaas)]);
    round_trip("sasl-plain-jaas", &props).await;
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
