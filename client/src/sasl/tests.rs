//! The configuration, and whole exchanges against a scripted fake broker on 127.0.0.1.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use bytes::{Bytes, BytesMut};
use klamm_protocol::api::api_versions::{ApiVersion, ApiVersionsResponse};
use klamm_protocol::api::metadata::{MetadataRequest, MetadataResponse};
use klamm_protocol::api::sasl_authenticate::SaslAuthenticateResponse;
use klamm_protocol::api::sasl_handshake::SaslHandshakeResponse;
use klamm_protocol::{decode_request_frame, encode_response, AnyRequest, ApiKey, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::{ClientConfig, ConnectionConfig, SecurityProtocol};

#[test]
fn properties_and_jaas_set_the_credentials() {
    let mut c = SaslConfig::default();
    assert!(c.set("sasl.mechanisms", "scram-sha-256").unwrap());
    assert!(c.set("sasl.username", "alice").unwrap());
    assert!(c.set("sasl.password", "hunter2").unwrap());
    assert!(!c.set("sasl.kerberos.service.name", "kafka").unwrap());
    assert_eq!(c.mechanism, SaslMechanism::ScramSha256);
    c.validate().unwrap();

    let mut j = SaslConfig::default();
    j.set(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="bob" password="hunter2";"#,
    )
    .unwrap();
    assert_eq!(j.username.as_deref(), Some("bob"));
    assert_eq!(j.password.as_ref().map(Secret::expose), Some("hunter2"));

    let mut o = SaslConfig::default();
    o.set("sasl.mechanism", "OAUTHBEARER").unwrap();
    assert!(o.validate().unwrap_err().to_string().contains("sasl.oauthbearer.config"));
    o.set(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
         unsecuredLoginStringClaim_sub=\"carol\" unsecuredLoginExtension_trace=\"7\";",
    )
    .unwrap();
    let jwt = o.unsecured_jwt.clone().unwrap();
    assert_eq!(jwt.principal, "carol");
    assert_eq!(jwt.extensions, [("trace".to_owned(), "7".to_owned())]);
    o.validate().unwrap();

    let e = SaslConfig::default().set("sasl.jaas.config", "com.example.Custom required;").unwrap_err();
    assert!(e.to_string().contains("com.example.Custom"), "{e}");
    let e = SaslConfig::default().set("sasl.mechanism", "GSSAPI").unwrap_err();
    assert!(e.to_string().contains("Kerberos"), "{e}");
    assert!(SaslConfig::default().validate().unwrap_err().to_string().contains("sasl.username"));
}

#[test]
fn no_secret_in_debug_output() {
    let mut config = ClientConfig::from_properties([
        ("bootstrap.servers", "h:1"),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "alice"),
        ("sasl.password", "hunter2"),
    ])
    .unwrap();
    config.validate().unwrap();
    let text = format!("{config:?} {config:#?}");
    assert!(text.contains("alice") && !text.contains("hunter2"), "{text}");
    config.set(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="jaas-pw";"#,
    )
    .unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("jaas-pw"), "{text}");
    let token = UnsecuredJwt::new("p").issue();
    assert!(!format!("{token:?}").contains(token.value.expose()));
}

#[test]
fn reauthentication_falls_in_the_java_window() {
    let lifetime = Duration::from_secs(100);
    for _ in 0..100 {
        let d = reauthentication_delay(lifetime);
        assert!(d >= Duration::from_secs(85) && d < Duration::from_secs(95), "{d:?}");
    }
}

/// One request as the fake broker read it.
struct Received {
    version: i16,
    correlation_id: i32,
    body: AnyRequest,
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await.ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(size) as usize];
    stream.read_exact(&mut frame).await.ok()?;
    let (header, body) = decode_request_frame(Bytes::from(frame)).expect("a valid request");
    Some(Received { version: header.api_version, correlation_id: header.correlation_id, body })
}

async fn respond<R: Response>(stream: &mut TcpStream, req: &Received, body: &R) {
    let mut buf = BytesMut::new();
    encode_response(&mut buf, req.correlation_id, req.version, body).expect("encodable");
    stream.write_all(&buf).await.expect("write");
}

/// Accepts one client and answers its ApiVersions with these SaslHandshake versions, and
/// SaslAuthenticate 0..=2 and Metadata 0..=12.
async fn accept(listener: &TcpListener, handshake_max: i16) -> TcpStream {
    let (mut stream, _) = listener.accept().await.expect("accept");
    let req = read_request(&mut stream).await.expect("ApiVersions");
    assert!(matches!(req.body, AnyRequest::ApiVersions(_)), "ApiVersions comes first");
    let api = |key: ApiKey, max: i16| ApiVersion {
        api_key: key.0,
        min_version: 0,
        max_version: max,
        ..Default::default()
    };
    let body = ApiVersionsResponse {
        api_keys: vec![
            api(ApiKey::API_VERSIONS, 4),
            api(ApiKey::METADATA, 12),
            api(ApiKey::SASL_HANDSHAKE, handshake_max),
            api(ApiKey::SASL_AUTHENTICATE, 2),
        ],
        ..Default::default()
    };
    respond(&mut stream, &req, &body).await;
    stream
}

fn plain_config(user: &str, password: &str) -> ConnectionConfig {
    ConnectionConfig {
        security_protocol: SecurityProtocol::SaslPlaintext,
        sasl: SaslConfig::plain(user, password),
        ..Default::default()
    }
}

/// Answers a SaslHandshake for PLAIN and then a SaslAuthenticate carrying `\0u\0p`, giving the
/// session `lifetime_ms`.
async fn authenticate_plain(stream: &mut TcpStream, lifetime_ms: i64) {
    let handshake = read_request(stream).await.expect("SaslHandshake");
    match &handshake.body {
        AnyRequest::SaslHandshake(h) => {
            assert_eq!((handshake.version, h.mechanism.as_str()), (1, "PLAIN"));
        }
        other => panic!("expected SaslHandshake, got {other:?}"),
    }
    let ok = SaslHandshakeResponse { mechanisms: vec!["PLAIN".into()], ..Default::default() };
    respond(stream, &handshake, &ok).await;
    let auth = read_request(stream).await.expect("SaslAuthenticate");
    match &auth.body {
        AnyRequest::SaslAuthenticate(a) => assert_eq!(&a.auth_bytes[..], b"\0u\0p"),
        other => panic!("expected SaslAuthenticate, got {other:?}"),
    }
    let done = SaslAuthenticateResponse { session_lifetime_ms: lifetime_ms, ..Default::default() };
    respond(stream, &auth, &done).await;
}

/// Sessions of 300 ms; four tasks pipeline Metadata requests. The broker holds every Metadata
/// answer back until a re-authentication has begun (until the third one), so responses to
/// requests written before it arrive during it. Between the SaslHandshake of a
/// re-authentication and its SaslAuthenticate answer, nothing else may arrive.
#[tokio::test]
async fn reauthentication_holds_new_requests_back_and_loses_none_in_flight() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let reauthentications = Arc::new(AtomicU32::new(0));
    let count = Arc::clone(&reauthentications);
    let broker = tokio::spawn(async move {
        let mut stream = accept(&listener, 1).await;
        authenticate_plain(&mut stream, 300).await;
        let mut held: Vec<Received> = Vec::new();
        let mut answered_during_reauth = 0;
        while let Some(req) = read_request(&mut stream).await {
            match &req.body {
                AnyRequest::Metadata(_) => {
                    held.push(req);
                    if count.load(Ordering::SeqCst) >= 3 {
                        for r in held.drain(..) {
                            respond(&mut stream, &r, &MetadataResponse::default()).await;
                        }
                    }
                }
                AnyRequest::SaslHandshake(_) => {
                    answered_during_reauth += held.len();
                    for r in held.drain(..) {
                        respond(&mut stream, &r, &MetadataResponse::default()).await;
                    }
                    respond(&mut stream, &req, &SaslHandshakeResponse::default()).await;
                    let auth = read_request(&mut stream).await.expect("SaslAuthenticate");
                    assert!(
                        matches!(auth.body, AnyRequest::SaslAuthenticate(_)),
                        "a request was written during re-authentication: {:?}",
                        auth.body
                    );
                    let done = SaslAuthenticateResponse { session_lifetime_ms: 300, ..Default::default() };
                    respond(&mut stream, &auth, &done).await;
                    count.fetch_add(1, Ordering::SeqCst);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        answered_during_reauth
    });
    let conn = Connection::connect(&addr, plain_config("u", "p")).await.expect("connect");
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (conn, stop) = (conn.clone(), Arc::clone(&stop));
            tokio::spawn(async move {
                let mut answered = 0;
                while !stop.load(Ordering::SeqCst) {
                    conn.send(&MetadataRequest::default()).await.expect("answered");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while reauthentications.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "no third re-authentication");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        assert!(w.await.expect("worker") > 0);
    }
    drop(conn);
    let answered_during_reauth = broker.await.expect("the broker saw nothing out of order");
    assert!(answered_during_reauth > 0, "no response arrived during a re-authentication");
}

#[tokio::test]
async fn broker_refusals_are_authentication_errors_that_say_why() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let broker = tokio::spawn(async move {
        // 1: a mechanism the broker does not enable.
        let mut stream = accept(&listener, 1).await;
        let req = read_request(&mut stream).await.expect("SaslHandshake");
        let refusal = SaslHandshakeResponse {
            error_code: ErrorCode::UNSUPPORTED_SASL_MECHANISM.0,
            mechanisms: vec!["SCRAM-SHA-512".into(), "OAUTHBEARER".into()],
            ..Default::default()
        };
        respond(&mut stream, &req, &refusal).await;
        // 2: a broker from before Kafka 1.0: nothing but the ApiVersions exchange happens.
        let _old = accept(&listener, 0).await;
        // 3: a wrong password.
        let mut stream = accept(&listener, 1).await;
        let req = read_request(&mut stream).await.expect("SaslHandshake");
        respond(&mut stream, &req, &SaslHandshakeResponse::default()).await;
        let req = read_request(&mut stream).await.expect("SaslAuthenticate");
        let refusal = SaslAuthenticateResponse {
            error_code: ErrorCode::SASL_AUTHENTICATION_FAILED.0,
            error_message: Some("Authentication failed: Invalid username or password".into()),
            ..Default::default()
        };
        respond(&mut stream, &req, &refusal).await;
        // 4: a PLAINTEXT listener.
        let mut stream = accept(&listener, 1).await;
        let req = read_request(&mut stream).await.expect("SaslHandshake");
        let refusal =
            SaslHandshakeResponse { error_code: ErrorCode::ILLEGAL_SASL_STATE.0, ..Default::default() };
        respond(&mut stream, &req, &refusal).await;
    });
    for needle in [
        "does not enable PLAIN on this listener; it enables: SCRAM-SHA-512, OAUTHBEARER",
        "only has SaslHandshake v0",
        "PLAIN: Authentication failed: Invalid username or password",
        "did not expect SASL here",
    ] {
        let e = Connection::connect(&addr, plain_config("u", "secret-pw")).await.expect_err(needle);
        assert_eq!(e.kind(), &ErrorKind::Authentication, "{e:?}");
        assert!(e.is_authentication_error() && !e.is_retriable());
        let text = e.to_string();
        assert!(text.contains(needle), "{needle:?} not in {text}");
        assert!(text.contains(&addr), "the broker is named: {text}");
        assert!(!format!("{text} {e:?}").contains("secret-pw"));
    }
    broker.await.expect("broker");
}
