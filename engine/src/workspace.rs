//! Workspaces: the per-workspace state the engine keeps ([`Workspace`]), how an id maps to a
//! partition ([`partition_of`]), and where state lives ([`WorkspaceStorage`], with
//! [`FileStorage`]: one JSON file per workspace, replaced atomically, and a "saved through"
//! checkpoint per source partition).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::future::Future;
use std::io::Write;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use serde::{Deserialize, Serialize};

/// The partition events keyed by workspace `id` land in, as the producer's default
/// partitioner puts them (murmur2 of the id's bytes).
pub fn partition_of(id: &str, partitions: NonZeroU32) -> i32 {
    klamm::partitioner::partition_for_key(id.as_bytes(), partitions)
}

/// The next offset to apply from one partition of one source topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredOffset {
    /// The topic.
    pub topic: String,
    /// The topic's id when the offset was recorded (hyphenated hex), so that an offset of a
    /// deleted topic is not taken for one of a new topic of the same name. `None` when the
    /// broker gave no id, or for an offset read from the older single-offset form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic_id: Option<String>,
    /// The partition.
    pub partition: i32,
    /// The offset after the last event applied from this partition. Events of this partition
    /// below it are never applied again.
    pub offset: i64,
}

/// Offsets in the form files had before they were kept per partition: one for the primary
/// topic (at the workspace's `partition`) and one per other topic, partition unrecorded. The
/// engine turns them into [`StoredOffset`]s when it loads the workspace, since only it knows
/// which topic is the primary one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LegacyOffsets {
    primary: Option<i64>,
    others: BTreeMap<String, i64>,
}

/// One workspace's state: its id, its partition, the next offset to apply from each source
/// partition it has events on, and the application's data.
///
/// Stored as one JSON object (what [`FileStorage`] writes, and what a changelog record would
/// carry):
///
/// ```json
/// {
///   "workspace_id": "ws-42",
///   "partition": 7,
///   "offsets": [
///     {"topic": "workspace-events", "topic_id": "5f1c…", "partition": 1, "offset": 40},
///     {"topic": "workspace-events", "topic_id": "5f1c…", "partition": 7, "offset": 12}
///   ],
///   "events": 52
/// }
/// ```
///
/// `offsets` lists one entry per (topic, partition), sorted; a workspace has more than one
/// entry per topic when the topic's partitions were added to (its id then hashes to another
/// partition, and its earlier events sit on the old one). The application's fields (here
/// `events`) sit beside the engine's. Files of the older form, with a single `offset` (the
/// primary topic, at `partition`) and `offsets` as a map from other topic names to offsets,
/// are still read. While the engine writes one of the workspace's events to the dead-letter
/// topic (at-least-once mode), `dead_lettering` names that event (see
/// [`Workspace::dead_lettering`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Workspace {
    /// The workspace id (the key of its events).
    pub workspace_id: String,
    /// The partition of the primary topic its id hashes to, under the partition count the
    /// engine last saw (where its new events arrive).
    pub partition: i32,
    /// Sorted by (topic, partition), one entry each.
    offsets: Vec<StoredOffset>,
    /// Offsets of the older form not yet placed on partitions.
    legacy: Option<LegacyOffsets>,
    /// The event whose dead-letter write began and is not known to be done.
    dead_lettering: Option<DeadLettering>,
    /// The application's data.
    pub data: serde_json::Map<String, serde_json::Value>,
}

/// The stored form, both the current one and the older one (read only).
#[derive(Serialize, Deserialize)]
struct RawWorkspace {
    workspace_id: String,
    partition: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offsets: Option<RawOffsets>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dead_lettering: Option<DeadLettering>,
    #[serde(flatten)]
    data: serde_json::Map<String, serde_json::Value>,
}

/// An event of a workspace whose dead-letter write began and is not known to be done: the
/// engine records it (and saves the workspace) before the write and clears it once the write
/// is acknowledged. A run killed in between leaves it stored; the next run, reaching that
/// event again, first looks for it on the dead-letter topic from a little before `at`, so that
/// it is not written twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLettering {
    /// The event's topic.
    pub topic: String,
    /// The event's partition.
    pub partition: i32,
    /// The event's offset.
    pub offset: i64,
    /// When the write began, in milliseconds since the Unix epoch.
    pub at: i64,
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum RawOffsets {
    PerPartition(Vec<StoredOffset>),
    ByTopic(BTreeMap<String, i64>),
}

impl Serialize for Workspace {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A workspace still in the older form is written back in it: it has no per-partition
        // offsets yet (the engine places the old ones before it records any).
        let (offset, offsets) = match &self.legacy {
            Some(l) if self.offsets.is_empty() => {
                (l.primary, (!l.others.is_empty()).then(|| RawOffsets::ByTopic(l.others.clone())))
            }
            _ => (None, Some(RawOffsets::PerPartition(self.offsets.clone()))),
        };
        // The engine's field names are not the application's to use: written from `data` they
        // would come back as the engine's (or make the file unreadable).
        let data = self.data.iter().filter(|(k, _)| !Workspace::RESERVED_KEYS.contains(&k.as_str()));
        RawWorkspace {
            workspace_id: self.workspace_id.clone(),
            partition: self.partition,
            offset,
            offsets,
            dead_lettering: self.dead_lettering.clone(),
            data: data.map(|(k, v)| (k.clone(), v.clone())).collect(),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Workspace {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = RawWorkspace::deserialize(deserializer)?;
        let mut legacy = LegacyOffsets { primary: raw.offset.filter(|&o| o > 0), others: BTreeMap::new() };
        let mut offsets = Vec::new();
        match raw.offsets {
            Some(RawOffsets::PerPartition(list)) => offsets = list,
            Some(RawOffsets::ByTopic(map)) => {
                legacy.others = map.into_iter().filter(|(_, o)| *o > 0).collect()
            }
            None => {}
        }
        let mut ws = Workspace {
            workspace_id: raw.workspace_id,
            partition: raw.partition,
            offsets: Vec::new(),
            legacy: (legacy != LegacyOffsets::default()).then_some(legacy),
            dead_lettering: raw.dead_lettering,
            data: raw.data,
        };
        for o in offsets {
            if o.offset < 0 {
                return Err(serde::de::Error::custom(format!(
                    "negative offset {} for {}-{}",
                    o.offset, o.topic, o.partition
                )));
            }
            ws.put(o);
        }
        Ok(ws)
    }
}

impl Workspace {
    /// Field names of the stored form that belong to the engine; [`Workspace::data`] entries
    /// of these names are not stored.
    pub const RESERVED_KEYS: [&'static str; 5] =
        ["workspace_id", "partition", "offset", "offsets", "dead_lettering"];

    /// An empty workspace.
    pub fn new(id: impl Into<String>, partition: i32) -> Self {
        Self {
            workspace_id: id.into(),
            partition,
            offsets: Vec::new(),
            legacy: None,
            dead_lettering: None,
            data: Default::default(),
        }
    }

    /// The event whose dead-letter write began and is not known to be done, if any.
    pub fn dead_lettering(&self) -> Option<&DeadLettering> {
        self.dead_lettering.as_ref()
    }

    /// Records that the dead-letter write of an event began (`Some`), or is done (`None`).
    pub(crate) fn set_dead_lettering(&mut self, event: Option<DeadLettering>) {
        self.dead_lettering = event;
    }

    /// The next offset to apply from `partition` of `topic`; `None` when the workspace has
    /// applied nothing from there.
    pub fn next_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.entry(topic, partition).map(|o| o.offset)
    }

    /// Every stored offset, sorted by topic and partition.
    pub fn offsets(&self) -> &[StoredOffset] {
        &self.offsets
    }

    /// Whether it still holds offsets of the older single-offset form, not yet placed on
    /// partitions (the engine places them when it loads the workspace).
    pub fn has_legacy_offsets(&self) -> bool {
        self.legacy.is_some()
    }

    fn entry(&self, topic: &str, partition: i32) -> Option<&StoredOffset> {
        self.offsets
            .binary_search_by(|o| (o.topic.as_str(), o.partition).cmp(&(topic, partition)))
            .ok()
            .map(|i| &self.offsets[i])
    }

    fn put(&mut self, entry: StoredOffset) {
        match self.offsets.binary_search_by(|o| {
            (o.topic.as_str(), o.partition).cmp(&(entry.topic.as_str(), entry.partition))
        }) {
            Ok(i) => self.offsets[i] = entry,
            Err(i) => self.offsets.insert(i, entry),
        }
    }

    /// Records that everything of `partition` of `topic` (id `topic_id`) below `next` is
    /// applied.
    pub(crate) fn set_next_offset(&mut self, topic: &str, topic_id: Option<&str>, partition: i32, next: i64) {
        self.put(StoredOffset {
            topic: topic.to_string(),
            topic_id: topic_id.map(str::to_string),
            partition,
            offset: next,
        });
    }

    /// Forgets the offset of `partition` of `topic`, returning it.
    pub(crate) fn forget_offset(&mut self, topic: &str, partition: i32) -> Option<StoredOffset> {
        let i = self
            .offsets
            .binary_search_by(|o| (o.topic.as_str(), o.partition).cmp(&(topic, partition)))
            .ok()?;
        Some(self.offsets.remove(i))
    }

    /// Places offsets of the older form: the primary topic's at the stored `partition` (where
    /// the older version kept it), another topic's at `partition_in(topic)` (the older form
    /// did not record it). Offsets already recorded per partition win. Returns whether
    /// anything changed.
    pub(crate) fn place_legacy_offsets(
        &mut self,
        primary: &str,
        partition_in: impl Fn(&str) -> Option<i32>,
    ) -> bool {
        let Some(legacy) = self.legacy.take() else { return false };
        if let Some(offset) = legacy.primary {
            if self.entry(primary, self.partition).is_none() {
                let partition = self.partition;
                self.put(StoredOffset { topic: primary.to_string(), topic_id: None, partition, offset });
            }
        }
        for (topic, offset) in legacy.others {
            let Some(partition) = partition_in(&topic) else { continue };
            if self.entry(&topic, partition).is_none() {
                self.put(StoredOffset { topic, topic_id: None, partition, offset });
            }
        }
        true
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

/// What a [`WorkspaceStorage`] holds of one source partition's saves, so that the engine knows
/// how far back it has to replay that partition after a restart or a rebalance.
#[derive(Clone, PartialEq, Eq)]
pub enum SavedThrough {
    /// Nothing is known (the default, and what a store that cannot tell says). The engine
    /// replays the partition from the smallest offset its workspaces stored, so that a store
    /// that may be stale (another host's files) catches up.
    Unknown,
    /// Every save of every workspace changed by the partition's events below `offset` is held
    /// (the checkpoint [`WorkspaceStorage::record_saved_through`] recorded). When that reaches
    /// the group's committed offset, the engine replays only from the committed offset.
    Checkpoint(StoredOffset),
    /// The store is the one every member of the group saves to before it commits (a changelog
    /// topic, restored up to its end): whatever the group committed is covered.
    Everything,
}

impl std::fmt::Debug for SavedThrough {
    /// `unknown`, `everything`, or the checkpoint's offset: short, for log lines.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SavedThrough::Unknown => f.write_str("unknown"),
            SavedThrough::Everything => f.write_str("everything"),
            SavedThrough::Checkpoint(c) => write!(f, "{}", c.offset),
        }
    }
}

impl SavedThrough {
    /// Whether the store holds every save caused by the partition's events below `committed`
    /// (the group's committed offset), for the topic whose id is now `topic_id`: then a replay
    /// from `committed` misses nothing. A checkpoint recorded for another topic id (a topic of
    /// the same name, deleted since) covers nothing.
    pub fn covers(&self, committed: i64, topic_id: Option<&str>) -> bool {
        match self {
            SavedThrough::Unknown => false,
            SavedThrough::Everything => true,
            SavedThrough::Checkpoint(c) => {
                let same_topic = match (c.topic_id.as_deref(), topic_id) {
                    (Some(then), Some(now)) => then == now,
                    _ => true,
                };
                same_topic && c.offset >= committed
            }
        }
    }
}

/// A boxed future of a storage call that has to wait on the network (see
/// [`WorkspaceStorage::restore`] and [`WorkspaceStorage::save_all`]).
pub type StorageFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StorageError>> + Send + 'a>>;

/// Where workspaces are kept.
///
/// `load`, `save`, `discover` and the checkpoint calls are short and blocking (the engine makes
/// them from its partition tasks, off the async runtime's queue). A store that has to wait on
/// the network implements the two asynchronous calls, [`restore`](WorkspaceStorage::restore)
/// (fill the store for newly assigned partitions) and [`save_all`](WorkspaceStorage::save_all)
/// (save a batch, waiting for every write at once); both have default bodies, so a store that
/// only implements the three required calls keeps working and is replayed conservatively.
///
/// ```
/// use klamm_engine::{SavedThrough, StorageError, Workspace, WorkspaceStorage};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// /// Workspaces in memory: lost with the process, so it vouches for nothing.
/// #[derive(Default)]
/// struct InMemory(Mutex<HashMap<String, Workspace>>);
///
/// impl WorkspaceStorage for InMemory {
///     fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError> {
///         Ok(self.0.lock().unwrap().get(id).cloned())
///     }
///     fn save(&self, ws: &Workspace) -> Result<(), StorageError> {
///         self.0.lock().unwrap().insert(ws.workspace_id.clone(), ws.clone());
///         Ok(())
///     }
///     fn discover(&self) -> Result<Vec<String>, StorageError> {
///         Ok(self.0.lock().unwrap().keys().cloned().collect())
///     }
/// }
///
/// let store = InMemory::default();
/// store.save(&Workspace::new("ws-1", 0)).unwrap();
/// assert_eq!(store.discover().unwrap(), ["ws-1"]);
/// assert_eq!(store.saved_through("events", 0).unwrap(), SavedThrough::Unknown);
/// ```
pub trait WorkspaceStorage: Send + Sync + 'static {
    /// The workspace `id`, or `None` if none is stored.
    fn load(&self, id: &str) -> Result<Option<Workspace>, StorageError>;
    /// Stores `workspace`, replacing what was stored, atomically: after a crash the old or the
    /// new state is found, never a mix.
    fn save(&self, workspace: &Workspace) -> Result<(), StorageError>;
    /// The ids of every stored workspace.
    fn discover(&self) -> Result<Vec<String>, StorageError>;

    /// How far the store holds the saves caused by `partition` of source `topic` (default:
    /// [`SavedThrough::Unknown`]).
    fn saved_through(&self, topic: &str, partition: i32) -> Result<SavedThrough, StorageError> {
        let _ = (topic, partition);
        Ok(SavedThrough::Unknown)
    }

    /// Records that every workspace changed by the events of `checkpoint`'s partition below its
    /// offset is saved. The engine calls it after the saves and before it commits that offset,
    /// so a checkpoint is never behind a commit made by this store's host. Default: nothing is
    /// recorded.
    fn record_saved_through(&self, checkpoint: &StoredOffset) -> Result<(), StorageError> {
        let _ = checkpoint;
        Ok(())
    }

    /// Called when partitions of the primary topic are assigned, before their workspaces are
    /// listed and loaded and before any of their events is handled: a store that lives
    /// elsewhere brings its copy of these partitions' workspaces up to date here. Default:
    /// nothing to do.
    fn restore<'a>(&'a self, partitions: &'a [i32]) -> StorageFuture<'a, ()> {
        let _ = partitions;
        Box::pin(async { Ok(()) })
    }

    /// Saves every workspace of `workspaces` (each as [`save`](WorkspaceStorage::save) does)
    /// and returns once all are stored; on an error some may be stored and some not, and the
    /// engine saves them all again later. Default: `save` of each in turn, off the runtime's
    /// queue.
    fn save_all<'a>(&'a self, workspaces: &'a [&'a Workspace]) -> StorageFuture<'a, ()> {
        Box::pin(async move {
            for ws in workspaces {
                blocking(|| self.save(ws))?;
            }
            Ok(())
        })
    }
}

/// Runs a blocking storage call (file reads, writes and fsyncs) without holding up the other
/// tasks of the worker thread: on a multi-threaded runtime the thread hands its tasks to the
/// others while `f` blocks. On a current-thread runtime there is no other thread to hand them
/// to, so `f` just runs.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// One JSON file per workspace, `<dir>/<id>.json`, written to a temporary file, synced,
/// renamed over the old one, and the directory synced. Bytes of an id other than ASCII
/// letters, digits, `-` and `_` are written `%XX` in the file name (so no id can name a path
/// outside the directory).
///
/// The "saved through" checkpoint of each source partition (see
/// [`WorkspaceStorage::record_saved_through`]) is a small file
/// `<dir>/.checkpoints/<topic>-<partition>.json` holding a [`StoredOffset`], written the same
/// way; [`discover`](WorkspaceStorage::discover) passes over it.
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

    /// The checkpoint file of `partition` of `topic`.
    pub fn checkpoint_path(&self, topic: &str, partition: i32) -> PathBuf {
        self.dir.join(CHECKPOINTS).join(format!("{}-{partition}.json", encode_id(topic)))
    }
}

/// The directory of checkpoint files, inside the store's directory (a dot name: never taken
/// for a workspace).
const CHECKPOINTS: &str = ".checkpoints";

/// Writes `bytes` to `path` in `dir` atomically: to a temporary file, synced, renamed over
/// `path`, and the directory synced.
fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path))?;
    // The rename is durable once the directory is.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))?;
    Ok(())
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
        let mut json = serde_json::to_vec_pretty(workspace)
            .map_err(|e| StorageError::Other(format!("cannot encode workspace: {e}")))?;
        json.push(b'\n');
        write_atomically(&self.dir, &format!("{}.json", encode_id(&workspace.workspace_id)), &json)
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

    fn saved_through(&self, topic: &str, partition: i32) -> Result<SavedThrough, StorageError> {
        let path = self.checkpoint_path(topic, partition);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedThrough::Unknown),
            Err(e) => return Err(io(&path)(e)),
        };
        let checkpoint: StoredOffset = serde_json::from_slice(&bytes)
            .map_err(|source| StorageError::Corrupt { path: path.clone(), source })?;
        if checkpoint.topic != topic || checkpoint.partition != partition || checkpoint.offset < 0 {
            return Err(StorageError::Other(format!(
                "{} holds the checkpoint {}-{} at {}",
                path.display(),
                checkpoint.topic,
                checkpoint.partition,
                checkpoint.offset
            )));
        }
        Ok(SavedThrough::Checkpoint(checkpoint))
    }

    fn record_saved_through(&self, checkpoint: &StoredOffset) -> Result<(), StorageError> {
        let dir = self.dir.join(CHECKPOINTS);
        if !dir.is_dir() {
            fs::create_dir_all(&dir).map_err(io(&dir))?;
            File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io(&self.dir))?;
        }
        let json = serde_json::to_vec(checkpoint)
            .map_err(|e| StorageError::Other(format!("cannot encode checkpoint: {e}")))?;
        write_atomically(
            &dir,
            &format!("{}-{}.json", encode_id(&checkpoint.topic), checkpoint.partition),
            &json,
        )
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
        a.set_next_offset("t", Some("00000000-0000-0000-0000-000000000001"), 3, 42);
        a.set_next_offset("t", None, 1, 9);
        a.data.insert("events".into(), 7.into());
        let mut b = Workspace::new("../evil/ü", 0);
        b.set_next_offset("other", None, 0, 9);
        s.save(&a).unwrap();
        s.save(&b).unwrap();
        assert_eq!(s.load("ws-1").unwrap(), Some(a.clone()));
        assert_eq!(s.load("../evil/ü").unwrap(), Some(b));
        assert_eq!(s.load("nope").unwrap(), None);
        assert_eq!(s.discover().unwrap(), vec!["../evil/ü".to_string(), "ws-1".to_string()]);
        // The file has the documented layout: offsets per partition, sorted.
        let v: serde_json::Value = serde_json::from_slice(&fs::read(dir.join("ws-1.json")).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "workspace_id": "ws-1",
                "partition": 3,
                "offsets": [
                    {"topic": "t", "partition": 1, "offset": 9},
                    {"topic": "t", "topic_id": "00000000-0000-0000-0000-000000000001", "partition": 3, "offset": 42},
                ],
                "events": 7,
            })
        );
        assert_eq!(a.next_offset("t", 3), Some(42));
        assert_eq!(a.next_offset("t", 1), Some(9));
        assert_eq!(a.next_offset("t", 0), None);
        assert!(fs::read_dir(&dir).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("tmp")));
        fs::write(dir.join("bad.json"), b"{").unwrap();
        assert!(matches!(s.load("bad"), Err(StorageError::Corrupt { .. })));
        fs::write(dir.join("neg.json"), br#"{"workspace_id": "neg", "partition": 0, "offsets": [{"topic": "t", "partition": 0, "offset": -1}]}"#).unwrap();
        assert!(matches!(s.load("neg"), Err(StorageError::Corrupt { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_begun_dead_letter_write_is_stored_and_read_back_and_not_taken_for_data() {
        let mut ws = Workspace::new("ws-9", 2);
        ws.set_next_offset("t", None, 2, 10);
        let mark = DeadLettering { topic: "t".into(), partition: 2, offset: 10, at: 1_796_000_000_000 };
        ws.set_dead_lettering(Some(mark.clone()));
        let text = serde_json::to_string(&ws).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["dead_lettering"],
            serde_json::json!({"topic": "t", "partition": 2, "offset": 10, "at": 1_796_000_000_000i64})
        );
        let back: Workspace = serde_json::from_str(&text).unwrap();
        assert_eq!(back.dead_lettering(), Some(&mark));
        assert!(back.data.is_empty(), "the mark is the engine's, not the application's: {:?}", back.data);
        // Cleared, it is not written at all.
        ws.set_dead_lettering(None);
        let v: serde_json::Value = serde_json::to_value(&ws).unwrap();
        assert!(v.get("dead_lettering").is_none(), "{v}");
        // An application field of that name is not stored over the engine's.
        ws.data.insert("dead_lettering".into(), 1.into());
        let back: Workspace = serde_json::from_value(serde_json::to_value(&ws).unwrap()).unwrap();
        assert_eq!(back.dead_lettering(), None);
    }

    #[test]
    fn the_older_single_offset_form_is_read_and_placed_on_partitions() {
        // As the previous version wrote it: `offset` for the primary topic at `partition`,
        // `offsets` by topic name for the others.
        let old =
            r#"{"workspace_id": "ws-9", "partition": 2, "offset": 40, "offsets": {"side": 7}, "events": 5}"#;
        let mut ws: Workspace = serde_json::from_str(old).unwrap();
        assert!(ws.has_legacy_offsets());
        assert_eq!(ws.offsets(), &[]);
        assert_eq!(ws.data.get("events"), Some(&5.into()));
        assert!(!ws.data.contains_key("offset") && !ws.data.contains_key("offsets"));
        // Written back unchanged until it is placed.
        let again: serde_json::Value = serde_json::to_value(&ws).unwrap();
        assert_eq!(again, serde_json::from_str::<serde_json::Value>(old).unwrap());
        assert!(ws.place_legacy_offsets("main", |t| (t == "side").then_some(4)));
        assert!(!ws.has_legacy_offsets());
        assert_eq!(ws.next_offset("main", 2), Some(40));
        assert_eq!(ws.next_offset("side", 4), Some(7));
        assert_eq!(ws.next_offset("main", 0), None);
        // From then on it is written in the per-partition form.
        let v = serde_json::to_value(&ws).unwrap();
        assert!(v.get("offset").is_none(), "{v}");
        assert_eq!(v["offsets"].as_array().map(Vec::len), Some(2), "{v}");
        let back: Workspace = serde_json::from_value(v).unwrap();
        assert_eq!(back, ws);
        // The engine's names in the application's data are not written.
        let mut clash = ws.clone();
        clash.data.insert("offset".into(), 1.into());
        clash.data.insert("offsets".into(), "mine".into());
        let v = serde_json::to_value(&clash).unwrap();
        assert!(v.get("offset").is_none(), "{v}");
        assert_eq!(serde_json::from_value::<Workspace>(v).unwrap(), ws);

        // Offset 0 meant "nothing applied yet": no entry.
        let mut empty: Workspace =
            serde_json::from_str(r#"{"workspace_id": "e", "partition": 0, "offset": 0}"#).unwrap();
        assert!(!empty.has_legacy_offsets());
        assert!(!empty.place_legacy_offsets("main", |_| Some(0)));
        assert_eq!(empty.offsets(), &[]);
        // A topic whose partition cannot be told is dropped rather than guessed.
        let mut gone: Workspace =
            serde_json::from_str(r#"{"workspace_id": "g", "partition": 1, "offsets": {"gone": 3}}"#).unwrap();
        assert!(gone.place_legacy_offsets("main", |_| None));
        assert_eq!(gone.offsets(), &[]);
    }

    #[test]
    fn checkpoints_are_kept_per_partition_apart_from_the_workspaces() {
        let dir = temp_dir("checkpoint");
        let s = FileStorage::new(&dir).unwrap();
        assert_eq!(s.saved_through("t", 0).unwrap(), SavedThrough::Unknown);
        let id = Some("00000000-0000-0000-0000-000000000007".to_string());
        let at = |offset| StoredOffset { topic: "t/x".into(), topic_id: id.clone(), partition: 3, offset };
        s.record_saved_through(&at(40)).unwrap();
        s.record_saved_through(&at(90)).unwrap();
        s.save(&Workspace::new("ws-1", 3)).unwrap();
        assert_eq!(s.saved_through("t/x", 3).unwrap(), SavedThrough::Checkpoint(at(90)));
        assert_eq!(s.saved_through("t/x", 2).unwrap(), SavedThrough::Unknown);
        // Checkpoints are not workspaces, and no temporary file is left.
        assert_eq!(s.discover().unwrap(), ["ws-1"]);
        let names: Vec<String> = fs::read_dir(dir.join(".checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["t%2Fx-3.json"]);
        // A checkpoint file of another partition's name is refused, not trusted.
        fs::copy(s.checkpoint_path("t/x", 3), s.checkpoint_path("t/x", 4)).unwrap();
        assert!(matches!(s.saved_through("t/x", 4), Err(StorageError::Other(_))));
        fs::write(s.checkpoint_path("t/x", 5), b"{").unwrap();
        assert!(matches!(s.saved_through("t/x", 5), Err(StorageError::Corrupt { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_checkpoint_covers_commits_up_to_it_of_the_same_topic() {
        let id = "00000000-0000-0000-0000-000000000007";
        let c = |offset, topic_id: Option<&str>| {
            SavedThrough::Checkpoint(StoredOffset {
                topic: "t".into(),
                topic_id: topic_id.map(str::to_string),
                partition: 0,
                offset,
            })
        };
        assert!(c(100, Some(id)).covers(100, Some(id)));
        assert!(c(100, Some(id)).covers(40, Some(id)));
        assert!(c(100, Some(id)).covers(0, None));
        // Behind the commit: another host (or this one, before a failure) went further.
        assert!(!c(100, Some(id)).covers(101, Some(id)));
        // Recorded for a topic of the same name that was deleted since.
        assert!(!c(100, Some(id)).covers(10, Some("00000000-0000-0000-0000-000000000008")));
        assert!(c(100, None).covers(10, Some(id)));
        assert!(!SavedThrough::Unknown.covers(0, None));
        assert!(SavedThrough::Everything.covers(i64::MAX, Some(id)));
    }

    #[test]
    fn offsets_are_kept_per_partition() {
        let mut ws = Workspace::new("w", 0);
        ws.set_next_offset("t", None, 5, 3);
        ws.set_next_offset("t", None, 1, 100);
        ws.set_next_offset("a", None, 9, 1);
        ws.set_next_offset("t", None, 5, 4);
        let keys: Vec<(&str, i32, i64)> =
            ws.offsets().iter().map(|o| (o.topic.as_str(), o.partition, o.offset)).collect();
        assert_eq!(keys, [("a", 9, 1), ("t", 1, 100), ("t", 5, 4)]);
        assert_eq!(ws.forget_offset("t", 1).map(|o| o.offset), Some(100));
        assert_eq!(ws.next_offset("t", 1), None);
        assert_eq!(ws.forget_offset("t", 1), None);
    }

    #[test]
    fn ids_map_like_the_partitioner() {
        let seven = NonZeroU32::new(7).unwrap();
        assert_eq!(partition_of("21", seven), 3);
        assert_eq!(partition_of("foobar", seven), 0);
    }
}
