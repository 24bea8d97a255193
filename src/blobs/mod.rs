//! Uploaded files, behind the one façade the use cases call. Two stores sit behind
//! it, chosen by `FERRY_BLOB_STORE` at start: `local` (a directory, fsync and
//! rename; see `local`) and `s3` (an S3-compatible object store; see `s3`). Both
//! keep a file's bytes as one blob keyed by its uuid; nothing outside this module
//! knows which store is in use.
//!
//! The contract both keep: an upload is hashed as it streams, and its blob is
//! complete and durable once `commit` returns, never before, so the caller records
//! the item only then; an upload dropped before `commit` leaves nothing behind (or
//! only what the sweeper's `sweep_incomplete` removes after a crash).

mod local;
mod s3;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};
use tokio::time::{Instant, timeout_at};

use crate::config::{BlobStoreKind, Settings};
use local::LocalBlobs;
use s3::S3Blobs;

/// A blob's bytes on their way out.
pub type ByteStream = futures_util::stream::BoxStream<'static, io::Result<bytes::Bytes>>;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("upload larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("not enough free disk space")]
    NoSpace,
    #[error("the upload was interrupted: {0}")]
    Body(String),
    /// The file store refused or failed to take the bytes (an object store that is
    /// down, or answers errors): the client may try again later.
    #[error("the file store is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Io(io::Error),
}

impl From<io::Error> for UploadError {
    /// A full disk (or quota) is the client's 507 even when the reserve check did not
    /// see it coming: something else filled the disk between two checks.
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Self::NoSpace,
            _ => Self::Io(e),
        }
    }
}

/// A blob once complete: its id, length and SHA-256.
pub struct Stored {
    pub id: uuid::Uuid,
    pub size: u64,
    pub sha256: String,
}

/// The file store.
#[derive(Debug)]
pub struct Blobs(Store);

#[derive(Debug)]
enum Store {
    Local(Arc<LocalBlobs>),
    S3(Box<S3Blobs>),
}

/// A file being received. Dropped without `commit`, it leaves nothing behind.
pub struct Upload<'a>(Receiving<'a>);

enum Receiving<'a> {
    Local(local::Upload<'a>),
    S3(s3::Upload),
}

impl Blobs {
    /// The store `FERRY_BLOB_STORE` names. An object store is checked at once (a
    /// short write and delete): a wrong endpoint, bucket or key stops the start with
    /// one message rather than failing the first upload.
    pub async fn open(settings: &Settings) -> anyhow::Result<Self> {
        match settings.blob_store {
            BlobStoreKind::Local => Self::open_local(&settings.data_dir, settings.min_free_bytes),
            BlobStoreKind::S3 => Self::open_s3(settings).await,
        }
    }

    /// The data directory's `blobs/`, whatever `FERRY_BLOB_STORE` says.
    pub fn open_local(data_dir: &Path, min_free_bytes: u64) -> anyhow::Result<Self> {
        let local = LocalBlobs::open(data_dir, min_free_bytes)?;
        Ok(Self(Store::Local(Arc::new(local))))
    }

    /// The object store of the S3 settings (FERRY_S3_ENDPOINT…), whatever `FERRY_BLOB_STORE`
    /// says; checked as `open` checks it.
    pub async fn open_s3(settings: &Settings) -> anyhow::Result<Self> {
        let missing = settings.s3_missing();
        if !missing.is_empty() {
            anyhow::bail!("{}", missing.join("; "));
        }
        Ok(Self(Store::S3(Box::new(S3Blobs::connect(settings).await?))))
    }

    /// Which store: `local` or `s3`, as FERRY_BLOB_STORE names it.
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            Store::Local(_) => "local",
            Store::S3(_) => "s3",
        }
    }

    /// Where the files are, for logs and progress lines.
    pub fn describe(&self) -> String {
        match &self.0 {
            Store::Local(l) => format!("directory {}", l.blobs_dir().display()),
            Store::S3(s) => s.describe(),
        }
    }

    /// Whether `incoming` more bytes fit above the free-space reserve. Only the
    /// local directory has one; an object store's capacity is its operator's.
    pub fn has_room_for(&self, incoming: u64) -> io::Result<bool> {
        match &self.0 {
            Store::Local(l) => l.has_room_for(incoming),
            Store::S3(_) => Ok(true),
        }
    }

    /// On a clean stop, release what this process holds (its tmp directory).
    pub fn release_tmp(&self) {
        if let Store::Local(l) = &self.0 {
            l.release_tmp();
        }
    }

    /// Readiness: the store takes a write by `deadline` (`budget` from now, as the
    /// message says). The error says why not.
    pub async fn check_ready(&self, deadline: Instant, budget: &str) -> Result<(), String> {
        match &self.0 {
            Store::Local(local) => {
                // On the blocking pool. A directory that hangs (a stalled network
                // mount) keeps the probe's thread; the next probes see that and
                // report it instead of stranding one thread each.
                let Some(probe) = local.begin_write_probe() else {
                    return Err(
                        "data directory is not answering: an earlier write probe is still waiting"
                            .into(),
                    );
                };
                let local = local.clone();
                let task = tokio::task::spawn_blocking(move || {
                    let done = local.check_writable();
                    drop(probe);
                    done
                });
                match timeout_at(deadline, task).await {
                    Ok(Ok(Ok(()))) => Ok(()),
                    Ok(Ok(Err(e))) => Err(format!("data directory is not writable: {e}")),
                    Ok(Err(e)) => Err(format!("data directory check failed: {e}")),
                    Err(_) => Err(format!(
                        "data directory is not answering: a test write took over {budget}"
                    )),
                }
            }
            Store::S3(s3) => match timeout_at(deadline, s3.probe()).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(format!("object store is not writable: {}", s3.explain(&e))),
                Err(_) => Err(format!(
                    "object store is not answering: a test write took over {budget}"
                )),
            },
        }
    }

    /// Start receiving a file of at most `limit` bytes; `announced` is its length
    /// when the request states it (a raw body with Content-Length).
    pub async fn start_upload(
        &self,
        limit: u64,
        announced: Option<u64>,
    ) -> Result<Upload<'_>, UploadError> {
        Ok(Upload(match &self.0 {
            Store::Local(l) => Receiving::Local(l.start_upload(limit, announced).await?),
            Store::S3(s) => Receiving::S3(s.start_upload(uuid::Uuid::now_v7(), limit)),
        }))
    }

    /// Store a stream as blob `id` (a copy between stores), hashed on the way.
    pub async fn put_stream(
        &self,
        id: &uuid::Uuid,
        mut bytes: ByteStream,
    ) -> Result<Stored, UploadError> {
        use futures_util::TryStreamExt;
        let mut upload = match &self.0 {
            Store::Local(l) => Receiving::Local(l.start_upload(u64::MAX, None).await?),
            Store::S3(s) => Receiving::S3(s.start_upload(*id, u64::MAX)),
        };
        while let Some(chunk) = bytes.try_next().await? {
            match &mut upload {
                Receiving::Local(u) => u.write(&chunk).await?,
                Receiving::S3(u) => u.write(&chunk).await?,
            }
        }
        match upload {
            Receiving::Local(u) => u.commit(id).await,
            Receiving::S3(u) => u.commit().await,
        }
    }

    /// `count` bytes of a stored blob from `start`, as a stream. Every download
    /// (one file, a share, a range, a backup) reads through here, so a store keeps
    /// one way of handing out bytes. A missing blob is `NotFound`.
    pub async fn read(&self, id: &uuid::Uuid, start: u64, count: u64) -> io::Result<ByteStream> {
        match &self.0 {
            Store::Local(l) => l.read(id, start, count).await,
            Store::S3(s) => s.read(id, start, count).await,
        }
    }

    /// The blob's length, `None` when there is no such blob.
    pub async fn len(&self, id: &uuid::Uuid) -> io::Result<Option<u64>> {
        match &self.0 {
            Store::Local(l) => l.len(id).await,
            Store::S3(s) => s.len(id).await,
        }
    }

    /// Remove a blob after its item row is gone. A missing blob is fine.
    pub async fn remove(&self, id: &uuid::Uuid) -> io::Result<()> {
        match &self.0 {
            Store::Local(l) => l.remove(id).await,
            Store::S3(s) => s.remove(id).await,
        }
    }

    /// The blob of a file that was not recorded after all (dropped unrecorded):
    /// moved back to `return_to` if `adopt` moved it from there, else removed.
    /// Synchronous, for `Drop`; on an object store the removal runs in the
    /// background, and the sweeper takes what a crash leaves.
    pub fn discard(&self, id: &uuid::Uuid, return_to: Option<&Path>) {
        match &self.0 {
            Store::Local(l) => l.discard(id, return_to),
            Store::S3(s) => s.discard(id),
        }
    }

    /// Make the finished file at `path` (in the data directory: a completed
    /// resumable upload, a restored blob) blob `id`. The local store moves it; an
    /// object store copies it and leaves the file, which the caller removes once the
    /// item is recorded.
    pub async fn adopt(&self, id: &uuid::Uuid, path: &Path) -> Result<Stored, UploadError> {
        match &self.0 {
            Store::Local(l) => l.adopt(id, path).await,
            Store::S3(s) => s.adopt(id, path).await,
        }
    }

    /// Undo an `adopt` that moved its file: put blob `id` back at `to`. False when
    /// there is nothing to move back (no such blob, or a store that copies).
    pub async fn take_back(&self, id: &uuid::Uuid, to: &Path) -> io::Result<bool> {
        match &self.0 {
            Store::Local(l) => l.take_back(id, to).await,
            Store::S3(_) => Ok(false),
        }
    }

    /// Every blob's id with when it was written.
    pub async fn list(&self) -> io::Result<Vec<(uuid::Uuid, SystemTime)>> {
        match &self.0 {
            Store::Local(l) => {
                let l = l.clone();
                tokio::task::spawn_blocking(move || l.list())
                    .await
                    .map_err(io::Error::other)?
            }
            Store::S3(s) => s.list().await,
        }
    }

    /// Whether the store holds no blob (restore writes only into an empty one).
    pub async fn is_empty(&self) -> io::Result<bool> {
        match &self.0 {
            Store::Local(l) => Ok(std::fs::read_dir(l.blobs_dir())?.next().is_none()),
            Store::S3(s) => s.is_empty().await,
        }
    }

    /// Remove what unfinished uploads left behind: tmp directories of processes
    /// that are gone (local), multipart uploads started over `older_than` ago and
    /// never completed (S3). Returns how many went.
    pub async fn sweep_incomplete(&self, older_than: Duration) -> anyhow::Result<usize> {
        match &self.0 {
            Store::Local(l) => {
                let l = l.clone();
                tokio::task::spawn_blocking(move || l.sweep_abandoned()).await?
            }
            Store::S3(s) => s.sweep_incomplete(older_than).await,
        }
    }

    /// What follows FERRY_ACCEL_REDIRECT's prefix in an X-Accel-Redirect to blob
    /// `id`: its name (nginx's location maps to the blobs directory), or, on an
    /// object store, a presigned URL's path and query (nginx's location proxies to
    /// the store's endpoint), valid for a minute.
    pub async fn accel_target(&self, id: &uuid::Uuid) -> io::Result<String> {
        match &self.0 {
            Store::Local(_) => Ok(id.to_string()),
            Store::S3(s) => s.presigned_path(id).await,
        }
    }
}

impl Upload<'_> {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), UploadError> {
        match &mut self.0 {
            Receiving::Local(u) => u.write(chunk).await,
            Receiving::S3(u) => u.write(chunk).await,
        }
    }

    pub fn size(&self) -> u64 {
        match &self.0 {
            Receiving::Local(u) => u.size(),
            Receiving::S3(u) => u.size(),
        }
    }

    /// Make the blob complete and durable, under a new id. The caller records the
    /// item afterwards; if that fails it must `Blobs::discard` the blob.
    pub async fn commit(self) -> Result<Stored, UploadError> {
        match self.0 {
            Receiving::Local(u) => u.commit(&uuid::Uuid::now_v7()).await,
            Receiving::S3(u) => u.commit().await,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}
