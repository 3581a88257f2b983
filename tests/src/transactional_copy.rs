//! The `transactional-copy` example of `klamm-group` as a child process ([`Copier`]), and the
//! check of what it promises ([`copy_defects`]): every input record in the output once, with
//! its key and value, named by its `source-offset` header, and nothing else.

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::example::example_binary;
use crate::peer::PeerRecord;

/// A running copier. Killed (SIGKILL) when dropped.
pub struct Copier {
    child: Child,
    name: String,
}

/// How a copier that ran to its end ended.
#[derive(Debug)]
pub struct CopierExit {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it printed on stdout (the summary line).
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl CopierExit {
    /// The numbers of its summary line `copied C committed T aborted A seconds S`, if it
    /// printed one: records copied, transactions committed and aborted.
    pub fn summary(&self) -> Option<(u64, u64, u64)> {
        let words = self.summary_words()?;
        match words.as_slice() {
            ["copied", c, "committed", t, "aborted", a, "seconds", _] => {
                Some((c.parse().ok()?, t.parse().ok()?, a.parse().ok()?))
            }
            _ => None,
        }
    }

    /// The time from its first record read to its last commit, from the summary line.
    pub fn seconds(&self) -> Option<f64> {
        self.summary_words()?.last()?.parse().ok()
    }

    fn summary_words(&self) -> Option<Vec<&str>> {
        let line = self.stdout.lines().rev().find(|l| l.starts_with("copied "))?;
        Some(line.split_whitespace().collect())
    }
}

impl Copier {
    /// Starts `transactional-copy --brokers B --input I --output O --group G
    /// --transactional-id ID` with `extra` flags (`--commit-every`, `--timeout-ms`,
    /// `--property`...).
    pub fn start(
        name: &str,
        brokers: &str,
        input: &str,
        output: &str,
        group: &str,
        transactional_id: &str,
        extra: &[&str],
    ) -> Copier {
        let child = Command::new(example_binary("klamm-group", "transactional-copy"))
            .args(["--brokers", brokers, "--input", input, "--output", output, "--group", group])
            .args(["--transactional-id", transactional_id])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the copier {name}: {e}"));
        Copier { child, name: name.to_owned() }
    }

    /// Whether it still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL (no commit, no leave) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for it to exit by itself, at most `timeout` (then it is killed and this panics
    /// with its stderr).
    pub fn wait(mut self, timeout: Duration) -> CopierExit {
        let deadline = Instant::now() + timeout;
        // Drained by threads: a full pipe would block the copier.
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        let mut stderr = self.child.stderr.take().expect("piped stderr");
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        let (stdout, stderr) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
        match status {
            Some(status) => CopierExit { status, stdout, stderr },
            None => panic!("the copier {} did not finish in {timeout:?}; stderr:\n{stderr}", self.name),
        }
    }
}

impl Drop for Copier {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What is wrong with `output` as an exact copy of `input` (both as a peer read them; the
/// input's records with partition and offset): input records missing from the output or
/// there more than once, copies whose key or value differ from their source, and records
/// without a valid `source-offset` header or naming no input record. Empty when the copy is
/// exact. At most a few examples of each kind are listed, with the counts.
pub fn copy_defects(input: &[PeerRecord], output: &[PeerRecord]) -> Vec<String> {
    let mut sources: HashMap<(i32, i64), &PeerRecord> = HashMap::new();
    for r in input {
        sources.insert((r.partition.unwrap_or(-1), r.offset.unwrap_or(-1)), r);
    }
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    let (mut unnamed, mut unknown, mut different) = (Vec::new(), Vec::new(), Vec::new());
    for r in output {
        let Some(source) = source_offset(r) else {
            unnamed.push(format!("{r:?}"));
            continue;
        };
        match sources.get(&source) {
            None => unknown.push(format!("{source:?}")),
            Some(s) if s.key != r.key || s.value != r.value => different.push(format!("{source:?}")),
            Some(_) => {}
        }
        *seen.entry(source).or_default() += 1;
    }
    let mut missing: Vec<String> =
        sources.keys().filter(|k| !seen.contains_key(k)).map(|k| format!("{k:?}")).collect();
    let mut twice: Vec<String> =
        seen.iter().filter(|(_, n)| **n > 1).map(|(k, n)| format!("{k:?} x{n}")).collect();
    missing.sort();
    twice.sort();
    let mut defects = Vec::new();
    for (what, list) in [
        ("input records missing", missing),
        ("input records copied more than once", twice),
        ("copies that differ from their source", different),
        ("copies naming no input record", unknown),
        ("records without a source-offset header", unnamed),
    ] {
        if !list.is_empty() {
            let examples: Vec<&str> = list.iter().take(5).map(String::as_str).collect();
            defects.push(format!("{} {what}, e.g. {}", list.len(), examples.join(", ")));
        }
    }
    defects
}

/// The `(partition, offset)` a copy names in its `source-offset` header.
pub fn source_offset(record: &PeerRecord) -> Option<(i32, i64)> {
    let (_, value) = record.headers.iter().find(|(name, _)| name == "source-offset")?;
    let text = std::str::from_utf8(value.as_deref()?).ok()?;
    let (partition, offset) = text.split_once(':')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}
