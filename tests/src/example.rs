//! The workspace's example programs as child processes: built once per test binary with cargo
//! (so tests do not race on `cargo run`), then run directly, and killed when dropped.
//!
//! [`GroupMember`] runs the `group-consume` example of `klamm-group` and follows its output:
//! `assigned`/`revoked`/`lost` lines and records.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The path of example `name` of package `package`, built (in the test profile's `dev`
/// mode) on first use.
pub fn example_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(&(package.to_string(), name.to_string())) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let output = Command::new(cargo)
        .args(["build", "-q", "-p", package, "--example", name, "--message-format=json"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo to build example {name}: {e}"));
    assert!(output.status.success(), "building example {name} of {package} failed");
    let mut found = None;
    for line in output.stdout.split(|&b| b == b'\n') {
        let Ok(msg) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name {
            if let Some(exe) = msg["executable"].as_str() {
                found = Some(PathBuf::from(exe));
            }
        }
    }
    let path = found.unwrap_or_else(|| panic!("cargo built no executable for example {name} of {package}"));
    built.insert((package.to_string(), name.to_string()), path.clone());
    path
}

/// What a [`GroupMember`] printed so far.
#[derive(Debug, Default, Clone)]
pub struct MemberLog {
    /// Its partitions now (`topic-partition`), as its assigned/revoked/lost lines tell.
    pub owned: BTreeSet<String>,
    /// Every rebalance line, in order (`assigned ...`, `revoked ...`, `lost ...`).
    pub rebalances: Vec<String>,
    /// Every record line: partition and offset.
    pub records: Vec<(i32, i64)>,
}

/// A `group-consume` process in a consumer group.
pub struct GroupMember {
    child: Option<Child>,
    log: Arc<Mutex<MemberLog>>,
    stderr: Arc<Mutex<String>>,
    name: String,
}

impl GroupMember {
    /// Starts a member of `group` reading `topic` at `brokers` with `extra` flags (such as
    /// `--assignor range`, `--commit-every 100`). It runs until stopped or killed.
    pub fn start(name: &str, brokers: &str, topic: &str, group: &str, extra: &[&str]) -> GroupMember {
        let exe = example_binary("klamm-group", "group-consume");
        let mut child = Command::new(exe)
            .args(["--brokers", brokers, "--topic", topic, "--group", group, "--timeout-ms", "600000"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start group-consume: {e}"));
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let mut log = sink.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((what, list)) =
                    line.split_once(' ').filter(|(w, _)| ["assigned", "revoked", "lost"].contains(w))
                {
                    let parts = list.split(',').filter(|s| !s.is_empty()).map(str::to_string);
                    if what == "assigned" {
                        log.owned.extend(parts);
                    } else {
                        for p in parts {
                            log.owned.remove(&p);
                        }
                    }
                    log.rebalances.push(line.clone());
                } else {
                    let mut fields = line.split('\t');
                    let (Some(p), Some(o)) = (fields.next(), fields.next()) else { continue };
                    if let (Ok(p), Ok(o)) = (p.parse(), o.parse()) {
                        log.records.push((p, o));
                    }
                }
            }
        });
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_text);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        GroupMember { child: Some(child), log, stderr: stderr_text, name: name.to_string() }
    }

    /// The member's name in the test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A copy of what it printed so far.
    pub fn log(&self) -> MemberLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Asks it to stop (SIGTERM: it commits and leaves the group) and waits up to `within`;
    /// panics when it does not exit cleanly.
    pub fn stop(mut self, within: Duration) -> MemberLog {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                // Give the reader thread a moment to take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                assert!(status.success(), "{} exited with {status}: {}", self.name, self.stderr());
                return self.log();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not stop within {within:?}: {}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it with SIGKILL: no commit, no LeaveGroup.
    pub fn kill(mut self) -> MemberLog {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log()
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
