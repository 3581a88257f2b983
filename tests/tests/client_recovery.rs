//! A broker that is down when the client starts: the producer, the partition consumer,
//! `Client::connect` and `Admin` give a typed error (or, for the consumer's poll, nothing) in
//! bounded time, first while nothing listens at the address ("connection refused"), then while
//! something accepts connections and closes them at once. Then the broker comes up behind the
//! same address, and the very same producer, consumer and admin objects carry on: the admin
//! creates the topic, sends are delivered, the consumer reads them.

use std::time::{Duration, Instant};

use klamm::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, Error, ErrorKind, NewTopic,
    OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use klamm_tests::{unique_topic, Broker, BrokerKind, FaultProxy};

/// `max.block.ms` of the producer, and the admin's operation timeout.
const BLOCK: Duration = Duration::from_secs(2);
/// How much later than its bound an operation may return on a busy machine.
const SLACK: Duration = Duration::from_millis(1500);

/// The objects that must survive the outage.
struct Clients {
    producer: Producer,
    consumer: Consumer,
    admin: Admin,
}

/// What is wrong with the address at a stage of the test.
#[derive(Debug, Clone, Copy)]
enum Down {
    /// Nothing listens: connects are refused.
    NotListening,
    /// Connections are accepted and closed before any byte is read.
    ClosesConnections,
}

/// Checks that each client fails in bounded time with a typed, retriable error that names the
/// address it could not use (the consumer's poll retries inside and returns nothing).
async fn fails_in_bounded_time(clients: &mut Clients, bootstrap: &str, topic: &str, down: Down) {
    let started = Instant::now();
    let err = clients.producer.send(ProducerRecord::new(topic, "early")).await.expect_err("no broker");
    let took = started.elapsed();
    eprintln!("{down:?}: Producer::send after {took:?}: {err}");
    assert!(took < BLOCK + SLACK, "{down:?}: send took {took:?}");
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{down:?}: {err:?}");
    assert!(err.to_string().contains("max.block.ms"), "{down:?}: {err}");
    unreachable(&format!("{down:?}: send"), &err, bootstrap, down);

    let started = Instant::now();
    let polled = clients.consumer.poll(Duration::from_secs(1)).await;
    let took = started.elapsed();
    assert!(polled.expect("poll retries inside").is_empty());
    assert!(took < Duration::from_secs(1) + SLACK, "{down:?}: poll took {took:?}");
    for tp in clients.consumer.assignment() {
        assert_eq!(clients.consumer.position(&tp), None, "{down:?}: {tp} has no position yet");
    }

    let started = Instant::now();
    let err = Client::connect(ClientConfig::new(bootstrap)).await.expect_err("no broker");
    let took = started.elapsed();
    eprintln!("{down:?}: Client::connect after {took:?}: {err}");
    assert!(took < SLACK, "{down:?}: connect took {took:?}");
    match down {
        Down::NotListening => {
            assert_eq!(err.kind(), &ErrorKind::Connect { addr: bootstrap.to_owned() }, "{err:?}")
        }
        Down::ClosesConnections => {
            assert!(matches!(err.kind(), ErrorKind::Closed | ErrorKind::Io), "{err:?}")
        }
    }
    unreachable(&format!("{down:?}: Client::connect"), &err, bootstrap, down);

    let started = Instant::now();
    let err = clients.admin.describe_cluster().await.expect_err("no broker");
    let took = started.elapsed();
    eprintln!("{down:?}: Admin::describe_cluster after {took:?}: {err}");
    assert!(took < BLOCK + SLACK, "{down:?}: describe_cluster took {took:?}");
    assert_eq!(err.kind(), &ErrorKind::Timeout, "{down:?}: {err:?}");
    unreachable(&format!("{down:?}: describe_cluster"), &err, bootstrap, down);
}

/// The error says which broker could not be used and why, and that trying again may help.
fn unreachable(ctx: &str, err: &Error, bootstrap: &str, down: Down) {
    assert!(err.is_retriable(), "{ctx}: {err}");
    assert!(!err.is_user_error(), "{ctx}: {err}");
    let text = err.to_string();
    assert!(text.contains(bootstrap), "{ctx}: the error does not name {bootstrap}: {text}");
    let why = match down {
        Down::NotListening => "cannot connect",
        Down::ClosesConnections => "closed",
    };
    assert!(text.contains(why), "{ctx}: the error does not say {why:?}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_started_before_the_broker_fail_in_bounded_time_then_recover() {
    let proxy = FaultProxy::bind().expect("a proxy");
    proxy.stop_listening();
    let bootstrap = proxy.bootstrap();
    let topic = unique_topic("recovery");
    // Nothing may create the topic by asking for it: the admin creates it once the broker is up.
    let producer =
        ProducerConfig::new(&bootstrap).max_block(BLOCK).with_client(|c| c.allow_auto_create_topics(false));
    let mut consumer = ConsumerConfig::new(&bootstrap)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    consumer.client = consumer.client.allow_auto_create_topics(false);
    let admin_client = Client::new(ClientConfig::new(&bootstrap).allow_auto_create_topics(false)).unwrap();
    let mut clients = Clients {
        producer: Producer::new(producer).unwrap(),
        consumer: Consumer::new(consumer).unwrap(),
        admin: Admin::new(admin_client).timeout(BLOCK),
    };
    let partitions: Vec<TopicPartition> = (0..2).map(|p| TopicPartition::new(topic.as_str(), p)).collect();
    clients.consumer.assign(partitions);

    fails_in_bounded_time(&mut clients, &bootstrap, &topic, Down::NotListening).await;
    proxy.refuse(true);
    proxy.resume_listening().expect("the proxy's port again");
    fails_in_bounded_time(&mut clients, &bootstrap, &topic, Down::ClosesConnections).await;
    assert!(proxy.connections_refused() > 0);

    let _broker = proxy.start_broker(Broker::builder(BrokerKind::Kafka)).expect("a broker behind the proxy");
    proxy.refuse(false);
    let Clients { producer, mut consumer, admin } = clients;
    let admin = admin.timeout(Duration::from_secs(30));
    let cluster = admin.describe_cluster().await.expect("the admin reaches the broker now");
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(cluster.brokers[0].port, proxy.port(), "the broker advertises the proxy");
    let created = admin.create_topics(&[NewTopic::new(topic.as_str(), 2, 1)]).await;
    assert!(created[0].1.is_ok(), "{created:?}");

    let mut deliveries = Vec::new();
    for i in 0..100 {
        let record = ProducerRecord::new(topic.as_str(), format!("v{i}")).partition(i % 2);
        deliveries.push(producer.send(record).await.expect("the producer reaches the broker now"));
    }
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await.unwrap_or_else(|e| panic!("delivery {i}: {e}"));
        assert_eq!((meta.partition, meta.offset), ((i % 2) as i32, (i / 2) as i64));
    }
    producer.close(Duration::from_secs(10)).await;

    let mut got: Vec<ConsumerRecord> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 100 && Instant::now() < deadline {
        // The consumer may have been stalled longer than `klamm.stall.timeout.ms` before the
        // broker came up: a retriable report of that is no reason to stop polling.
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => got.extend(records),
            Err(e) if e.is_retriable() => eprintln!("poll: {e}"),
            Err(e) => panic!("poll: {e}"),
        }
    }
    assert_eq!(got.len(), 100);
    for p in 0..2 {
        let values: Vec<String> = got
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| String::from_utf8(r.value.as_ref().unwrap().to_vec()).unwrap())
            .collect();
        let want: Vec<String> = (0..100).filter(|i| i % 2 == p).map(|i| format!("v{i}")).collect();
        assert_eq!(values, want, "partition {p}");
    }
    consumer.close(Duration::from_secs(5)).await.unwrap();
}
