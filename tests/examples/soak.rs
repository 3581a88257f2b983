//! The soak (`scripts/soak`): a 3-node Apache Kafka cluster under random faults (kill -9,
//! SIGTERM, SIGSTOP past the request timeout, a proxy cutting connections) every 10-30 s while
//! an idempotent producer writes keyed records and a consumer group of Klamm, librdkafka and
//! Java members reads and commits them. Prints the figures and exits non-zero when a promise
//! is broken (an acknowledged record lost, a record written twice or out of order for its key,
//! a record failed before `delivery.timeout.ms`, an acknowledged record the group never read).
//!
//! ```text
//! soak [--minutes N] [--producer klamm|rdkafka|both] [--seed S] [--rate R]
//! ```
//!
//! `both` runs the same faults (same seed) with Klamm's producer, then with librdkafka's.

use std::process::ExitCode;
use std::time::Duration;

use klamm_tests::{run_soak, SoakOptions, SoakProducer};

fn main() -> ExitCode {
    // The clients' warnings go to stderr beside the fault log (RUST_LOG changes the filter).
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("klamm=warn,klamm_group=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut options = SoakOptions { duration: Duration::from_secs(120), ..SoakOptions::default() };
    let mut producers = vec![SoakProducer::Klamm];
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--minutes" => {
                let minutes: f64 = value().parse().unwrap_or_else(|_| usage("--minutes takes a number"));
                options.duration = Duration::from_secs_f64(minutes * 60.0);
            }
            "--producer" => {
                producers = match value().as_str() {
                    "klamm" => vec![SoakProducer::Klamm],
                    "rdkafka" => vec![SoakProducer::Rdkafka],
                    "both" => vec![SoakProducer::Klamm, SoakProducer::Rdkafka],
                    other => usage(&format!("--producer klamm|rdkafka|both, not {other}")),
                }
            }
            "--seed" => options.seed = value().parse().unwrap_or_else(|_| usage("--seed takes a number")),
            "--rate" => options.rate = value().parse().unwrap_or_else(|_| usage("--rate takes a number")),
            "-h" | "--help" => usage(""),
            other => usage(&format!("unknown flag {other}")),
        }
    }
    let mut failed = false;
    for producer in producers {
        let run = SoakOptions { producer, ..options.clone() };
        eprintln!("soak: {:?} with the {} producer, seed {}", run.duration, producer.name(), run.seed);
        let report = run_soak(&run);
        println!("{}", report.render());
        if let Err(problems) = report.check(run.delivery_timeout) {
            println!("FAILED ({}): {problems}", producer.name());
            failed = true;
        } else {
            println!("passed ({})", producer.name());
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn usage(problem: &str) -> ! {
    if !problem.is_empty() {
        eprintln!("soak: {problem}");
    }
    eprintln!("usage: soak [--minutes N] [--producer klamm|rdkafka|both] [--seed S] [--rate R]");
    std::process::exit(2)
}
