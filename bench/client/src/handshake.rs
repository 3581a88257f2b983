//! The cost of opening a connection over TLS (`client-bench handshake`): Apache Kafka with a
//! TLS listener (certificates made for the run), then, for plaintext and for TLS with each
//! crypto provider, a child process that opens `count` connections one after another and
//! closes each. A connection is what the client does before its first request: TCP connect,
//! the TLS handshake (ECDSA P-256 certificate, TLS 1.3 as the JDK negotiates it) and
//! ApiVersions, and for `klamm-sasl-ssl` (a SASL_SSL listener) SaslHandshake and the
//! SCRAM-SHA-512 exchange after it. The child reports the wall time; its CPU comes from `wait4`,
//! as for the throughput runs, so the broker's share is not counted.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use klamm::{ClientConfig, Connection, SaslMechanism, TlsConfig};
use klamm_tests::{Broker, BrokerCertificate, BrokerKind, Pki};

use crate::driver::{use_kafka_jvm_opts, wait4};
use crate::worker::BoxError;
use crate::{KLAMM_SASL_SSL, TLS_GRAVIOLA, TLS_RING};

/// Starts Kafka and measures each client `runs` times; prints a markdown table.
pub fn run(count: usize, runs: usize) -> Result<(), BoxError> {
    use_kafka_jvm_opts();
    let pki = Pki::new()?;
    let builder =
        pki.ssl_listener(Broker::builder(BrokerKind::Kafka), "SSL", BrokerCertificate::Good, false, None);
    let broker = crate::driver::sasl_ssl_listener(&pki, builder).start()?;
    let secure = crate::driver::Secure {
        ssl: broker.listener_addr("SSL"),
        sasl_ssl: broker.listener_addr("SASLSSL"),
        ca: pki.ca(),
    };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let admin = klamm::Admin::connect(ClientConfig::new(&broker.bootstrap())).await?;
        crate::driver::create_scram_user(&admin, &secure).await
    })?;
    let ca = pki.ca().display().to_string();
    let clients = ["klamm", TLS_RING, TLS_GRAVIOLA, KLAMM_SASL_SSL];
    let mut rows: Vec<(&str, Vec<(f64, f64)>)> = clients.iter().map(|c| (*c, Vec::new())).collect();
    // One unrecorded round first: the broker's JIT warms up to the TLS path.
    for round in 0..=runs {
        for (client, results) in rows.iter_mut() {
            let addr = match *client {
                "klamm" => broker.bootstrap(),
                KLAMM_SASL_SSL => secure.sasl_ssl.clone(),
                _ => secure.ssl.clone(),
            };
            let mut command = Command::new(std::env::current_exe()?);
            command.args(["connect", "--client", client, "--brokers", &addr, "--count", &count.to_string()]);
            if *client != "klamm" {
                command.args(["--ca", &ca]);
            }
            let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).spawn()?;
            let mut out = String::new();
            child.stdout.take().ok_or("no stdout")?.read_to_string(&mut out)?;
            let (status, usage) = wait4(child.id() as libc::pid_t)?;
            if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
                return Err(format!("{client} connect failed (wait status {status:#x})").into());
            }
            let wall: f64 = out.trim().parse().map_err(|_| format!("{client}: bad report {out:?}"))?;
            let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime);
            let per = |x: f64| x * 1e3 / count as f64;
            eprintln!(
                "round {round} {client}: {:.2} ms wall, {:.2} ms CPU per connection",
                per(wall),
                per(cpu)
            );
            if round > 0 {
                results.push((per(wall), per(cpu)));
            }
        }
    }
    println!("| client | ms per connection (wall) | CPU ms per connection (client) |");
    println!("| --- | --- | --- |");
    for (client, results) in &rows {
        let wall = crate::driver::median(results.iter().map(|r| r.0).collect());
        let cpu = crate::driver::median(results.iter().map(|r| r.1).collect());
        println!("| {client} | {wall:.2} | {cpu:.2} |");
    }
    println!();
    println!(
        "{count} connections per run, median of {runs} runs; CPU includes process start-up and the runtime."
    );
    Ok(())
}

/// The child: `count` connections to `brokers`, one after another (logging in as the bench's
/// SCRAM user when `scram`); prints the wall seconds.
pub async fn connect(brokers: &str, ca: Option<&str>, scram: bool, count: usize) -> Result<(), BoxError> {
    let mut client = ClientConfig::new(brokers);
    if let Some(ca) = ca {
        client = client.tls(TlsConfig::new().ca_file(ca));
    }
    if scram {
        client = client.sasl_scram(SaslMechanism::ScramSha512, crate::SCRAM_USER, crate::SCRAM_PASSWORD);
    }
    client.validate()?;
    let start = Instant::now();
    for _ in 0..count {
        let conn = Connection::connect(brokers, client.connection.clone()).await?;
        conn.close().await;
    }
    println!("{}", start.elapsed().as_secs_f64());
    Ok(())
}
