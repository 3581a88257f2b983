//! The workspace's example programs as child processes: built once per test binary with cargo
//! (so tests do not race on `cargo run`), then run directly, and killed when dropped.
//!
//! [`GroupMember`] runs a consumer-group member and follows its output (`assigned`/`revoked`/
//! `lost` lines and records): the `group-consume` example of `klamm-group`, or the `group-member`
//! command of the librdkafka or Java peer, which take the same flags and print the same lines.
//! [`wait_for_exact_cover`] and [`assert_not_revoked`] check a group of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::peer::{Peer, PeerKind};

/// The path of example `name` of package `package`, built on first use: in `dev` mode, or in
/// `release` mode when the harness itself is an optimized build (a benchmark).
pub fn example_binary(package: &str, name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(&(package.to_string(), name.to_string())) {
        return path.clone();
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut build = vec!["build", "-q", "-p", package, "--example", name, "--message-format=json"];
    if !cfg!(debug_assertions) {
        build.push("--release");
    }
    let output = Command::new(cargo)
        .args(&build)
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
    /// When each record line arrived, in the same order as `records`.
    pub record_times: Vec<Instant>,
}

/// Which client a [`GroupMember`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// Klamm: the `group-consume` example of `klamm-group`.
    Klamm,
    /// librdkafka: `group-member` of the librdkafka peer.
    Rdkafka,
    /// The Java client: `group-member` of the Java peer (classic group protocol unless
    /// `--property group.protocol=consumer`).
    Java,
}

impl MemberKind {
    /// `"klamm"`, `"rdkafka"` or `"java"`.
    pub fn name(self) -> &'static str {
        match self {
            MemberKind::Klamm => "klamm",
            MemberKind::Rdkafka => "rdkafka",
            MemberKind::Java => "java",
        }
    }

    /// The property that bounds how long a fetch waits at the broker: `fetch.wait.max.ms` in
    /// librdkafka, `fetch.max.wait.ms` in the others.
    pub fn fetch_wait_property(self) -> &'static str {
        match self {
            MemberKind::Rdkafka => "fetch.wait.max.ms",
            MemberKind::Klamm | MemberKind::Java => "fetch.max.wait.ms",
        }
    }
}

/// A consumer-group member process.
pub struct GroupMember {
    child: Option<Child>,
    log: Arc<Mutex<MemberLog>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    name: String,
    kind: MemberKind,
}

impl GroupMember {
    /// Starts a Klamm member of `group` reading `topic` at `brokers` with `extra` flags (such
    /// as `--assignor range`, `--commit-every 100`). It runs until stopped or killed.
    pub fn start(name: &str, brokers: &str, topic: &str, group: &str, extra: &[&str]) -> GroupMember {
        GroupMember::start_kind(MemberKind::Klamm, name, brokers, topic, group, extra)
    }

    /// Starts a member of `kind`, as [`GroupMember::start`] does. The peers panic (naming the
    /// install script) when they are not installed.
    pub fn start_kind(
        kind: MemberKind,
        name: &str,
        brokers: &str,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> GroupMember {
        let mut args =
            vec!["--brokers", brokers, "--topic", topic, "--group", group, "--timeout-ms", "600000"];
        args.extend_from_slice(extra);
        let mut command = match kind {
            MemberKind::Klamm => {
                let mut c = Command::new(example_binary("klamm-group", "group-consume"));
                c.args(&args);
                c
            }
            MemberKind::Rdkafka | MemberKind::Java => {
                let peer =
                    Peer::new(if kind == MemberKind::Java { PeerKind::Java } else { PeerKind::Rdkafka });
                args.insert(0, "group-member");
                peer.command(&args)
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {} member {name}: {e}", kind.name()));
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&log);
        let out_reader = std::thread::spawn(move || {
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
                        log.record_times.push(Instant::now());
                    }
                }
            }
        });
        let stderr_text = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr_text);
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        GroupMember {
            child: Some(child),
            log,
            stderr: stderr_text,
            readers: vec![out_reader, err_reader],
            name: name.to_string(),
            kind,
        }
    }

    /// The member's name in the test.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which client it runs.
    pub fn kind(&self) -> MemberKind {
        self.kind
    }

    /// Waits until it printed at least `count` records; panics after `within`.
    pub fn wait_for_records(&self, count: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.log.lock().unwrap_or_else(|e| e.into_inner()).records.len();
            if got >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} printed {got} of {count} records within {within:?}: {}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// After the process exited: lets the readers take its last lines (they end at the pipes'
    /// end of file).
    fn drain(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        for reader in std::mem::take(&mut self.readers) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
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
        let child = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        self.exit_within(child, within, "stop")
    }

    /// Waits up to `within` for it to end by itself (after `--count` records); panics when it
    /// does not, or does not exit cleanly.
    pub fn wait_for_exit(mut self, within: Duration) -> MemberLog {
        let child = self.child.take().expect("running");
        self.exit_within(child, within, "end")
    }

    /// Waits for `child` to exit with success within `within`, then returns the whole log.
    fn exit_within(&mut self, mut child: Child, within: Duration, what: &str) -> MemberLog {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                self.drain();
                assert!(status.success(), "{} exited with {status}: {}", self.name, self.stderr());
                return self.log();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{} did not {what} within {within:?}: {}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills it with SIGKILL: no commit, no LeaveGroup.
    pub fn kill(mut self) -> MemberLog {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
        self.drain();
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

/// Waits until `members` together own every partition of `topic` exactly once, each owning
/// some; returns each member's partitions (`topic-partition`), in `members` order. Panics with
/// what they own and their stderr after `within`.
pub fn wait_for_exact_cover(
    members: &[&GroupMember],
    topic: &str,
    partitions: i32,
    within: Duration,
) -> Vec<Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let views: Vec<Vec<String>> = members.iter().map(|m| m.log().owned.into_iter().collect()).collect();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for v in &views {
            for tp in v {
                *seen.entry(tp.as_str()).or_insert(0) += 1;
            }
        }
        let all = (0..partitions).all(|p| seen.get(format!("{topic}-{p}").as_str()) == Some(&1));
        if all && seen.len() == partitions as usize && views.iter().all(|v| !v.is_empty()) {
            return views;
        }
        if Instant::now() > deadline {
            let named: Vec<String> =
                members.iter().zip(&views).map(|(m, v)| format!("{}: {v:?}", m.name())).collect();
            let errors: Vec<String> =
                members.iter().map(|m| format!("{} stderr: {}", m.name(), m.stderr())).collect();
            panic!("no exact cover within {within:?}: {named:?}\n{}", errors.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Panics if a partition in `kept` appears in a `revoked` or `lost` line `member` printed
/// after its first `from` rebalance lines.
pub fn assert_not_revoked(member: &GroupMember, from: usize, kept: &[String]) {
    for line in member.log().rebalances.iter().skip(from) {
        if line.starts_with("revoked") || line.starts_with("lost") {
            for tp in kept {
                let listed =
                    line.split_once(' ').map(|(_, l)| l.split(',').any(|p| p == tp)).unwrap_or(false);
                assert!(!listed, "{}: {tp} stayed but was revoked ({line})", member.name());
            }
        }
    }
}

/// The partitions in both `before` and `after`: those a member kept across a rebalance.
pub fn kept(before: &[String], after: &[String]) -> Vec<String> {
    before.iter().filter(|tp| after.contains(tp)).cloned().collect()
}
