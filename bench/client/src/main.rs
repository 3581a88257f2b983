//! `client-bench`: producer and consumer throughput, CPU time and peak RSS of klamm, librdkafka
//! (the `rdkafka` crate) and `rskafka` against the same local broker.
//!
//! Subcommands:
//! - `run [--broker tansu|kafka|both] [--runs 3] [--count 1000000] [--clients LIST]
//!   [--consumers LIST] [--window 100000] [--warmup 1]`: the benchmark (see `driver.rs`); prints markdown.
//!   Producers default to all four, consumers to the three consumers.
//! - `produce|consume --client NAME --brokers HOST:PORT --topic T --count N [--window W]
//!   [--runtime multi|current]` (`--window 0`: klamm drops its delivery futures and only
//!   flushes at the end, so its buffer limit alone throttles `send`): one worker, which prints one JSON line (`worker.rs`). The
//!   driver runs these as child processes; run by hand, they are what to profile.
//! - `rebalance [--runs 5]`: the time a cooperative-sticky group of one takes to absorb a
//!   second member, klamm against librdkafka, on Apache Kafka (`rebalance.rs`).
//! - `handshake [--count 200] [--runs 3]`: the time and CPU one connection (TCP, TLS handshake,
//!   ApiVersions, SASL) takes, plaintext, over TLS with each crypto provider and over SASL_SSL
//!   (`handshake.rs`).
//! - `serve [--broker tansu|kafka] [--topics N]`: starts a broker with N fresh 4-partition
//!   topics, prints its address and the topic names, and keeps it up until stdin closes.
//!
//! Clients: `klamm`, `rdkafka`, `rskafka`, and for producing also `rskafka-batches`
//! (`rskafka_client.rs` says how the two rskafka producers differ). On Kafka also
//! `klamm-tls` and `klamm-tls-graviola`: klamm over a TLS listener with the ring and the
//! graviola crypto provider, and `rdkafka-tls`: librdkafka over it with its OpenSSL (`--ca
//! FILE` for a worker run by hand); `klamm-sasl-ssl` (ring) and `rdkafka-sasl-ssl`: the same
//! over a SASL_SSL listener, authenticated with SCRAM-SHA-512 as a user the driver creates
//! ([`SCRAM_USER`]).
#![warn(missing_docs)]

mod driver;
mod handshake;
mod klamm_client;
mod payload;
mod rdkafka_client;
mod rebalance;
mod rskafka_client;
mod worker;

use std::collections::HashMap;
use std::io::Read;
use std::process::ExitCode;

use klamm_tests::{Broker, BrokerKind};

use crate::worker::{BoxError, Job, Report, PARTITIONS};

const USAGE: &str = "usage:
  client-bench run [--broker tansu|kafka|both] [--runs 3] [--count 1000000]
                   [--clients klamm,rdkafka,rskafka,rskafka-batches] [--consumers klamm,rdkafka,rskafka]
                   [--window 100000] [--warmup 1]
  client-bench produce|consume --client NAME --brokers HOST:PORT --topic T --count N
                   [--window 100000] [--runtime multi|current]
  client-bench serve [--broker tansu|kafka] [--topics 2]
  client-bench rebalance [--runs 5]
  client-bench handshake [--count 200] [--runs 3]";

/// klamm over TLS with ring, its default crypto provider.
pub const TLS_RING: &str = "klamm-tls";
/// klamm over TLS with graviola, the provider of its pure-rust build.
pub const TLS_GRAVIOLA: &str = "klamm-tls-graviola";
/// librdkafka over TLS (its OpenSSL, built from source).
pub const RDKAFKA_TLS: &str = "rdkafka-tls";
/// klamm over SASL_SSL (SCRAM-SHA-512 inside TLS, ring).
pub const KLAMM_SASL_SSL: &str = "klamm-sasl-ssl";
/// librdkafka over SASL_SSL (SCRAM-SHA-512 inside TLS, its OpenSSL).
pub const RDKAFKA_SASL_SSL: &str = "rdkafka-sasl-ssl";
/// The SCRAM user the SASL_SSL clients log in as; the driver creates it on each broker it
/// starts (a throwaway credential of a throwaway broker).
pub const SCRAM_USER: &str = "bench";
/// [`SCRAM_USER`]'s password.
pub const SCRAM_PASSWORD: &str = "bench-scram-password";
/// Every client `run` knows, producers and consumers (`rskafka-batches` produces only).
const CLIENTS: [&str; 9] = [
    "klamm",
    "rdkafka",
    "rskafka",
    "rskafka-batches",
    TLS_RING,
    TLS_GRAVIOLA,
    RDKAFKA_TLS,
    KLAMM_SASL_SSL,
    RDKAFKA_SASL_SSL,
];

/// Default pending-delivery window of the klamm and rskafka producers.
const DEFAULT_WINDOW: &str = "100000";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = Options::parse(rest).and_then(|opts| match command.as_str() {
        "run" => run(&opts),
        "produce" | "consume" => work(command, &opts),
        "serve" => serve(&opts),
        "rebalance" => rebalance_bench(&opts),
        "offsets" => offsets(&opts),
        "handshake" => handshake::run(opts.number("count", "200")?, opts.number("runs", "3")?),
        "connect" => connect(&opts),
        _ => Err(format!("unknown command {command:?}\n{USAGE}").into()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("client-bench {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--name value` pairs.
struct Options(HashMap<String, String>);

impl Options {
    fn parse(args: &[String]) -> Result<Options, BoxError> {
        let mut map = HashMap::new();
        let mut it = args.iter();
        while let Some(name) = it.next() {
            let key =
                name.strip_prefix("--").ok_or_else(|| format!("unexpected argument {name:?}\n{USAGE}"))?;
            let value = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            map.insert(key.to_owned(), value.clone());
        }
        Ok(Options(map))
    }

    fn get<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.0.get(key).map_or(default, String::as_str)
    }

    fn required(&self, key: &str) -> Result<&str, BoxError> {
        self.0.get(key).map(String::as_str).ok_or_else(|| format!("--{key} is required\n{USAGE}").into())
    }

    fn number<T: std::str::FromStr>(&self, key: &str, default: &str) -> Result<T, BoxError> {
        let text = self.get(key, default);
        text.parse().map_err(|_| format!("--{key}: {text:?} is not a number").into())
    }

    fn list(&self, key: &str, default: &str) -> Vec<String> {
        self.get(key, default).split(',').filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }
}

fn broker_kinds(name: &str) -> Result<Vec<BrokerKind>, BoxError> {
    match name {
        "tansu" => Ok(vec![BrokerKind::Tansu]),
        "kafka" => Ok(vec![BrokerKind::Kafka]),
        "both" => Ok(vec![BrokerKind::Tansu, BrokerKind::Kafka]),
        _ => Err(format!("--broker: {name:?} is not tansu, kafka or both").into()),
    }
}

fn run(opts: &Options) -> Result<(), BoxError> {
    let producers = opts.list("clients", "klamm,rdkafka,rskafka,rskafka-batches");
    // Consumers default to the producers named (rskafka has one consumer).
    let consumers = match opts.0.get("consumers") {
        Some(_) => opts.list("consumers", ""),
        None => producers.iter().filter(|c| *c != "rskafka-batches").cloned().collect(),
    };
    let plan = driver::Plan {
        brokers: broker_kinds(opts.get("broker", "both"))?,
        runs: opts.number("runs", "3")?,
        warmup: opts.number("warmup", "1")?,
        count: opts.number("count", "1000000")?,
        producers,
        consumers,
        window: opts.number("window", DEFAULT_WINDOW)?,
    };
    for client in &plan.producers {
        if !CLIENTS.contains(&client.as_str()) {
            return Err(format!("unknown producer {client:?}").into());
        }
    }
    for client in &plan.consumers {
        if !CLIENTS.contains(&client.as_str()) || client == "rskafka-batches" {
            return Err(format!("unknown consumer {client:?}").into());
        }
    }
    if plan.runs == 0 || plan.count == 0 {
        return Err("--runs and --count must be above zero".into());
    }
    if plan.window == 0 && plan.producers.iter().any(|c| c.starts_with("rskafka")) {
        return Err("--window 0 (klamm without delivery futures) does not apply to rskafka".into());
    }
    driver::run(&plan)
}

/// One worker: does the job and prints its report as one JSON line.
fn work(direction: &str, opts: &Options) -> Result<(), BoxError> {
    let job = Job {
        brokers: opts.required("brokers")?.to_owned(),
        topic: opts.required("topic")?.to_owned(),
        count: opts.number("count", "1000000")?,
        window: opts.number("window", DEFAULT_WINDOW)?,
        ca: opts.0.get("ca").cloned(),
        scram: None,
    };
    let client = opts.required("client")?;
    let job = match client {
        KLAMM_SASL_SSL | RDKAFKA_SASL_SSL => {
            Job { scram: Some((SCRAM_USER.to_owned(), SCRAM_PASSWORD.to_owned())), ..job }
        }
        _ => job,
    };
    // The TLS clients pick their crypto provider for the whole process.
    let provider = match client {
        TLS_RING | KLAMM_SASL_SSL => Some(rustls::crypto::ring::default_provider()),
        TLS_GRAVIOLA => Some(rustls_graviola::default_provider()),
        _ => None,
    };
    if matches!(client, RDKAFKA_TLS | RDKAFKA_SASL_SSL) && job.ca.is_none() {
        return Err(format!("{client} needs --ca").into());
    }
    if let Some(provider) = provider {
        if job.ca.is_none() {
            return Err(format!("{client} needs --ca").into());
        }
        provider.install_default().map_err(|_| "a crypto provider is already installed")?;
    }
    let runtime = || -> Result<tokio::runtime::Runtime, BoxError> {
        let mut builder = match opts.get("runtime", "multi") {
            "multi" => tokio::runtime::Builder::new_multi_thread(),
            "current" => tokio::runtime::Builder::new_current_thread(),
            other => return Err(format!("--runtime: {other:?} is not multi or current").into()),
        };
        Ok(builder.enable_all().build()?)
    };
    let report: Report = match (direction, client) {
        ("produce", "klamm") => runtime()?.block_on(klamm_client::produce(&job))?,
        ("consume", "klamm") => runtime()?.block_on(klamm_client::consume(&job))?,
        ("produce", TLS_RING | TLS_GRAVIOLA | KLAMM_SASL_SSL) => {
            runtime()?.block_on(klamm_client::produce(&job))?
        }
        ("consume", TLS_RING | TLS_GRAVIOLA | KLAMM_SASL_SSL) => {
            runtime()?.block_on(klamm_client::consume(&job))?
        }
        ("produce", "rdkafka" | RDKAFKA_TLS | RDKAFKA_SASL_SSL) => rdkafka_client::produce(&job)?,
        ("consume", "rdkafka" | RDKAFKA_TLS | RDKAFKA_SASL_SSL) => rdkafka_client::consume(&job)?,
        ("produce", "rskafka" | "rskafka-batches") if job.window == 0 => {
            return Err("rskafka needs --window above zero".into());
        }
        ("produce", "rskafka") => runtime()?.block_on(rskafka_client::produce(&job))?,
        ("produce", "rskafka-batches") => runtime()?.block_on(rskafka_client::produce_batches(&job))?,
        ("consume", "rskafka") => runtime()?.block_on(rskafka_client::consume(&job))?,
        _ => return Err(format!("no {direction} worker for client {client:?}").into()),
    };
    // The TLS and SASL_SSL clients share their library's worker code; their reports carry
    // their own name.
    let report = Report { client: client.to_owned(), ..report };
    println!("{}", serde_json::to_string(&report.with_peak_rss())?);
    Ok(())
}

/// Starts a broker with fresh topics for profiling workers by hand; stops when stdin closes.
fn serve(opts: &Options) -> Result<(), BoxError> {
    let kinds = broker_kinds(opts.get("broker", "tansu"))?;
    let [kind] = kinds[..] else {
        return Err("serve takes one broker".into());
    };
    let topics: usize = opts.number("topics", "2")?;
    driver::use_kafka_jvm_opts();
    let broker = Broker::builder(kind).partitions(PARTITIONS as u32).start()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let admin = rt.block_on(klamm::Admin::connect(klamm::ClientConfig::new(&broker.bootstrap())))?;
    let names: Vec<String> = (0..topics).map(|i| format!("profile-{i}")).collect();
    let new: Vec<klamm::NewTopic> = names.iter().map(|n| klamm::NewTopic::new(n, PARTITIONS, 1)).collect();
    let options = klamm::CreateTopicsOptions::default().wait_for_leaders(true);
    for (name, result) in rt.block_on(admin.create_topics_with(&new, &options)) {
        result.map_err(|e| format!("creating {name}: {e}"))?;
    }
    println!("brokers {}", broker.bootstrap());
    println!("topics {}", names.join(" "));
    eprintln!("serving {} until stdin closes", kind.name());
    let mut sink = Vec::new();
    std::io::stdin().read_to_end(&mut sink)?;
    Ok(())
}

/// Starts Apache Kafka and runs the rebalance benchmark against it.
fn rebalance_bench(opts: &Options) -> Result<(), BoxError> {
    let runs: usize = opts.number("runs", "5")?;
    if runs == 0 {
        return Err("--runs must be above zero".into());
    }
    driver::use_kafka_jvm_opts();
    let broker = Broker::builder(BrokerKind::Kafka).start()?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(rebalance::run(&broker.bootstrap(), runs))
}

/// A `handshake` child: installs the client's crypto provider and opens connections.
fn connect(opts: &Options) -> Result<(), BoxError> {
    let client = opts.required("client")?;
    match client {
        TLS_RING | KLAMM_SASL_SSL => rustls::crypto::ring::default_provider().install_default(),
        TLS_GRAVIOLA => rustls_graviola::default_provider().install_default(),
        _ => Ok(()),
    }
    .map_err(|_| "a crypto provider is already installed")?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ca = opts.0.get("ca").map(String::as_str);
    let scram = client == KLAMM_SASL_SSL;
    rt.block_on(handshake::connect(opts.required("brokers")?, ca, scram, opts.number("count", "200")?))
}

/// Prints each partition's earliest and latest offset.
fn offsets(opts: &Options) -> Result<(), BoxError> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let topic = opts.required("topic")?;
    let admin = rt.block_on(klamm::Admin::connect(klamm::ClientConfig::new(opts.required("brokers")?)))?;
    let mut asked = Vec::new();
    for p in 0..PARTITIONS {
        asked.push((topic, p, klamm::OffsetSpec::Earliest));
        asked.push((topic, p, klamm::OffsetSpec::Latest));
    }
    for ((t, p), r) in rt.block_on(admin.list_offsets(&asked)) {
        println!("{t} {p} {:?}", r.map(|o| o.offset));
    }
    Ok(())
}
