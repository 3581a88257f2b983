//! The driver (`client-bench run`): starts each broker, creates a fresh 4-partition topic per
//! produce run, runs every (client, direction, run) as a child process of this binary, and
//! takes that child's CPU time (user + sys) and peak RSS from `wait4` when it exits, so neither
//! the broker nor the driver is counted. It checks that every produced topic holds exactly the
//! records sent, and prints medians and raw runs as markdown.
//!
//! Order: for each run, every producer (each on its own new topic), then every consumer, all
//! reading back the topic klamm wrote in that run (the same bytes for every consumer). Each run
//! starts with the next client in the list, and unrecorded warm-up rounds come first: the first
//! minute of a fresh Kafka broker (JIT compilation) is slower than the rest.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use klamm::{Admin, ClientConfig, Consumer, ConsumerConfig, CreateTopicsOptions, NewTopic};
use klamm::{OffsetReset, SaslMechanism, ScramCredentialChange, TlsConfig, TopicPartition};
use klamm_tests::{Broker, BrokerBuilder, BrokerCertificate, BrokerKind, Pki};

use crate::worker::{BoxError, Report, Tally, PARTITIONS, STALL};

/// How long the check of a produced topic waits for records beyond the expected count.
const EXTRA_RECORD_WAIT: Duration = Duration::from_millis(500);

/// How long a new SCRAM credential may take to work on the SASL_SSL listener.
const SCRAM_USER_WAIT: Duration = Duration::from_secs(30);

/// The JVM options of Kafka's own start scripts (`KAFKA_HEAP_OPTS` and
/// `KAFKA_JVM_PERFORMANCE_OPTS`), instead of the test harness's start-fast settings (C1 only,
/// serial GC, 512 MiB), unless `KLAMM_KAFKA_JVM_OPTS` says otherwise.
const KAFKA_JVM_OPTS: &str = "-Xmx1G -Xms1G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
     -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true";

/// What `run` was asked for.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Brokers, in order.
    pub brokers: Vec<BrokerKind>,
    /// Recorded runs per (client, direction, broker).
    pub runs: usize,
    /// Unrecorded rounds of every client first, per broker.
    pub warmup: usize,
    /// Records per run.
    pub count: u64,
    /// Producers to measure.
    pub producers: Vec<String>,
    /// Consumers to measure (empty: none).
    pub consumers: Vec<String>,
    /// Pending-delivery window of the klamm and rskafka producers.
    pub window: usize,
}

/// One measured child process.
#[derive(Debug, Clone)]
struct Sample {
    report: Report,
    /// User + system CPU seconds of the child.
    cpu: f64,
    /// Peak RSS of the child, MiB (its `VmHWM`; see [`Report::with_peak_rss`]).
    rss_mib: f64,
    /// `ru_maxrss` from `wait4`, MiB: at least the driver's own peak, kept for comparison.
    maxrss_mib: f64,
    /// CPU seconds the broker spent while the child ran.
    broker_cpu: Option<f64>,
}

/// Gives Kafka brokers started from now on [`KAFKA_JVM_OPTS`], unless the environment sets
/// its own.
pub fn use_kafka_jvm_opts() {
    if std::env::var_os("KLAMM_KAFKA_JVM_OPTS").is_none() {
        std::env::set_var("KLAMM_KAFKA_JVM_OPTS", KAFKA_JVM_OPTS);
    }
}

/// Runs the plan and prints the results.
pub fn run(plan: &Plan) -> Result<(), BoxError> {
    use_kafka_jvm_opts();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let began = Instant::now();
    let load_before = load_average();
    let mut samples: BTreeMap<(String, String, String), Vec<Sample>> = BTreeMap::new();
    for &kind in &plan.brokers {
        eprintln!("== starting {}", kind.name());
        // Kafka also gets a TLS listener and a SASL_SSL one (certificates made for this run,
        // SCRAM-SHA-512) for the TLS and SASL_SSL clients; tansu has neither, so they are
        // skipped there.
        let pki = Pki::new()?;
        let mut builder = Broker::builder(kind).partitions(PARTITIONS as u32);
        if kind == BrokerKind::Kafka {
            builder = pki.ssl_listener(builder, "SSL", BrokerCertificate::Good, false, None);
            builder = sasl_ssl_listener(&pki, builder);
        }
        let broker = builder.start()?;
        let secure = (kind == BrokerKind::Kafka).then(|| Secure {
            ssl: broker.listener_addr("SSL"),
            sasl_ssl: broker.listener_addr("SASLSSL"),
            ca: pki.ca(),
        });
        let skip = |client: &String| secure.is_none() && is_tls(client);
        let admin = rt.block_on(Admin::connect(ClientConfig::new(&broker.bootstrap())))?;
        if let Some(secure) = &secure {
            rt.block_on(create_scram_user(&admin, secure))?;
        }
        let broker_pid = std::fs::read_to_string(broker.dir().join("broker.pid"))
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        let nonce = std::process::id();
        // Round 0..warmup: unrecorded (the broker's JIT, page cache, allocator pools warm up).
        for round in 0..plan.warmup + plan.runs {
            let recorded = round >= plan.warmup;
            let label = match round.checked_sub(plan.warmup) {
                Some(run) => format!("run {}", run + 1),
                None => format!("warm-up {}", round + 1),
            };
            let mut producers: Vec<String> = plan.producers.iter().filter(|c| !skip(c)).cloned().collect();
            if producers.is_empty() {
                // Consumers only: klamm writes their topic, unmeasured.
                producers.push(String::new());
            }
            // Each run starts with another client, so no client always runs first.
            let n = producers.len();
            producers.rotate_left(round % n);
            let mut consumers: Vec<String> = plan.consumers.iter().filter(|c| !skip(c)).cloned().collect();
            if !consumers.is_empty() {
                let n = consumers.len();
                consumers.rotate_left(round % n);
            }
            let mut source = None;
            for client in &producers {
                let name = if client.is_empty() { "klamm" } else { client.as_str() };
                let topic = format!("bench-{name}-{}-{round}-{nonce}", kind.name());
                rt.block_on(create_topic(&admin, &topic))?;
                let sample = measure(plan, &broker, secure.as_ref(), broker_pid, name, "produce", &topic)?;
                rt.block_on(check_topic(&broker.bootstrap(), &topic, plan.count))?;
                if name == "klamm" || source.is_none() {
                    source = Some(topic);
                }
                if !client.is_empty() {
                    print_progress(kind, &label, &sample);
                    if recorded {
                        samples
                            .entry((kind.name().into(), "produce".into(), name.into()))
                            .or_default()
                            .push(sample);
                    }
                }
            }
            let topic = source.ok_or("no topic to consume")?;
            for client in &consumers {
                let sample = measure(plan, &broker, secure.as_ref(), broker_pid, client, "consume", &topic)?;
                print_progress(kind, &label, &sample);
                if recorded {
                    samples
                        .entry((kind.name().into(), "consume".into(), client.clone()))
                        .or_default()
                        .push(sample);
                }
            }
        }
        drop(admin);
        drop(broker);
    }
    let load_after = load_average();
    print_tables(plan, &samples);
    println!();
    println!(
        "Wall time {:.0} s. Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn create_topic(admin: &Admin, topic: &str) -> Result<(), BoxError> {
    let options = CreateTopicsOptions::default().wait_for_leaders(true);
    for (name, result) in admin.create_topics_with(&[NewTopic::new(topic, PARTITIONS, 1)], &options).await {
        result.map_err(|e| format!("creating {name}: {e}"))?;
    }
    Ok(())
}

/// Fails unless the topic holds exactly `count` records (a producer that lost or duplicated
/// records is not measured): reads it all back with klamm's consumer, unmeasured, and waits a
/// moment after the last expected record for any extra one. (tansu 0.6 answers ListOffsets
/// "latest" with less than the high watermark, so offsets alone cannot tell.)
async fn check_topic(brokers: &str, topic: &str, count: u64) -> Result<(), BoxError> {
    let config = ConsumerConfig::new(brokers)
        .auto_offset_reset(OffsetReset::Earliest)
        .fetch_max_wait(Duration::from_millis(100));
    let mut consumer = Consumer::new(config)?;
    consumer.assign((0..PARTITIONS).map(|p| TopicPartition::new(topic, p)));
    let mut tally = Tally::new();
    while tally.records < count {
        let records = consumer.poll(STALL).await?;
        if records.is_empty() {
            return Err(format!("{topic}: only {} of {count} records", tally.records).into());
        }
        for r in &records {
            tally.record(r.partition, r.offset, r.value.as_deref())?;
        }
    }
    let deadline = tokio::time::Instant::now() + EXTRA_RECORD_WAIT;
    while tokio::time::Instant::now() < deadline {
        tally.records += consumer.poll(EXTRA_RECORD_WAIT).await?.len() as u64;
    }
    consumer.close(Duration::from_secs(5)).await?;
    if tally.records != count {
        return Err(format!("{topic} holds {} records, {count} were sent", tally.records).into());
    }
    Ok(())
}

/// The Kafka broker's TLS listeners and the CA to trust.
pub(crate) struct Secure {
    /// The SSL listener.
    pub(crate) ssl: String,
    /// The SASL_SSL listener (SCRAM-SHA-512).
    pub(crate) sasl_ssl: String,
    /// The CA file.
    pub(crate) ca: PathBuf,
}

/// `builder` with a SASL_SSL listener `SASLSSL`: `pki`'s certificate, SCRAM-SHA-512.
pub(crate) fn sasl_ssl_listener(pki: &Pki, builder: BrokerBuilder) -> BrokerBuilder {
    pki.tls_listener(builder, "SASLSSL", "SASL_SSL", BrokerCertificate::Good, false, None)
        .config("listener.name.saslssl.sasl.enabled.mechanisms", "SCRAM-SHA-512")
        .config(
            "listener.name.saslssl.scram-sha-512.sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        )
}

/// Whether `client` connects over TLS (SSL or SASL_SSL).
fn is_tls(client: &str) -> bool {
    client.starts_with("klamm-tls") || is_sasl_ssl(client) || client == crate::RDKAFKA_TLS
}

/// Whether `client` connects over SASL_SSL.
fn is_sasl_ssl(client: &str) -> bool {
    client == crate::KLAMM_SASL_SSL || client == crate::RDKAFKA_SASL_SSL
}

/// Creates [`SCRAM_USER`](crate::SCRAM_USER) (over the plaintext listener) and waits until a
/// client can log in as it on the SASL_SSL listener: the broker takes a moment to learn a new
/// credential.
pub(crate) async fn create_scram_user(admin: &Admin, secure: &Secure) -> Result<(), BoxError> {
    let change =
        ScramCredentialChange::upsert(crate::SCRAM_USER, SaslMechanism::ScramSha512, crate::SCRAM_PASSWORD);
    for (user, result) in admin.alter_user_scram_credentials(&[change]).await {
        result.map_err(|e| format!("creating SCRAM user {user}: {e}"))?;
    }
    let config = ClientConfig::new(&secure.sasl_ssl).tls(TlsConfig::new().ca_file(&secure.ca)).sasl_scram(
        SaslMechanism::ScramSha512,
        crate::SCRAM_USER,
        crate::SCRAM_PASSWORD,
    );
    let deadline = Instant::now() + SCRAM_USER_WAIT;
    loop {
        match klamm::Client::connect(config.clone()).await {
            Ok(client) => {
                client.close().await;
                return Ok(());
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for the SCRAM user: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(format!("logging in as the SCRAM user over SASL_SSL: {e}").into()),
        }
    }
}

/// Runs one worker as a child and measures it. `secure` has the TLS listeners and the CA.
fn measure(
    plan: &Plan,
    broker: &Broker,
    secure: Option<&Secure>,
    broker_pid: Option<i32>,
    client: &str,
    direction: &str,
    topic: &str,
) -> Result<Sample, BoxError> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg(direction);
    match secure.filter(|_| is_tls(client)) {
        Some(s) => {
            let addr = if is_sasl_ssl(client) { &s.sasl_ssl } else { &s.ssl };
            command.args(["--brokers", addr.as_str(), "--ca", &s.ca.display().to_string()])
        }
        None => command.args(["--brokers", &broker.bootstrap()]),
    };
    let mut child = command
        .args(["--client", client, "--topic", topic])
        .args(["--count", &plan.count.to_string(), "--window", &plan.window.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let broker_before = broker_pid.and_then(process_cpu);
    let mut out = String::new();
    child.stdout.take().ok_or("no stdout")?.read_to_string(&mut out)?;
    let (status, usage) = wait4(child.id() as libc::pid_t)?;
    let broker_after = broker_pid.and_then(process_cpu);
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{client} {direction} on {topic} failed (wait status {status:#x})").into());
    }
    let report: Report = serde_json::from_str(out.trim())
        .map_err(|e| format!("{client} {direction}: bad report {out:?}: {e}"))?;
    if report.records != plan.count {
        return Err(
            format!("{client} {direction}: {} records, expected {}", report.records, plan.count).into()
        );
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    if report.peak_rss_kib == 0 {
        return Err(format!("{client} {direction}: no peak RSS in the report").into());
    }
    Ok(Sample {
        cpu: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        rss_mib: report.peak_rss_kib as f64 / 1024.0,
        // ru_maxrss is in KiB on Linux.
        maxrss_mib: usage.ru_maxrss as f64 / 1024.0,
        broker_cpu: broker_before.zip(broker_after).map(|(a, b)| b - a),
        report,
    })
}

/// Reaps `pid` and returns its wait status and resource usage.
pub(crate) fn wait4(pid: libc::pid_t) -> Result<(i32, libc::rusage), BoxError> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of that plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our child, not reaped yet (std's Child never waited on it); status
        // and usage point to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
}

/// User + system CPU seconds of a running process, from `/proc/<pid>/stat` (threads included).
fn process_cpu(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(", "))
        .unwrap_or_else(|_| "unknown".into())
}

fn print_progress(kind: BrokerKind, label: &str, s: &Sample) {
    eprintln!(
        "{} {label}: {} {}: {:.0} msgs/s, {:.2} CPU-s per 1M, {:.1} MiB peak RSS (wait4: {:.1}){}",
        kind.name(),
        s.report.client,
        s.report.direction,
        s.report.rate(),
        s.cpu * 1e6 / s.report.records as f64,
        s.rss_mib,
        s.maxrss_mib,
        s.broker_cpu.map(|b| format!(", broker {b:.2} CPU-s")).unwrap_or_default(),
    );
}

pub(crate) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn thousands(rate: f64) -> String {
    if rate >= 1e6 {
        format!("{:.2}M", rate / 1e6)
    } else {
        format!("{:.0}k", rate / 1e3)
    }
}

fn print_tables(plan: &Plan, samples: &BTreeMap<(String, String, String), Vec<Sample>>) {
    let per_m = |s: &Sample| s.cpu * 1e6 / s.report.records as f64;
    // Rows in the order asked for: broker, then direction, then client.
    let mut rows = Vec::new();
    for kind in &plan.brokers {
        for (direction, clients) in [("produce", &plan.producers), ("consume", &plan.consumers)] {
            for client in clients {
                let key = (kind.name().to_owned(), direction.to_owned(), client.clone());
                if let Some(runs) = samples.get(&key) {
                    rows.push((key, runs));
                }
            }
        }
    }
    println!(
        "{} records of {} bytes, {} partitions; median of {} runs.",
        plan.count,
        crate::payload::VALUE_LEN,
        PARTITIONS,
        plan.runs
    );
    println!();
    println!("| client | direction | broker | msgs/s | CPU-s per 1M | peak RSS MiB | broker CPU-s per 1M |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for ((broker, direction, client), runs) in &rows {
        let broker_cpu: Vec<f64> =
            runs.iter().filter_map(|s| s.broker_cpu.map(|b| b * 1e6 / s.report.records as f64)).collect();
        println!(
            "| {client} | {direction} | {broker} | {} | {:.2} | {:.1} | {} |",
            thousands(median(runs.iter().map(|s| s.report.rate()).collect())),
            median(runs.iter().map(per_m).collect()),
            median(runs.iter().map(|s| s.rss_mib).collect()),
            if broker_cpu.is_empty() { "-".to_owned() } else { format!("{:.2}", median(broker_cpu)) },
        );
    }
    println!();
    println!("Raw runs (msgs/s, CPU-s per 1M, peak RSS MiB):");
    println!();
    println!("| client | direction | broker | runs |");
    println!("| --- | --- | --- | --- |");
    for ((broker, direction, client), runs) in &rows {
        let each: Vec<String> = runs
            .iter()
            .map(|s| format!("{} / {:.2} / {:.1}", thousands(s.report.rate()), per_m(s), s.rss_mib))
            .collect();
        println!("| {client} | {direction} | {broker} | {} |", each.join("; "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }

    #[test]
    fn process_cpu_reads_this_process() {
        assert!(process_cpu(std::process::id() as i32).is_some_and(|s| s >= 0.0));
    }
}
