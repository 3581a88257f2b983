//! Reads stdin and produces one record per line.
//!
//! ```text
//! cargo run -p klamm --release --example produce -- --brokers B --topic T \
//!     [--compression none|gzip|snappy|lz4|zstd] [--acks 0|1|all] [--key-delimiter C] [--header k=v]...
//!     [--property key=value]...
//! ```
//!
//! With `--key-delimiter C` each line is split at the first `C` into key and value (a line
//! without `C` has no key). `--property` sets any producer or client property by its Kafka name
//! (`linger.ms`, `delivery.timeout.ms`, `client.id`, ...); properties are applied after the other
//! flags, in the order given, so they win over them. Prints a summary; exits non-zero with a
//! message on failure (an unknown property or bad value is named).

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use klamm::{Producer, ProducerConfig, ProducerRecord};

struct Args {
    brokers: String,
    topic: String,
    compression: String,
    acks: String,
    key_delimiter: Option<char>,
    headers: Vec<(String, String)>,
    properties: Vec<(String, String)>,
}

const USAGE: &str = "usage: produce --brokers B --topic T [--compression none|gzip|snappy|lz4|zstd] \
[--acks 0|1|all] [--key-delimiter C] [--header k=v]... [--property key=value]...";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        brokers: String::new(),
        topic: String::new(),
        compression: "none".into(),
        acks: "all".into(),
        key_delimiter: None,
        headers: Vec::new(),
        properties: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--brokers" => args.brokers = value()?,
            "--topic" => args.topic = value()?,
            "--compression" => args.compression = value()?,
            "--acks" => args.acks = value()?,
            "--key-delimiter" => {
                let v = value()?;
                let mut chars = v.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => args.key_delimiter = Some(c),
                    _ => return Err(format!("--key-delimiter takes one character, not {v:?}")),
                }
            }
            "--header" => {
                let v = value()?;
                let (k, val) = v.split_once('=').ok_or_else(|| format!("--header takes k=v, not {v:?}"))?;
                args.headers.push((k.to_owned(), val.to_owned()));
            }
            "--property" => {
                let v = value()?;
                let (k, val) =
                    v.split_once('=').ok_or_else(|| format!("--property takes key=value, not {v:?}"))?;
                args.properties.push((k.trim().to_owned(), val.to_owned()));
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if args.brokers.is_empty() || args.topic.is_empty() {
        return Err(format!("--brokers and --topic are required\n{USAGE}"));
    }
    Ok(args)
}

async fn run(args: Args) -> Result<String, Box<dyn std::error::Error>> {
    let defaults = [
        ("bootstrap.servers", args.brokers.as_str()),
        ("compression.type", args.compression.as_str()),
        ("acks", args.acks.as_str()),
        ("max.block.ms", "15000"),
    ];
    let given = args.properties.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let config = ProducerConfig::from_properties(defaults.into_iter().chain(given))?;
    let producer = Producer::new(config)?;
    // Made once, cloned per record: no allocation for the topic name.
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let started = Instant::now();
    let mut pending = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.map_err(|e| format!("reading stdin: {e}"))?;
        let (key, value) = match args.key_delimiter.and_then(|d| line.split_once(d)) {
            Some((k, v)) => (Some(k.to_owned()), v.to_owned()),
            None => (None, line),
        };
        let mut record = ProducerRecord::new(&topic, value);
        if let Some(key) = key {
            record = record.key(key);
        }
        for (k, v) in &args.headers {
            record = record.header(k.clone(), v.clone());
        }
        pending.push(producer.send(record).await?);
    }
    let count = pending.len();
    let mut partitions = std::collections::BTreeMap::new();
    for delivery in pending {
        let meta = delivery.await?;
        *partitions.entry(meta.partition).or_insert(0usize) += 1;
    }
    producer.close(Duration::from_secs(30)).await;
    let spread: Vec<String> = partitions.iter().map(|(p, n)| format!("{p}:{n}")).collect();
    Ok(format!(
        "produced {count} records to {} in {:.2?} (partition:records {})",
        args.topic,
        started.elapsed(),
        spread.join(" ")
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("produce failed: {e}");
            ExitCode::FAILURE
        }
    }
}
