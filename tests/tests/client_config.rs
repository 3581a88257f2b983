//! Invalid configuration through the public API: Kafka property lists with bad values given to
//! `ProducerConfig`, `ConsumerConfig` and `ClientConfig`, and the constructors that validate
//! them (`Producer::new`, `Consumer::new`, `Client::new`, `Client::connect`, `Admin::connect`).
//! Each fails with `ErrorKind::Config`, names the property, and happens before any connection:
//! the bootstrap address is a proxy that counts every connection attempt.

use klamm::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, Error, ErrorKind, Producer, ProducerConfig,
};
use klamm_tests::FaultProxy;

/// Checks a configuration error: typed, naming `property`, a user error not worth retrying.
fn config_error(ctx: &str, err: &Error, property: &str) {
    assert_eq!(err.kind(), &ErrorKind::Config, "{ctx}: {err:?}");
    assert!(err.to_string().contains(property), "{ctx}: the error does not name {property}: {err}");
    assert!(err.is_user_error() && !err.is_retriable(), "{ctx}: {err}");
}

/// A property list: the proxy as bootstrap, then `extra`.
fn properties<'a>(bootstrap: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut list = vec![("bootstrap.servers", bootstrap)];
    list.extend_from_slice(extra);
    list
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_properties_with_bad_values_are_config_errors_naming_the_property() {
    let proxy = FaultProxy::bind().expect("a proxy");
    let bootstrap = proxy.bootstrap();
    // Refused by the property parser.
    for (key, value) in [
        ("acks", "2"),
        ("compression.type", "brotli"),
        ("linger.ms", "-1"),
        ("batch.size", "-5"),
        ("max.block.ms", "soon"),
        ("enable.idempotence", "maybe"),
        ("no.such.property", "1"),
        ("security.protocol", "TLS"),
    ] {
        let err = ProducerConfig::from_properties(properties(&bootstrap, &[(key, value)])).expect_err(key);
        config_error(&format!("{key}={value}"), &err, key);
    }
    // Parsed, then refused by `Producer::new`.
    for (key, value, named) in [
        ("batch.size", "0", "batch.size"),
        ("bootstrap.servers", "", "bootstrap.servers"),
        ("bootstrap.servers", "host:notaport", "bootstrap.servers"),
        ("bootstrap.servers", "127.0.0.1", "bootstrap.servers"),
        ("max.in.flight.requests.per.connection", "6", "max.in.flight.requests.per.connection"),
        ("request.timeout.ms", "0", "request.timeout.ms"),
        ("delivery.timeout.ms", "10", "delivery.timeout.ms"),
    ] {
        let config = ProducerConfig::from_properties(properties(&bootstrap, &[(key, value)])).expect(key);
        let err = Producer::new(config).expect_err(key);
        config_error(&format!("Producer::new with {key}={value}"), &err, named);
    }
    let config = ProducerConfig::from_properties(properties(
        &bootstrap,
        &[("acks", "1"), ("enable.idempotence", "true")],
    ))
    .unwrap();
    config_error("acks=1 with idempotence", &Producer::new(config).unwrap_err(), "enable.idempotence");
    assert_eq!(
        proxy.connections_accepted() + proxy.connections_refused() as usize,
        0,
        "a connection was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_properties_with_bad_values_are_config_errors_naming_the_property() {
    let proxy = FaultProxy::bind().expect("a proxy");
    let bootstrap = proxy.bootstrap();
    for (key, value) in [
        ("auto.offset.reset", "middle"),
        ("isolation.level", "serializable"),
        ("fetch.max.bytes", "-1"),
        ("fetch.max.wait.ms", "-1"),
        ("max.poll.records", "many"),
        ("check.crcs", "sometimes"),
        // A group consumer's setting, not the partition consumer's.
        ("group.id", "g"),
        ("no.such.property", "1"),
    ] {
        let err = ConsumerConfig::from_properties(properties(&bootstrap, &[(key, value)])).expect_err(key);
        config_error(&format!("{key}={value}"), &err, key);
    }
    for (key, value, named) in [
        ("max.poll.records", "0", "max.poll.records"),
        ("fetch.max.bytes", "0", "fetch.max.bytes"),
        ("queued.max.messages.kbytes", "0", "queued.max.messages.kbytes"),
        ("bootstrap.servers", "", "bootstrap.servers"),
        ("bootstrap.servers", "host:notaport", "bootstrap.servers"),
        ("socket.connection.setup.timeout.ms", "0", "socket.connection.setup.timeout.ms"),
    ] {
        let config = ConsumerConfig::from_properties(properties(&bootstrap, &[(key, value)])).expect(key);
        let err = Consumer::new(config).expect_err(key);
        config_error(&format!("Consumer::new with {key}={value}"), &err, named);
    }
    assert_eq!(
        proxy.connections_accepted() + proxy.connections_refused() as usize,
        0,
        "a connection was made"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_properties_with_bad_values_are_config_errors_naming_the_property() {
    let proxy = FaultProxy::bind().expect("a proxy");
    let bootstrap = proxy.bootstrap();
    for (key, value) in [
        ("request.timeout.ms", "-5"),
        ("reconnect.backoff.ms", "1s"),
        ("allow.auto.create.topics", "yes"),
        ("send.buffer.bytes", "-2"),
        ("sasl.mechanism", "GSSAPI"),
        ("acks", "all"),
    ] {
        let err = ClientConfig::from_properties(properties(&bootstrap, &[(key, value)])).expect_err(key);
        config_error(&format!("{key}={value}"), &err, key);
    }
    let bad = [
        (ClientConfig::new(""), "bootstrap.servers"),
        (ClientConfig::new("host:notaport"), "bootstrap.servers"),
        (ClientConfig::new(&format!("{bootstrap},:9092")), "bootstrap.servers"),
        (
            ClientConfig::from_properties(properties(
                &bootstrap,
                &[("reconnect.backoff.ms", "2000"), ("reconnect.backoff.max.ms", "1000")],
            ))
            .unwrap(),
            "reconnect.backoff.max.ms",
        ),
        (
            ClientConfig::from_properties(properties(&bootstrap, &[("metadata.max.age.ms", "0")])).unwrap(),
            "metadata.max.age.ms",
        ),
    ];
    for (config, named) in bad {
        let ctx = format!("{:?}", config.bootstrap_servers);
        config_error(&format!("Client::new {ctx}"), &Client::new(config.clone()).unwrap_err(), named);
        config_error(
            &format!("Client::connect {ctx}"),
            &Client::connect(config.clone()).await.unwrap_err(),
            named,
        );
        config_error(&format!("Admin::connect {ctx}"), &Admin::connect(config).await.unwrap_err(), named);
    }
    assert_eq!(
        proxy.connections_accepted() + proxy.connections_refused() as usize,
        0,
        "a connection was made"
    );
}
