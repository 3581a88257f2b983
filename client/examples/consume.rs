//! Reads every partition of a topic and prints one line per record:
//! `partition<TAB>offset<TAB>key<TAB>value` (key and value as UTF-8, lossy; `-` for null).
//!
//! ```text
//! cargo run -p klamm --release --example consume -- --brokers B --topic T \
//!     [--from beginning|end|OFFSET] [--count N] [--timeout-ms MS] [--property key=value]...
//! ```
//!
//! `--property` sets any consumer or client property by its Kafka name (`fetch.max.wait.ms`,
//! `isolation.level`, `client.id`, ...), applied in the order given after the defaults (which
//! include `auto.offset.reset=earliest` and `allow.auto.create.topics=false`: reading a topic
//! should not create it).
//!
//! Stops after N records, or when nothing arrived for MS milliseconds (default 10000). Exits
//! with status 1 and a message on a failure, 2 on a usage error. Retriable errors (no broker
//! at the address, a topic that does not exist, a partition without a leader) are printed on
//! stderr as they come, and the program goes on until the idle timeout; the client's warnings
//! go to stderr too (`RUST_LOG` changes the level, default `warn`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use klamm::{Consumer, ConsumerConfig, Offset, OffsetReset, TopicPartition};

struct Args {
    brokers: String,
    topic: String,
    from: Offset,
    count: Option<u64>,
    idle: Duration,
    properties: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let mut brokers = None;
    let mut topic = None;
    let mut from = Offset::End;
    let mut count = None;
    let mut idle = Duration::from_secs(10);
    let mut properties = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--from" => {
                from = match value()?.as_str() {
                    "beginning" => Offset::Beginning,
                    "end" => Offset::End,
                    n => Offset::At(
                        n.parse()
                            .ok()
                            .filter(|o: &i64| *o >= 0)
                            .ok_or_else(|| format!("--from takes beginning, end or an offset, not {n:?}"))?,
                    ),
                }
            }
            "--count" => count = Some(value()?.parse().map_err(|_| "--count takes a number".to_owned())?),
            "--timeout-ms" => {
                let ms = value()?.parse().map_err(|_| "--timeout-ms takes a number".to_owned())?;
                idle = Duration::from_millis(ms);
            }
            "--property" => {
                let kv = value()?;
                let (k, v) =
                    kv.split_once('=').ok_or_else(|| format!("--property takes key=value, not {kv:?}"))?;
                properties.push((k.trim().to_owned(), v.to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or("missing --brokers")?,
        topic: topic.ok_or("missing --topic")?,
        from,
        count,
        idle,
        properties,
    })
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |b| String::from_utf8_lossy(b).into_owned())
}

async fn run(args: Args) -> Result<(), klamm::Error> {
    let mut config = ConsumerConfig::new(&args.brokers).auto_offset_reset(OffsetReset::Earliest);
    config.client = config.client.allow_auto_create_topics(false);
    for (key, value) in &args.properties {
        config.set(key, value)?;
    }
    let mut consumer = Consumer::new(config)?;
    // The topic's partitions; a retriable failure (no broker, no such topic yet) is shown and
    // tried again until the idle timeout.
    let started = Instant::now();
    let topic = loop {
        match consumer.client().topic(&args.topic).await {
            Ok(topic) => break topic,
            Err(e) if e.is_retriable() && started.elapsed() < args.idle => {
                eprintln!("consume: {e}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let partitions: Vec<TopicPartition> =
        topic.partitions.iter().map(|p| TopicPartition::new(args.topic.as_str(), p.partition)).collect();
    consumer.assign(partitions.iter().cloned());
    for tp in &partitions {
        consumer.seek(tp, args.from)?;
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let mut last_progress = Instant::now();
    while args.count.is_none_or(|n| printed < n) {
        let left = args.idle.saturating_sub(last_progress.elapsed());
        if left.is_zero() {
            break;
        }
        let records = match consumer.poll(left).await {
            Ok(records) => records,
            // The consumer retries by itself; this says what keeps it from reading.
            Err(e) if e.is_retriable() => {
                eprintln!("consume: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        for r in records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            let key = text(r.key.as_deref());
            let value = text(r.value.as_deref());
            let _ = writeln!(out, "{}\t{}\t{key}\t{value}", r.partition, r.offset);
            printed += 1;
            last_progress = Instant::now();
        }
        let _ = out.flush();
    }
    let _ = out.flush();
    drop(out);
    consumer.close(Duration::from_secs(5)).await
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("consume: {e}");
            eprintln!(
                "usage: consume --brokers B --topic T [--from beginning|end|OFFSET] [--count N] [--timeout-ms MS] \
                 [--property key=value]..."
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("consume: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consume: {e}");
            ExitCode::FAILURE
        }
    }
}
