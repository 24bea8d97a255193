//! The bytes of resumable uploads, in `FERRY_DATA_DIR/uploads/<id>/data`.
//!
//! Not in `tmp/<process>/`: that directory belongs to one process and is swept
//! when the process is gone, while a resumable upload outlives the process (and
//! the replica) that began it. `uploads/` is shared by every replica and left
//! alone at start; the sweeper removes what has expired.
//!
//! One request at a time writes an upload: it holds an exclusive lock (flock) on
//! the upload's directory, which the kernel releases if the process dies. Bytes
//! are appended and fsynced before the database records the new offset, so the
//! file is never shorter than the recorded offset; a longer file (a crash between
//! the fsync and the record) is cut back to the offset by the next writer.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncSeekExt, AsyncWriteExt, BufWriter};

const DATA: &str = "data";
/// Appends reach the file in pieces of this size (see `blobs::WRITE_BUFFER`).
const WRITE_BUFFER: usize = 1024 * 1024;

#[derive(Clone, Debug)]
pub struct Partials {
    root: PathBuf,
}

impl Partials {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            root: data_dir.join("uploads"),
        }
    }

    fn dir(&self, id: &uuid::Uuid) -> PathBuf {
        self.root.join(id.to_string())
    }

    /// Create the upload's directory and its empty data file, durably.
    pub async fn create(&self, id: &uuid::Uuid) -> io::Result<()> {
        let dir = self.dir(id);
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            File::create(dir.join(DATA))?.sync_all()?;
            File::open(&dir)?.sync_all()?;
            File::open(&root)?.sync_all()
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Take the upload's write lock; `None` while another request holds it. A
    /// missing directory (a crash right after the row was written) is created.
    pub async fn lock(&self, id: &uuid::Uuid) -> io::Result<Option<Partial>> {
        let dir = self.dir(id);
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let lock = File::open(&dir)?;
            match lock.try_lock() {
                Ok(()) => Ok(Some(Partial { dir, _lock: lock })),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            }
        })
        .await
        .map_err(io::Error::other)?
    }

    /// The ids of every upload directory, for finding ones whose row is gone.
    pub fn ids(&self) -> io::Result<Vec<uuid::Uuid>> {
        match std::fs::read_dir(&self.root) {
            Ok(entries) => Ok(entries
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

/// A locked upload directory. Dropping it releases the lock.
pub struct Partial {
    dir: PathBuf,
    _lock: File,
}

impl Partial {
    pub fn data_path(&self) -> PathBuf {
        self.dir.join(DATA)
    }

    /// The data file's length, `None` when it does not exist.
    pub async fn len(&self) -> io::Result<Option<u64>> {
        match tokio::fs::metadata(self.data_path()).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Create an empty data file (recovering an upload that had none yet).
    pub async fn create_data(&self) -> io::Result<()> {
        let path = self.data_path();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            File::create(path)?.sync_all()?;
            File::open(dir)?.sync_all()
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Open the data file to append at `offset`, cutting off whatever lies beyond
    /// it (bytes that were written but never acknowledged). The caller has checked
    /// that the file holds at least `offset` bytes.
    pub async fn append_at(&self, offset: u64) -> io::Result<Appender> {
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .open(self.data_path())
            .await?;
        file.set_len(offset).await?;
        file.seek(io::SeekFrom::Start(offset)).await?;
        Ok(Appender {
            file: BufWriter::with_capacity(WRITE_BUFFER, file),
            start: offset,
            written: 0,
        })
    }

    /// Remove the data file once its bytes are in the blob store (a store that
    /// copies it leaves it here). A file already moved away is fine.
    pub async fn remove_data(&self) -> io::Result<()> {
        match tokio::fs::remove_file(self.data_path()).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Remove the directory and everything in it; the lock goes with the drop.
    pub async fn remove(self) -> io::Result<()> {
        match tokio::fs::remove_dir_all(&self.dir).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Bytes being appended to an upload by one request.
pub struct Appender {
    file: BufWriter<tokio::fs::File>,
    start: u64,
    written: u64,
}

impl Appender {
    pub async fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.file.write_all(chunk).await?;
        self.written += chunk.len() as u64;
        Ok(())
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flush and fsync; returns the file's length, which may now be acknowledged.
    pub async fn sync(mut self) -> io::Result<u64> {
        self.file.flush().await?;
        self.file.get_ref().sync_all().await?;
        Ok(self.start + self.written)
    }

    /// Drop what this request wrote (a checksum mismatch, a chunk past the end).
    pub async fn discard(mut self) -> io::Result<()> {
        // Whatever is still buffered is thrown away with the writer.
        let file = self.file.get_mut();
        file.set_len(self.start).await?;
        file.sync_all().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_writer_at_a_time_and_unacknowledged_bytes_are_cut() {
        let dir = tempfile::tempdir().expect("tempdir");
        let partials = Partials::new(dir.path());
        let id = uuid::Uuid::now_v7();
        partials.create(&id).await.expect("create");
        let held = partials.lock(&id).await.expect("lock").expect("free");
        assert!(partials.lock(&id).await.expect("lock").is_none());
        let mut appender = held.append_at(0).await.expect("open");
        appender.write(b"hello world").await.expect("write");
        assert_eq!(appender.sync().await.expect("sync"), 11);
        // Acknowledged up to 5: the rest is cut off by the next writer.
        let mut appender = held.append_at(5).await.expect("reopen");
        appender.write(b", you").await.expect("write");
        assert_eq!(appender.sync().await.expect("sync"), 10);
        assert_eq!(
            std::fs::read(held.data_path()).expect("read"),
            b"hello, you"
        );
        let appender = held.append_at(10).await.expect("reopen");
        appender.discard().await.expect("discard");
        assert_eq!(held.len().await.expect("len"), Some(10));
        drop(held);
        assert_eq!(partials.ids().expect("ids"), vec![id]);
        let again = partials.lock(&id).await.expect("lock").expect("released");
        again.remove().await.expect("remove");
        assert!(partials.ids().expect("ids").is_empty());
    }
}
