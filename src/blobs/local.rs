//! The local store: uploaded files on disk. An upload streams into `tmp/<process>/`, is fsynced,
//! renamed into `blobs/<item-id>` (same filesystem, so the rename is atomic), and only
//! then recorded in the database. A crash at any point leaves no visible half item.
//!
//! Several replicas may share the data directory. Each process writes into its own
//! tmp subdirectory and holds an exclusive lock on it while it runs; at start, a
//! process removes every tmp subdirectory whose lock it can take (its owner is gone).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, BufWriter};
use tokio_util::io::ReaderStream;

use super::{ByteStream, Stored, UploadError, hex};

/// How often, in bytes written, the free-space reserve is checked during an upload
/// that has more than this still to come (other uploads share the disk meanwhile).
const SPACE_CHECK_EVERY: u64 = 16 * 1024 * 1024;
/// Uploads reach the file in pieces of this size. Every write is a trip to tokio's
/// blocking pool, and a proxy forwards a body in small pieces (nginx: 8-16 KiB), so
/// writing each as it came would cost a trip per piece.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Bytes read from a blob per step of a download.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug)]
pub struct LocalBlobs {
    blobs_dir: PathBuf,
    tmp_dir: PathBuf,
    min_free_bytes: u64,
    /// Set while a readiness write probe runs; see `begin_write_probe`.
    write_probe_running: Arc<AtomicBool>,
    // Held for the life of the process: marks tmp_dir as in use.
    _tmp_lock: File,
}

/// A readiness write probe under way; dropping it lets the next one start.
pub struct WriteProbe(Arc<AtomicBool>);

impl Drop for WriteProbe {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl LocalBlobs {
    /// Create `blobs/` and `tmp/`, claim a tmp subdirectory for this process and sweep
    /// leftovers of processes that are gone.
    pub fn open(data_dir: &Path, min_free_bytes: u64) -> anyhow::Result<Self> {
        let blobs_dir = data_dir.join("blobs");
        let tmp_root = data_dir.join("tmp");
        for dir in [&blobs_dir, &tmp_root] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let swept = sweep_abandoned(&tmp_root)?;
        if swept > 0 {
            tracing::info!(swept, "removed unfinished uploads left by a previous run");
        }
        let name = uuid::Uuid::new_v4().to_string();
        let tmp_dir = tmp_root.join(&name);
        std::fs::create_dir(&tmp_dir)
            .with_context(|| format!("cannot create {}", tmp_dir.display()))?;
        let lock_path = tmp_root.join(format!("{name}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("cannot lock {}: {e:?}", lock_path.display()))?;
        Ok(Self {
            blobs_dir,
            tmp_dir,
            min_free_bytes,
            write_probe_running: Arc::default(),
            _tmp_lock: lock,
        })
    }

    pub fn path(&self, item_id: &uuid::Uuid) -> PathBuf {
        self.blobs_dir.join(item_id.to_string())
    }

    pub fn blobs_dir(&self) -> &Path {
        &self.blobs_dir
    }

    /// Bytes available to unprivileged writers in the data directory.
    pub fn free_bytes(&self) -> io::Result<u64> {
        let st = rustix::fs::statvfs(&self.blobs_dir).map_err(io::Error::from)?;
        Ok(st.f_bavail.saturating_mul(st.f_frsize))
    }

    /// Free bytes above the reserve: what uploads may still fill.
    pub fn headroom(&self) -> io::Result<u64> {
        Ok(self.free_bytes()?.saturating_sub(self.min_free_bytes))
    }

    /// Whether `incoming` more bytes fit above the reserve.
    pub fn has_room_for(&self, incoming: u64) -> io::Result<bool> {
        Ok(self.free_bytes()?.saturating_sub(incoming) >= self.min_free_bytes)
    }

    /// On a clean stop, remove this process's (empty) tmp directory and its lock
    /// file; after a crash the next start sweeps them instead.
    pub fn release_tmp(&self) {
        let _ = std::fs::remove_dir_all(&self.tmp_dir);
        let _ = std::fs::remove_file(self.tmp_dir.with_extension("lock"));
    }

    /// Claim the readiness write probe, or `None` while an earlier one has not
    /// returned (a hung filesystem): waiting probes would each hold a thread.
    pub fn begin_write_probe(&self) -> Option<WriteProbe> {
        let running = &self.write_probe_running;
        (!running.swap(true, Ordering::AcqRel)).then(|| WriteProbe(running.clone()))
    }

    /// Write probe for readiness: the data directory accepts a file.
    pub fn check_writable(&self) -> io::Result<()> {
        let probe = self.tmp_dir.join(".ready-probe");
        std::fs::write(&probe, b"ok")?;
        std::fs::remove_file(&probe)
    }

    /// Leftovers of processes that are gone (their tmp directories): at start, and
    /// on every sweep, since a replica sharing the directory may have died since.
    pub fn sweep_abandoned(&self) -> anyhow::Result<usize> {
        match self.tmp_dir.parent() {
            Some(root) => sweep_abandoned(root),
            None => Ok(0),
        }
    }

    /// Every blob's id, with when it was last written.
    pub fn list(&self) -> io::Result<Vec<(uuid::Uuid, std::time::SystemTime)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.blobs_dir)? {
            let entry = entry?;
            let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            out.push((id, entry.metadata()?.modified()?));
        }
        Ok(out)
    }

    /// The blob's length, `None` when it does not exist.
    pub async fn len(&self, id: &uuid::Uuid) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.path(id)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Make the finished file at `from` (on the same filesystem: the data
    /// directory) blob `id`, hashing it first. The file is moved, durably.
    pub async fn adopt(&self, id: &uuid::Uuid, from: &Path) -> Result<Stored, UploadError> {
        let (size, sha256) = hash_file(from.to_path_buf()).await?;
        move_durably(from, &self.path(id)).await?;
        Ok(Stored {
            id: *id,
            size,
            sha256,
        })
    }

    /// Move blob `id` back to `to` (where `adopt` took it from); false when there
    /// is no such blob.
    pub async fn take_back(&self, id: &uuid::Uuid, to: &Path) -> io::Result<bool> {
        let blob = self.path(id);
        if !tokio::fs::try_exists(&blob).await? {
            return Ok(false);
        }
        move_durably(&blob, to).await?;
        Ok(true)
    }

    /// The blob of a file that was not recorded after all: moved back to where
    /// `adopt` took it from, or else removed. Synchronous, for `Drop`.
    pub fn discard(&self, id: &uuid::Uuid, return_to: Option<&Path>) {
        let blob = self.path(id);
        let returned = return_to.is_some_and(|to| std::fs::rename(&blob, to).is_ok());
        if !returned {
            let _ = std::fs::remove_file(blob);
        }
    }

    /// Start receiving a file of at most `limit` bytes; `announced` is its length
    /// when the request states it (a raw body with Content-Length).
    pub async fn start_upload(&self, limit: u64, announced: Option<u64>) -> io::Result<Upload<'_>> {
        let path = self.tmp_dir.join(format!("{}.part", uuid::Uuid::new_v4()));
        let file = tokio::fs::File::create(&path).await?;
        Ok(Upload {
            blobs: self,
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            path: Some(path),
            hasher: Sha256::new(),
            size: 0,
            limit,
            announced,
            room_until: 0,
        })
    }

    /// `count` bytes of a stored blob from `start`, as a stream. Every download
    /// (one file, a share, a range) reads through here, so a store keeps one way
    /// of handing out bytes.
    pub async fn read(&self, id: &uuid::Uuid, start: u64, count: u64) -> io::Result<ByteStream> {
        let mut file = tokio::fs::File::open(self.path(id)).await?;
        if start > 0 {
            file.seek(io::SeekFrom::Start(start)).await?;
        }
        // Each read is a trip to tokio's blocking pool: large reads keep those trips
        // (and the wakeups around them) rare, at a cost of about twice this much
        // memory per download in flight.
        let stream = ReaderStream::with_capacity(file.take(count), READ_CHUNK);
        Ok(Box::pin(stream))
    }

    /// Remove a blob after its item row is gone. Missing files are fine.
    pub async fn remove(&self, item_id: &uuid::Uuid) -> io::Result<()> {
        match tokio::fs::remove_file(self.path(item_id)).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

impl Drop for LocalBlobs {
    /// A command that opened the store (backup, restore) leaves no tmp directory.
    fn drop(&mut self) {
        self.release_tmp();
    }
}

/// A file being received. Dropped without `commit`, it deletes its temp file.
pub struct Upload<'a> {
    blobs: &'a LocalBlobs,
    file: BufWriter<tokio::fs::File>,
    path: Option<PathBuf>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    announced: Option<u64>,
    /// The size it may reach before the free space is checked again.
    room_until: u64,
}

impl Upload<'_> {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        let before = self.size;
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge { limit: self.limit });
        }
        if self.size > self.room_until {
            let on_disk = before - self.file.buffer().len() as u64;
            let room = Room {
                on_disk,
                pending: self.size - on_disk,
                headroom: self.blobs.headroom()?,
                most: self.announced.unwrap_or(self.limit),
                announced: self.announced.is_some(),
            };
            self.room_until = room.until().ok_or(UploadError::NoSpace)?;
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await?;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flush to stable storage and move into `blobs/<item_id>`. The caller records
    /// the item afterwards; if that fails it must `Blobs::remove` the blob.
    pub async fn commit(mut self, item_id: &uuid::Uuid) -> Result<Stored, UploadError> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        let Some(from) = self.path.take() else {
            return Err(UploadError::Io(io::Error::other(
                "upload already committed",
            )));
        };
        let to = self.blobs.path(item_id);
        if let Err(e) = tokio::fs::rename(&from, &to).await {
            let _ = std::fs::remove_file(&from);
            return Err(e.into());
        }
        // The rename is durable only once the directory entry is synced.
        let dir = self.blobs.blobs_dir.clone();
        tokio::task::spawn_blocking(move || File::open(dir)?.sync_all())
            .await
            .map_err(|e| io::Error::other(e.to_string()))??;
        let sha256 = hex(&std::mem::take(&mut self.hasher).finalize());
        Ok(Stored {
            id: *item_id,
            size: self.size,
            sha256,
        })
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// What a space check knows about one upload. Counted in what the upload can still
/// bring, so a small file fits until the reserve itself is reached, whatever room
/// a large one would want.
struct Room {
    /// Its bytes already handed to the filesystem.
    on_disk: u64,
    /// Its bytes still to be written: the buffer and the chunk in hand.
    pending: u64,
    /// Free bytes above the reserve.
    headroom: u64,
    /// The most it can bring in all: its announced length, or the upload limit.
    most: u64,
    announced: bool,
}

impl Room {
    /// The size the upload may reach before the next check, at least its size with
    /// the chunk in hand; `None` when it must stop: its announced rest, or the bytes
    /// in hand of a body of unknown length, do not fit above the reserve.
    fn until(&self) -> Option<u64> {
        let rest = self.most.saturating_sub(self.on_disk).max(self.pending);
        let window = SPACE_CHECK_EVERY.max(self.pending);
        if rest <= self.headroom {
            return Some(self.on_disk + rest.min(window));
        }
        if self.announced || self.pending > self.headroom {
            return None;
        }
        // A body of unknown length may well be small: it writes on while it fits.
        Some(self.on_disk + self.headroom.min(window))
    }
}

/// Remove tmp subdirectories (and their lock files) whose owning process is gone.
pub(super) fn sweep_abandoned(tmp_root: &Path) -> anyhow::Result<usize> {
    let mut swept = 0;
    for entry in std::fs::read_dir(tmp_root)
        .with_context(|| format!("cannot read {}", tmp_root.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "lock") {
            continue;
        }
        let lock_path = path.with_extension("lock");
        let abandoned = match File::options().write(true).open(&lock_path) {
            // We got the lock: the owner is gone. It is released when `lock` drops.
            Ok(lock) => lock.try_lock().is_ok(),
            // No lock file: a stray file or a directory from an older layout.
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                return Err(e).with_context(|| format!("cannot open {}", lock_path.display()));
            }
        };
        if !abandoned {
            continue;
        }
        if path.is_dir() {
            swept += std::fs::read_dir(&path)?.count();
            std::fs::remove_dir_all(&path)?;
        } else {
            swept += 1;
            std::fs::remove_file(&path)?;
        }
        let _ = std::fs::remove_file(&lock_path);
    }
    Ok(swept)
}

#[cfg(test)]
#[path = "local_tests.rs"]
mod tests;

/// The size and SHA-256 of a file, read on the blocking pool.
async fn hash_file(path: PathBuf) -> io::Result<(u64, String)> {
    tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let mut file = File::open(path)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; WRITE_BUFFER];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            size += n as u64;
            hasher.update(&buf[..n]);
        }
        Ok((size, hex(&hasher.finalize())))
    })
    .await
    .map_err(io::Error::other)?
}

/// Rename, then sync both directories so the move survives a crash.
pub(super) async fn move_durably(from: &Path, to: &Path) -> io::Result<()> {
    tokio::fs::rename(from, to).await?;
    let dirs: Vec<PathBuf> = [from, to]
        .iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .collect();
    tokio::task::spawn_blocking(move || {
        for dir in dirs {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })
    .await
    .map_err(io::Error::other)?
}
