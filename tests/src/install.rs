//! Where `scripts/install-test-deps` put the brokers and peers, and whether it finished.
//!
//! Each component lives in its own directory of the cache and is complete once its `.complete`
//! stamp exists (the script writes it last). A missing component is an error naming the script:
//! the tests never skip quietly because something is not installed.

use std::path::{Path, PathBuf};

use crate::Error;

/// The cache directory: `$KLAMM_CACHE_DIR`, else `$HOME/.cache/klamm` (as in the install script).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("KLAMM_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache").join("klamm")
}

/// One thing the install script provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// Apache Kafka's broker jars (`<cache>/kafka/libs`).
    Kafka,
    /// The tansu binary (`<cache>/tansu/bin/tansu`).
    Tansu,
    /// The Python venv with confluent-kafka (`<cache>/venv`).
    Rdkafka,
    /// The Java peer's jars (`<cache>/java-peer/lib`).
    JavaPeer,
}

impl Component {
    fn dir_name(self) -> &'static str {
        match self {
            Component::Kafka => "kafka",
            Component::Tansu => "tansu",
            Component::Rdkafka => "venv",
            Component::JavaPeer => "java-peer",
        }
    }

    fn script_arg(self) -> &'static str {
        match self {
            Component::Kafka => "kafka",
            Component::Tansu => "tansu",
            Component::Rdkafka => "rdkafka",
            Component::JavaPeer => "java",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Component::Kafka => "the Apache Kafka broker",
            Component::Tansu => "the tansu broker",
            Component::Rdkafka => "the librdkafka peer (confluent-kafka venv)",
            Component::JavaPeer => "the Java peer",
        }
    }

    /// The component's directory if its install completed, else an error that says how to
    /// install it.
    pub fn dir(self) -> Result<PathBuf, Error> {
        let dir = cache_dir().join(self.dir_name());
        if dir.join(".complete").is_file() {
            Ok(dir)
        } else {
            Err(format!(
                "{} is not installed in {} (no .complete stamp). Run `scripts/install-test-deps` \
                 (or `scripts/install-test-deps {}`) from the repository root first; set \
                 KLAMM_CACHE_DIR if your cache lives elsewhere.",
                self.describe(),
                dir.display(),
                self.script_arg()
            )
            .into())
        }
    }
}

/// The `java` to run: `$JAVA_HOME/bin/java` when JAVA_HOME is set, else `java` from PATH.
pub(crate) fn java() -> PathBuf {
    match std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        Some(home) => Path::new(&home).join("bin").join("java"),
        None => PathBuf::from("java"),
    }
}
