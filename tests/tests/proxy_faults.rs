//! The fault proxy itself, spoken to with raw connections (not the klamm client): cuts close
//! connections wherever their frames are, a stall holds responses for at least its time, refusing
//! and not listening keep clients out, the counters count, and a broker that is down at start
//! comes up behind the proxy's address.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use klamm_protocol::api::api_versions::ApiVersionsResponse;
use klamm_protocol::api::create_topics::{CreatableTopic, CreateTopicsRequest};
use klamm_protocol::api::metadata::MetadataRequest;
use klamm_protocol::{encode_request, ApiKey, Message};
use klamm_tests::{
    api_versions_request, unique_topic, Broker, BrokerKind, CutPoint, Direction, FaultProxy, FrameHook,
    NegotiatedConnection, RawConnection, RawError, Recorder,
};

/// An ApiVersions v3 request frame, size prefix included.
fn api_versions_frame(correlation_id: i32) -> Vec<u8> {
    let mut out = BytesMut::new();
    encode_request(&mut out, correlation_id, Some("klamm-tests"), 3, &api_versions_request()).unwrap();
    out.to_vec()
}

/// Sends a Metadata request for no topics at the negotiated version.
fn metadata(conn: &mut NegotiatedConnection) -> Result<(), RawError> {
    let version = conn.version::<MetadataRequest>();
    let request = MetadataRequest { topics: Some(Vec::new()), ..Default::default() };
    conn.raw().try_send(version, &request).map(|_| ())
}

/// Polls `done` every 10 ms for up to 10 s.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cut_all_closes_a_connection_waiting_for_its_response() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    metadata(&mut conn).unwrap();
    assert_eq!((proxy.connections_accepted(), proxy.open_connections()), (1, 1));

    // The request reaches the broker; its response is held, then the connection is cut.
    proxy.stall(Duration::from_secs(60));
    let started = Instant::now();
    let cut = thread::scope(|s| {
        let cutter = s.spawn(|| {
            eventually("the request is forwarded", || proxy.requests_forwarded() == 3);
            proxy.cut_all()
        });
        let result = metadata(&mut conn);
        assert!(matches!(result, Err(RawError::Io(_))), "{result:?}");
        cutter.join().unwrap()
    });
    assert!(started.elapsed() < Duration::from_secs(30), "failed only after {:?}", started.elapsed());
    assert_eq!((cut, proxy.cuts()), (1, 1));
    eventually("the cut connection is gone", || proxy.open_connections() == 0);
    assert_eq!(proxy.cut_all(), 0, "nothing left to cut");

    proxy.resume();
    let mut again = NegotiatedConnection::connect(proxy.bootstrap());
    metadata(&mut again).unwrap();
    assert_eq!((proxy.connections_accepted(), proxy.cuts()), (2, 1));
}

#[test]
fn a_stall_delays_a_response_by_at_least_the_stall_time() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    let (requests, responses) = (proxy.requests_forwarded(), proxy.responses_forwarded());
    let stall = Duration::from_millis(1500);
    proxy.stall(stall);
    let started = Instant::now();
    thread::scope(|s| {
        let sender = s.spawn(|| metadata(&mut conn));
        // Requests still flow during the stall; the response waits.
        eventually("the request is forwarded", || proxy.requests_forwarded() == requests + 1);
        // (Read in this order, a response already forwarded shows the stall as over.)
        let (forwarded, now) = (proxy.responses_forwarded(), started.elapsed());
        assert!(forwarded == responses || now >= stall, "a response passed after {now:?}");
        sender.join().unwrap().unwrap();
    });
    let took = started.elapsed();
    assert!(took >= stall, "the response came after {took:?}, within the {stall:?} stall");
    assert_eq!(proxy.responses_forwarded(), responses + 1);
    assert_eq!(proxy.cuts(), 0);

    // A long stall ended early by resume().
    proxy.stall(Duration::from_secs(60));
    let started = Instant::now();
    thread::scope(|s| {
        s.spawn(|| {
            thread::sleep(Duration::from_millis(300));
            proxy.resume();
        });
        metadata(&mut conn).unwrap();
    });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn a_response_cut_before_it_is_lost_but_the_broker_did_the_work() {
    let broker = Broker::shared_kafka();
    let recorder = Recorder::new();
    let proxy = FaultProxy::bind_with(vec![recorder.clone() as std::sync::Arc<dyn FrameHook>]).unwrap();
    proxy.forward_to(broker.addr());
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    let topic = unique_topic("proxy-cut");
    let request = CreateTopicsRequest {
        topics: vec![CreatableTopic {
            name: topic.clone(),
            num_partitions: 1,
            replication_factor: 1,
            ..Default::default()
        }],
        timeout_ms: 30_000,
        ..Default::default()
    };
    let version = conn.version::<CreateTopicsRequest>();
    proxy.cut_at_frame(Direction::Responses, 1, CutPoint::Before);
    let result = conn.raw().try_send(version, &request);
    assert!(matches!(result, Err(RawError::Io(_))), "{result:?}");
    assert_eq!(proxy.cuts(), 1);

    // The client saw no answer, and the recording (what the client saw) has none either.
    let create = recorder.all_frames().into_iter().find(|f| f.api_key == ApiKey::CREATE_TOPICS);
    assert!(create.is_some_and(|f| f.response.is_none()));
    // The broker created the topic all the same.
    NegotiatedConnection::connect(broker.addr()).wait_for_leaders(&topic, 1);
}

#[test]
fn a_cut_inside_a_response_leaves_the_client_half_a_frame() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    proxy.cut_at_frame(Direction::Responses, 1, CutPoint::Inside);
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(&api_versions_frame(1)).unwrap();
    let mut got = Vec::new();
    stream.read_to_end(&mut got).unwrap();
    assert!(got.len() > 4, "got {got:?}");
    let size = i32::from_be_bytes([got[0], got[1], got[2], got[3]]) as usize;
    assert!(got.len() < 4 + size, "a whole frame of {size} bytes came: {} bytes", got.len());
    assert_eq!(got.len(), 4 + size / 2);
    assert_eq!((proxy.cuts(), proxy.responses_forwarded()), (1, 0));

    // Cut before a request: the broker never sees it, the client gets nothing.
    proxy.cut_at_frame(Direction::Requests, 1, CutPoint::Before);
    let mut stream = TcpStream::connect(proxy.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(&api_versions_frame(1)).unwrap();
    let mut got = Vec::new();
    // Closed under an unread request: an end of stream or a reset, and no bytes either way.
    let _ = stream.read_to_end(&mut got);
    assert!(got.is_empty(), "got {got:?}");
    assert_eq!((proxy.cuts(), proxy.requests_forwarded()), (2, 1));
}

#[test]
fn cut_after_frames_counts_both_directions() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    // Metadata request (1) and response (2) pass; the next request (3) reaches the broker,
    // then the cut.
    proxy.cut_after_frames(3);
    metadata(&mut conn).unwrap();
    let result = metadata(&mut conn);
    assert!(matches!(result, Err(RawError::Io(_))), "{result:?}");
    assert_eq!((proxy.requests_forwarded(), proxy.responses_forwarded()), (3, 2));
    assert_eq!(proxy.cuts(), 1);

    // A disarmed cut does not fire.
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    proxy.cut_after_frames(1);
    proxy.disarm();
    metadata(&mut conn).unwrap();
    assert_eq!(proxy.cuts(), 1);
}

#[test]
fn cut_every_cuts_until_stopped() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    let cutter = proxy.cut_every(Duration::from_millis(200));
    for _ in 0..2 {
        let mut conn = RawConnection::connect(proxy.bootstrap()).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let started = Instant::now();
        // Nothing was sent, so only a cut ends this read.
        let result = conn.read_frame();
        assert!(matches!(result, Err(RawError::Io(_))), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(10), "cut after {:?}", started.elapsed());
    }
    let cut = cutter.stop();
    assert!(cut >= 2, "{cut} connections cut");
    assert_eq!(proxy.cuts(), cut as u64);

    // Stopped: a connection lives past several periods.
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    thread::sleep(Duration::from_millis(700));
    metadata(&mut conn).unwrap();
    assert_eq!(proxy.cuts(), cut as u64);
}

#[test]
fn refusing_and_not_listening_keep_clients_out() {
    let proxy = FaultProxy::start(Broker::shared_kafka().addr()).unwrap();
    proxy.refuse(true);
    // The TCP connect succeeds (the listener is there); the connection closes unanswered.
    let mut conn = RawConnection::connect(proxy.bootstrap()).unwrap();
    let result = conn.try_send(3, &api_versions_request());
    assert!(matches!(result, Err(RawError::Io(_))), "{result:?}");
    assert_eq!((proxy.connections_refused(), proxy.connections_accepted()), (1, 0));

    proxy.refuse(false);
    let mut open = NegotiatedConnection::connect(proxy.bootstrap());
    assert_eq!(proxy.connections_accepted(), 1);

    proxy.stop_listening();
    let err = RawConnection::connect(proxy.bootstrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    // Connections already open are left alone.
    metadata(&mut open).unwrap();

    proxy.resume_listening().unwrap();
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    metadata(&mut conn).unwrap();
    assert_eq!((proxy.connections_accepted(), proxy.connections_refused(), proxy.cuts()), (2, 1, 0));
}

/// The flow for "a broker that is down at start": the proxy's address is the broker's address;
/// the proxy refuses until the broker runs behind it. tansu starts in well under a second, and
/// the flow is the same for Kafka.
#[test]
fn a_broker_down_at_start_comes_up_on_the_proxy_address() {
    let proxy = FaultProxy::bind().unwrap();
    proxy.refuse(true);
    let mut early = RawConnection::connect(proxy.bootstrap()).unwrap();
    assert!(early.try_send(3, &api_versions_request()).is_err(), "the broker is down");

    // No longer refusing but with no broker yet: a connection waits, as in a listen backlog.
    proxy.refuse(false);
    let mut waiting = RawConnection::connect(proxy.bootstrap()).unwrap();
    waiting.write_raw(&api_versions_frame(1)[4..]).unwrap();

    let broker = proxy.start_broker(Broker::builder(BrokerKind::Tansu)).unwrap();
    assert_eq!((proxy.upstream(), broker.advertised_port()), (Some(broker.addr()), proxy.port()));
    let answer = waiting.read_frame().unwrap();
    let (_, body) = klamm_protocol::decode_response::<ApiVersionsResponse>(answer, 3).unwrap();
    assert_eq!(body.error_code, 0);
    assert!(body.api_keys.iter().any(|k| k.api_key == MetadataRequest::API_KEY.0));

    // Metadata through the proxy advertises the proxy: clients stay on it.
    let mut conn = NegotiatedConnection::connect(proxy.bootstrap());
    let md = conn.metadata(None);
    assert!(!md.brokers.is_empty());
    for b in &md.brokers {
        assert_eq!((b.host.as_str(), b.port), ("127.0.0.1", i32::from(proxy.port())), "{md:?}");
    }
    assert_eq!((proxy.connections_refused(), proxy.connections_accepted()), (1, 2));
}
