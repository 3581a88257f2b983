//! Records protocol fixtures from the real clients:
//!
//! ```sh
//! cargo run -p klamm-tests --example record-fixtures -- <out-dir> [kafka|tansu]
//! ```
//!
//! For each peer (librdkafka, Java) a broker is started behind a [`RecordingProxy`]; the peer
//! creates a topic, produces and consumes a few records with headers, and the first frame pair
//! of every API and version goes to `<out-dir>/<peer>/`. Then once per compression codec the
//! produce/consume is repeated and saved to `<out-dir>/<peer>/<codec>/`, so Produce and Fetch
//! frames carrying compressed batches are kept apart from the plain ones.

use std::path::PathBuf;
use std::process::ExitCode;

use klamm_tests::{
    Broker, BrokerKind, Compression, ConsumeOptions, Peer, PeerRecord, ProduceOptions, RecordingProxy,
};

fn records() -> Vec<PeerRecord> {
    (0..3)
        .map(|i| {
            PeerRecord::new(format!("key-{i}"), format!("value-{i}").repeat(8))
                .header("fixture", i.to_string())
                .timestamp(1_700_000_000_000 + i)
        })
        .collect()
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: record-fixtures <out-dir> [kafka|tansu]");
        return ExitCode::from(2);
    };
    let kind = match args.next().as_deref() {
        None | Some("kafka") => BrokerKind::Kafka,
        Some("tansu") => BrokerKind::Tansu,
        Some(other) => {
            eprintln!("unknown broker {other}; use kafka or tansu");
            return ExitCode::from(2);
        }
    };
    for peer in [Peer::rdkafka(), Peer::java()] {
        let (proxy, _broker) = match RecordingProxy::in_front_of(Broker::builder(kind)) {
            Ok(pb) => pb,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
        let bootstrap = proxy.bootstrap();
        let sent = records();
        for (i, codec) in Compression::ALL.into_iter().enumerate() {
            let topic = format!("fixtures-{}", codec.name());
            peer.create_topic(&bootstrap, &topic, 1);
            let options = ProduceOptions { compression: codec, ..ProduceOptions::default() };
            peer.produce(&bootstrap, &topic, &options, &sent);
            let got = peer.consume(&bootstrap, &topic, sent.len(), &ConsumeOptions::default());
            assert_eq!(got.len(), sent.len(), "{} {}: records lost", peer.name(), codec.name());
            // The first round (no compression) keeps the bootstrap traffic too.
            let label =
                if i == 0 { peer.name().to_owned() } else { format!("{}/{}", peer.name(), codec.name()) };
            match proxy.save_fixtures(&out, &label) {
                Ok(files) => println!("{label}: {} files", files.len()),
                Err(e) => {
                    eprintln!("writing fixtures for {label}: {e}");
                    return ExitCode::FAILURE;
                }
            }
            proxy.clear();
        }
    }
    println!("fixtures in {}", out.display());
    ExitCode::SUCCESS
}
