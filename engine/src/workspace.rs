//! Workspaces: the per-workspace state the engine keeps ([`Workspace`]), how an id maps to a
//! partition ([`partition_of`]), and where state lives ([`WorkspaceStorage`], with
//! [`FileStorage`]: one JSON file per workspace, replaced atomically).

use std::fs::{self, File};
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The partition events keyed by workspace `id` land in, as the producer's default
/// partitioner puts them (murmur2 of the id's bytes).
pub fn partition_of(id: &str, partitions: NonZeroU32) -> i32 {
    klamm::partitioner::partition_for_key(id.as_bytes(), partitions)
}

/// One workspace's state: its id, partition, the next offset to consume from its partition of
/// the primary topic, and the application's data (stored beside them, flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// The workspace id (the key of its events).
    pub workspace_id: String,
    /// Its partition.
    pub partition: i32,
    /// The offset after the last event applied from the primary topic (0: none yet). Events
    /// below it are never applied again.
    pub offset: i64,
    /// The same for the other source topics, by name (empty with one topic).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub offsets: std::collections::BTreeMap<String, i64>,
    /// The application's data.
    #[serde(flatten)]
    pub data: serde_json::Map<String, serde_json::Value>,
}

impl Workspace {
    /// An empty workspace.
    pub fn new(id: impl Into<String>, partition: i32) -> Self {
        Self {
            workspace_id: id.into(),
            partition,
            offset: 0,
            offsets: Default::default(),
            data: Default::default(),
        }
    }

    /// The next offset to apply from `topic` (`primary`: whether it is the primary topic).
    pub(crate) fn next_offset(&self, topic: &str, primary: bool) -> i64 {
        if primary {
            self.offset
        } else {
            self.offsets.get(topic).copied().unwrap_or(0)
        }
    }

    pub(crate) fn set_next_offset(&mut self, topic: &str, primary: bool, next: i64) {
        if primary {
            self.offset = next;
        } else {
            self.offsets.insert(topic.to_string(), next);
        }
    }
}

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Reading or writing failed.
    #[error("workspace storage {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A stored workspace could not be decoded.
    #[error("workspace file {path} is not a valid workspace: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Another backend's failure.
    #[error("workspace storage: {0}")]
    Other(String),
}

/// Where workspaces are kept. Calls are short and blocking (the engine makes them from its
/// partition tasks).
pub trait WorkspaceStorage: Send + Sync + 'static {
    /// The workspace `id`, or `None` if none is stored.
    fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError>;
    /// Stores `workspace`, replacing what was stored, atomically: after a crash the old or the
    /// new state is found, never a mix.
    fn save(&self, workspace: &Workspace) -> Result<(), StorageError>;
    /// The ids of every stored workspace.
    fn discover(&self) -> Result<Vec<String>, StorageError>;
}

/// One JSON file per workspace, `<dir>/<id>.json`, written to a temporary file, synced,
/// renamed over the old one, and the directory synced. Bytes of an id other than ASCII
/// letters, digits, `-` and `_` are written `%XX` in the file name (so no id can name a path
/// outside the directory).
#[derive(Debug, Clone)]
pub struct FileStorage {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io { path: path.to_path_buf(), source }
}

fn encode_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode_id(name: &str) -> Option<String> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = name.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl FileStorage {
    /// Storage in `dir`, created if missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of workspace `id`.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{}.json", encode_id(id)))
    }
}

impl WorkspaceStorage for FileStorage {
    fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError> {
        let path = self.path_of(id);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let ws: Workspace = serde_json::from_slice(&bytes)
            .map_err(|source| StorageError::Corrupt { path: path.clone(), source })?;
        if ws.workspace_id != id {
            return Err(StorageError::Other(format!(
                "{} holds workspace {:?}",
                path.display(),
                ws.workspace_id
            )));
        }
        Ok(Some(ws))
    }

    fn save(&self, workspace: &Workspace) -> Result<(), StorageError> {
        let path = self.path_of(&workspace.workspace_id);
        let tmp = self.dir.join(format!(".{}.json.tmp", encode_id(&workspace.workspace_id)));
        let mut json = serde_json::to_vec_pretty(workspace)
            .map_err(|e| StorageError::Other(format!("cannot encode workspace: {e}")))?;
        json.push(b'\n');
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&json).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        // The rename is durable once the directory is.
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        Ok(())
    }

    fn discover(&self) -> Result<Vec<String>, StorageError> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.starts_with('.') {
                continue;
            }
            if let Some(id) = name.strip_suffix(".json").and_then(decode_id) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("klamm-engine-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn save_load_discover_round_trip() {
        let dir = temp_dir("storage");
        let s = FileStorage::new(&dir).unwrap();
        let mut a = Workspace::new("ws-1", 3);
        a.offset = 42;
        a.data.insert("events".into(), 7.into());
        let mut b = Workspace::new("../evil/ü", 0);
        b.offsets.insert("other".into(), 9);
        s.save(&a).unwrap();
        s.save(&b).unwrap();
        assert_eq!(s.load("ws-1").unwrap(), Some(a.clone()));
        assert_eq!(s.load("../evil/ü").unwrap(), Some(b));
        assert_eq!(s.load("nope").unwrap(), None);
        assert_eq!(s.discover().unwrap(), vec!["../evil/ü".to_string(), "ws-1".to_string()]);
        // The file has the documented layout.
        let v: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("ws-1.json")).unwrap()).unwrap();
        assert_eq!(v, serde_json::json!({"workspace_id": "ws-1", "partition": 3, "offset": 42, "events": 7}));
        assert!(fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("tmp")));
        fs::write(dir.join("bad.json"), b"{").unwrap();
        assert!(matches!(s.load("bad"), Err(StorageError::Corrupt { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_map_like_the_partitioner() {
        let seven = NonZeroU32::new(7).unwrap();
        assert_eq!(partition_of("21", seven), 3);
        assert_eq!(partition_of("foobar", seven), 0);
    }
}
