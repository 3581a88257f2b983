//! The fixture scenarios: one short session per third-party client that makes it send every
//! request the codec fixtures cover (`tests/peers/fixture_scenario.py` for librdkafka, the
//! `FixtureScenario` class of the Java peer), run from Rust.
//!
//! Each creates a topic, produces idempotently with compression, and consumes in a group
//! (subscribe, commit, committed offsets, offsets by time and end offsets, heartbeats, leave).
//! `tests/tests/record_fixtures.rs` runs them through a [`RecordingProxy`](crate::RecordingProxy).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::install::{self, Component};
use crate::peer::PeerKind;
use crate::Error;

/// How long a scenario may run before it is killed.
const TIMEOUT: Duration = Duration::from_secs(180);

/// Runs the scenario of `kind` against `brokers`: creates `topic` and consumes it in `group`
/// with `compression` (`none`, `gzip`, `snappy`, `lz4` or `zstd`). Returns the scenario's JSON
/// summary line, or an error with its stderr.
pub fn run_fixture_scenario(
    kind: PeerKind,
    brokers: &str,
    topic: &str,
    group: &str,
    compression: &str,
) -> Result<String, Error> {
    let mut program: Vec<OsString> = match kind {
        PeerKind::Rdkafka => vec![
            Component::Rdkafka.dir()?.join("bin").join("python").into(),
            Path::new(env!("CARGO_MANIFEST_DIR")).join("peers").join("fixture_scenario.py").into(),
        ],
        PeerKind::Java => {
            let lib = Component::JavaPeer.dir()?.join("lib");
            if !std::fs::read_dir(&lib)?.flatten().any(|e| jar_has_scenario(&e.path())) {
                return Err(format!(
                    "the Java peer in {} has no FixtureScenario class: rebuild it with \
                     `scripts/install-test-deps java`",
                    lib.display()
                )
                .into());
            }
            vec![
                install::java().into(),
                "-Xmx256m".into(),
                "-XX:+UseSerialGC".into(),
                "-XX:TieredStopAtLevel=1".into(),
                "-cp".into(),
                lib.join("*").into(),
                "dev.klamm.peer.FixtureScenario".into(),
            ]
        }
    };
    for arg in ["--brokers", brokers, "--topic", topic, "--group", group, "--compression", compression] {
        program.push(arg.into());
    }
    let mut child = Command::new(&program[0])
        .args(&program[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the {} fixture scenario: {e}", kind.name()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let out = thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let mut stderr = child.stderr.take().expect("piped");
    let err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    });
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().map_err(|_| "stdout reader panicked")??;
    let stderr = err.join().map_err(|_| "stderr reader panicked")?;
    match status {
        Some(s) if s.success() => Ok(stdout.trim().to_owned()),
        Some(s) => Err(format!("the {} fixture scenario failed ({s}):\n{stderr}", kind.name()).into()),
        None => {
            Err(format!("the {} fixture scenario ran longer than {TIMEOUT:?}:\n{stderr}", kind.name()).into())
        }
    }
}

/// Whether `path` is the Java peer's jar with the scenario class in it (its name is stored
/// uncompressed in the jar's directory).
fn jar_has_scenario(path: &Path) -> bool {
    const NEEDLE: &[u8] = b"dev/klamm/peer/FixtureScenario.class";
    path.file_name().is_some_and(|n| n == "java-peer.jar")
        && std::fs::read(path).is_ok_and(|b| b.windows(NEEDLE.len()).any(|w| w == NEEDLE))
}
