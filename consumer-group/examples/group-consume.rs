//! Joins a consumer group and prints what the group gives this member:
//! `assigned <partitions>` / `revoked <partitions>` / `lost <partitions>` on rebalances
//! (partitions as `topic-partition`, comma-separated) and
//! `partition<TAB>offset<TAB>key<TAB>value` per record (UTF-8, lossy; `-` for null).
//!
//! ```text
//! cargo run -p klamm-group --release --example group-consume -- --brokers B --topic T --group G \
//!     [--assignor cooperative-sticky|range|roundrobin] [--commit-every N] [--count N] [--timeout-ms MS] \
//!     [--property key=value]...
//! ```
//!
//! `--property` sets any Kafka property of the group consumer (`session.timeout.ms`,
//! `group.instance.id`, `fetch.max.wait.ms`, ...); the flags win over it. The defaults include
//! `allow.auto.create.topics=false`: subscribing should not create a topic.
//! `--property group.protocol=consumer` joins with the KIP-848 protocol, where the broker
//! assigns (`group.remote.assignor`) and `--assignor` does not apply.
//!
//! Commits after every N records (default 1000) and before partitions are revoked. Stops
//! after `--count` records, or when nothing arrived for MS milliseconds (default 10000), or on
//! SIGINT/SIGTERM; then commits what it printed and leaves the group. Partitions with no
//! committed offset start at the beginning. Exits with status 1 and a message on a failure, 2
//! on a usage error. Retriable errors from `poll` (no broker at the address, a subscribed topic
//! that does not exist, a group that does not become stable) are printed on stderr and the
//! member goes on; the client's warnings go to stderr too (`RUST_LOG`, default `warn`).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use klamm::{OffsetReset, TopicPartition};
use klamm_group::{GroupConfig, GroupConsumer, RebalanceHandle, RebalanceListener};

struct Args {
    brokers: String,
    topic: String,
    group: String,
    assignor: String,
    commit_every: u64,
    count: Option<u64>,
    idle: Duration,
    properties: Vec<(String, String)>,
}

fn parse_args() -> Result<Args, String> {
    let (mut brokers, mut topic, mut group) = (None, None, None);
    let mut assignor = "cooperative-sticky".to_string();
    let mut commit_every = 1000;
    let mut count = None;
    let mut idle = Duration::from_secs(10);
    let mut properties = Vec::new();
    let mut argv = std::env::args().skip(1);
    while let Some(flag) = argv.next() {
        let mut value = || argv.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String, what: &str| v.parse::<u64>().map_err(|_| format!("{what} takes a number"));
        match flag.as_str() {
            "--brokers" => brokers = Some(value()?),
            "--topic" => topic = Some(value()?),
            "--group" => group = Some(value()?),
            "--assignor" => {
                assignor = value()?;
                if !["cooperative-sticky", "range", "roundrobin"].contains(&assignor.as_str()) {
                    return Err(format!(
                        "--assignor takes cooperative-sticky, range or roundrobin, not {assignor:?}"
                    ));
                }
            }
            "--commit-every" => commit_every = number(value()?, "--commit-every")?.max(1),
            "--count" => count = Some(number(value()?, "--count")?),
            "--timeout-ms" => idle = Duration::from_millis(number(value()?, "--timeout-ms")?),
            "--property" => {
                let kv = value()?;
                let (k, v) =
                    kv.split_once('=').ok_or_else(|| format!("--property takes key=value, not {kv:?}"))?;
                properties.push((k.trim().to_string(), v.to_string()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        brokers: brokers.ok_or("missing --brokers")?,
        topic: topic.ok_or("missing --topic")?,
        group: group.ok_or("missing --group")?,
        assignor,
        commit_every,
        count,
        idle,
        properties,
    })
}

fn text(bytes: Option<&[u8]>) -> String {
    bytes.map_or_else(|| "-".to_owned(), |b| String::from_utf8_lossy(b).into_owned())
}

fn list(partitions: &[TopicPartition]) -> String {
    partitions.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

/// Prints rebalances, committing what was printed of partitions before they are revoked.
struct Printer;

impl RebalanceListener for Printer {
    async fn on_assigned(&mut self, _: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        println!("assigned {}", list(partitions));
    }

    async fn on_revoked(&mut self, handle: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        if let Err(e) = handle.commit_consumed(partitions).await {
            eprintln!("group-consume: commit before revocation failed: {e}");
        }
        println!("revoked {}", list(partitions));
    }

    async fn on_lost(&mut self, _: &mut RebalanceHandle<'_>, partitions: &[TopicPartition]) {
        println!("lost {}", list(partitions));
    }
}

async fn run(args: Args) -> Result<(), klamm::Error> {
    let mut config = GroupConfig::new(&args.brokers, &args.group).consumer(|mut c| {
        c.client = c.client.allow_auto_create_topics(false);
        c.auto_offset_reset(OffsetReset::Earliest)
    });
    for (key, value) in &args.properties {
        config.set(key, value)?;
    }
    let config = config.assignors_by_name([args.assignor.as_str()])?;
    let mut consumer = GroupConsumer::with_listener(config, Printer)?;
    consumer.subscribe([args.topic.as_str()]);
    let mut printed = 0u64;
    let mut since_commit = 0u64;
    let mut last_progress = Instant::now();
    let mut stop = Box::pin(shutdown_signal());
    while args.count.is_none_or(|n| printed < n) {
        let left = args.idle.saturating_sub(last_progress.elapsed());
        if left.is_zero() {
            break;
        }
        let records = tokio::select! {
            records = consumer.poll(left) => match records {
                Ok(records) => records,
                // The member retries by itself; this says what keeps it from progress.
                Err(e) if e.is_retriable() => {
                    eprintln!("group-consume: {e}");
                    continue;
                }
                Err(e) => return Err(e),
            },
            () = &mut stop => break,
        };
        let mut out = std::io::stdout().lock();
        for r in &records {
            if args.count.is_some_and(|n| printed >= n) {
                break;
            }
            let _ = writeln!(
                out,
                "{}\t{}\t{}\t{}",
                r.partition,
                r.offset,
                text(r.key.as_deref()),
                text(r.value.as_deref())
            );
            printed += 1;
            since_commit += 1;
            last_progress = Instant::now();
        }
        let _ = out.flush();
        drop(out);
        if since_commit >= args.commit_every {
            commit(&mut consumer, "periodic").await?;
            since_commit = 0;
        }
    }
    commit(&mut consumer, "on the way out").await?;
    consumer.close(Duration::from_secs(30)).await
}

/// Commits what was printed. A commit the group refuses because it is rebalancing, or because
/// this member's generation has passed (the coordinator moved or dropped the member, who then
/// rejoins), is reported and the member goes on, as the librdkafka and Java peers do: the
/// records since the last commit are delivered again to whoever owns their partitions next.
/// Any other failure ends the program.
async fn commit<L: RebalanceListener>(
    consumer: &mut GroupConsumer<L>,
    why: &str,
) -> Result<(), klamm::Error> {
    match consumer.commit_consumed().await {
        Ok(()) => Ok(()),
        Err(e) if e.is_retriable() || is_generation_error(&e) => {
            eprintln!("group-consume: {why} commit failed, going on: {e}");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Errors that say a commit came from an older generation of the group (or during a
/// rebalance): the member's partitions may have moved; nothing is wrong with the program.
fn is_generation_error(e: &klamm::Error) -> bool {
    use klamm::protocol::ErrorCode;
    matches!(
        e.code(),
        Some(
            ErrorCode::ILLEGAL_GENERATION
                | ErrorCode::UNKNOWN_MEMBER_ID
                | ErrorCode::REBALANCE_IN_PROGRESS
                | ErrorCode::FENCED_MEMBER_EPOCH
                | ErrorCode::STALE_MEMBER_EPOCH
        )
    )
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
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
            eprintln!("group-consume: {e}");
            eprintln!(
                "usage: group-consume --brokers B --topic T --group G [--assignor cooperative-sticky|range|roundrobin] \
                 [--commit-every N] [--count N] [--timeout-ms MS] [--property key=value]..."
            );
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("group-consume: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("group-consume: {e}");
            ExitCode::FAILURE
        }
    }
}
