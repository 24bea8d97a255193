//! `ferry backup` and `ferry restore`.
//!
//! A backup is one tar archive, the same for both backends:
//!
//! ```text
//! ferry-backup.json      format, Ferry version, schema version (read first by restore)
//! tables/<table>.jsonl   every row of every table, one canonical JSON object a line
//! blobs/<item-id>        the bytes of every file item in the snapshot
//! manifest.json          counts and SHA-256 of every table file and every blob
//! ```
//!
//! The tables are read in one snapshot transaction (see `store::dump`), so the
//! archive holds one consistent state while the server keeps writing. Blobs are
//! immutable once written, so copying the blobs of exactly the file items in that
//! snapshot afterwards gives the same bytes, except for an item deleted in the
//! meantime: its blob is skipped with a warning (and restore drops the item), but
//! only when the live database confirms the item is gone.
//!
//! Restore reads the archive once into a staging directory under the data
//! directory's `tmp/`, verifies every checksum, and only then loads the rows in
//! one transaction and moves the blobs into place.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncBufReadExt;

use crate::config::Settings;
use crate::domain::ByteSize;
use crate::store::dump::{Column, DataTx, Row, Table, TableSum, row_line};
use crate::store::{Store, now_ms, rfc3339};

/// Version of the archive layout; restore refuses layouts it does not know.
pub const FORMAT: u32 = 1;
const HEADER_ENTRY: &str = "ferry-backup.json";
const MANIFEST_ENTRY: &str = "manifest.json";
/// Rows per insert batch when loading.
const LOAD_BATCH: usize = 500;

/// The first entry of an archive: enough to refuse it before reading the rest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub ferry_version: String,
    pub schema_version: i64,
    pub backend: String,
    pub created_at: String,
}

/// The last entry of an archive: what it holds and how to check it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub ferry_version: String,
    pub ferry_revision: String,
    pub schema_version: i64,
    /// The backend the snapshot was taken from: sqlite or postgres.
    pub backend: String,
    pub created_at: String,
    /// users, items, notes, files, blob_bytes.
    pub counts: BTreeMap<String, u64>,
    pub tables: BTreeMap<String, TableEntry>,
    /// How far id counters had gone (see `DataTx::sequences`).
    pub sequences: BTreeMap<String, i64>,
    pub blobs: BTreeMap<String, BlobEntry>,
    /// File items deleted while the backup ran, whose blobs were gone: restore
    /// leaves them out.
    pub skipped_items: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableEntry {
    pub rows: u64,
    pub bytes: u64,
    pub sha256: String,
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub size: u64,
    pub sha256: String,
}

// ---- progress --------------------------------------------------------------------

/// Progress on stderr: an updating line on a terminal, a line every few seconds
/// otherwise (logs of a scheduled job), nothing at all when quiet.
pub struct Progress {
    enabled: bool,
    tty: bool,
    state: Mutex<ProgressState>,
}

struct ProgressState {
    last: Option<Instant>,
    open_line: bool,
}

impl Progress {
    pub fn stderr() -> Self {
        Self {
            enabled: true,
            tty: io::stderr().is_terminal(),
            // The first update comes one interval in: short runs print only
            // their summary lines.
            state: Mutex::new(ProgressState {
                last: Some(Instant::now()),
                open_line: false,
            }),
        }
    }

    pub fn quiet() -> Self {
        Self {
            enabled: false,
            ..Self::stderr()
        }
    }

    /// A line now.
    pub fn say(&self, message: impl fmt::Display) {
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut err = io::stderr().lock();
        if state.open_line {
            let _ = writeln!(err);
            state.open_line = false;
        }
        let _ = writeln!(err, "{message}");
        state.last = Some(Instant::now());
    }

    /// A progress update, shown only if the last one is old enough.
    pub fn tick(&self, message: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let every = if self.tty {
            Duration::from_millis(250)
        } else {
            Duration::from_secs(5)
        };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        state.last = Some(Instant::now());
        let mut err = io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{}", message());
            let _ = err.flush();
            state.open_line = true;
        } else {
            let _ = writeln!(err, "{}", message());
        }
    }
}

/// "1 row", "2 rows".
pub fn rows(n: u64) -> String {
    plural(n, "row")
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// "3 users, 1870 items (1340 files, 7.8 GiB)": what an archive holds, items left
/// out during the backup not counted.
fn summary(manifest: &Manifest) -> String {
    let count = |name: &str| manifest.counts.get(name).copied().unwrap_or(0);
    format!(
        "{}, {} ({}, {})",
        plural(count("users"), "user"),
        plural(
            count("items").saturating_sub(manifest.skipped_items.len() as u64),
            "item"
        ),
        plural(manifest.blobs.len() as u64, "file"),
        ByteSize(manifest.blobs.values().map(|b| b.size).sum())
    )
}

fn percent(done: u64, total: u64) -> u64 {
    done.saturating_mul(100).checked_div(total).unwrap_or(100)
}

// ---- backup ----------------------------------------------------------------------

/// A file item of the snapshot, whose blob goes into the archive.
struct FileItem {
    id: uuid::Uuid,
    size: u64,
    sha256: String,
}

/// Open the configured database as it is, without migrating it.
async fn open_existing(settings: &Settings) -> anyhow::Result<Store> {
    if let Some(path) = sqlite_path(settings.database_url.expose())
        && !path.exists()
    {
        bail!(
            "no SQLite database at {} (check FERRY_DATA_DIR and FERRY_DATABASE_URL)",
            path.display()
        );
    }
    Store::connect(settings).await
}

/// The file of a sqlite: URL, None for other URLs.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") {
        return None;
    }
    sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_path_buf())
}

/// Write a backup of the configured database and data directory to `output`
/// (`-` for stdout). Returns the manifest written.
pub async fn backup(
    settings: &Settings,
    output: &Path,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    let store = open_existing(settings).await?;
    let result = backup_store(settings, &store, output, progress).await;
    store.close().await;
    result
}

async fn backup_store(
    settings: &Settings,
    store: &Store,
    output: &Path,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    let to_stdout = output.as_os_str() == "-";
    let staging_dir = if to_stdout {
        settings.data_dir.join("tmp")
    } else {
        match output.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        }
    };
    std::fs::create_dir_all(&staging_dir)
        .with_context(|| format!("cannot create {}", staging_dir.display()))?;

    // 1. Every table from one snapshot, into anonymous staging files.
    let started = Instant::now();
    let mut snapshot = store.snapshot().await?;
    let schema_version = snapshot.schema_version().await?;
    if schema_version == 0 {
        bail!("the database has no Ferry schema yet; there is nothing to back up");
    }
    let tables = snapshot.tables().await?;
    let sequences = snapshot.sequences(&tables).await?;
    let created_at = rfc3339(now_ms());
    progress.say(format!(
        "backup: snapshot of {} (schema version {schema_version}) taken",
        store.backend()
    ));
    let mut staged = Vec::new();
    let mut files = Vec::new();
    let mut counts = BTreeMap::new();
    for table in &tables {
        let file = tempfile::tempfile_in(&staging_dir).with_context(|| {
            format!("cannot create a staging file in {}", staging_dir.display())
        })?;
        let (file, sum) = dump_table(&mut snapshot, table, file, &mut files, progress).await?;
        progress.say(format!("backup: table {} ({})", table.name, rows(sum.rows)));
        staged.push((table.clone(), file, sum));
    }
    // The snapshot only read; ending it lets SQLite checkpoint its WAL again.
    snapshot.rollback().await?;
    for (table, _, sum) in &staged {
        counts.insert(table.name.clone(), sum.rows);
    }
    let notes = counts.get("items").copied().unwrap_or(0) - files.len() as u64;
    counts.insert("notes".into(), notes);
    counts.insert("files".into(), files.len() as u64);
    counts.insert(
        "blob_bytes".into(),
        files.iter().map(|f| f.size).sum::<u64>(),
    );

    let mut manifest = Manifest {
        format: FORMAT,
        ferry_version: crate::VERSION.to_string(),
        ferry_revision: crate::GIT_REVISION.to_string(),
        schema_version,
        backend: store.backend().to_string(),
        created_at: created_at.clone(),
        counts,
        tables: staged
            .iter()
            .map(|(t, _, sum)| {
                (
                    t.name.clone(),
                    TableEntry {
                        rows: sum.rows,
                        bytes: sum.bytes,
                        sha256: sum.sha256(),
                        columns: t.columns.clone(),
                    },
                )
            })
            .collect(),
        sequences,
        blobs: BTreeMap::new(),
        skipped_items: Vec::new(),
    };
    let header = Header {
        format: FORMAT,
        ferry_version: manifest.ferry_version.clone(),
        schema_version,
        backend: manifest.backend.clone(),
        created_at,
    };

    // 2. The archive, written on a blocking thread (tar and file I/O are synchronous).
    let job = ArchiveJob {
        header,
        tables: staged
            .into_iter()
            .map(|(t, f, sum)| (t.name, f, sum.bytes))
            .collect(),
        files,
        blobs_dir: settings.data_dir.join("blobs"),
        store: store.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let output = output.to_path_buf();
    let manifest = tokio::task::block_in_place(|| {
        let result = if to_stdout {
            let stdout = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            write_archive(job, &mut manifest, stdout, progress).map(|_| ())
        } else {
            write_archive_file(job, &mut manifest, &output, progress)
        };
        result.map(|()| manifest)
    })?;
    progress.say(format!(
        "backup: done in {:.1}s: {}, schema version {}{}",
        started.elapsed().as_secs_f64(),
        summary(&manifest),
        manifest.schema_version,
        if to_stdout {
            String::new()
        } else {
            format!(", written to {}", output.display())
        }
    ));
    Ok(manifest)
}

/// Write one table's rows as canonical lines; remember the file items.
async fn dump_table(
    snapshot: &mut DataTx,
    table: &Table,
    file: File,
    files: &mut Vec<FileItem>,
    progress: &Progress,
) -> anyhow::Result<(File, TableSum)> {
    let mut sum = TableSum::default();
    let mut out = BufWriter::new(file);
    let mut rows = snapshot.rows(table);
    while let Some(row) = rows.try_next().await? {
        let line = row_line(&row)?;
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        sum.add(&line);
        if table.name == "items"
            && let Some(item) = file_item(&row)?
        {
            files.push(item);
        }
        progress.tick(|| format!("backup: table {}: {} rows", table.name, sum.rows));
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok((file, sum))
}

/// The blob facts of an `items` row, None for notes.
fn file_item(row: &Row) -> anyhow::Result<Option<FileItem>> {
    if row.get("kind").and_then(|v| v.as_str()) != Some("file") {
        return Ok(None);
    }
    let id = row
        .get("id")
        .and_then(|v| v.as_str())
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .context("a file item without a valid id")?;
    let size = row
        .get("size")
        .and_then(|v| v.as_u64())
        .with_context(|| format!("item {id} has no valid size"))?;
    let sha256 = row
        .get("sha256")
        .and_then(|v| v.as_str())
        .with_context(|| format!("item {id} has no sha256"))?
        .to_string();
    Ok(Some(FileItem { id, size, sha256 }))
}

struct ArchiveJob {
    header: Header,
    tables: Vec<(String, File, u64)>,
    files: Vec<FileItem>,
    blobs_dir: PathBuf,
    store: Store,
    runtime: tokio::runtime::Handle,
}

/// Write to `<output>.partial`, fsync, then rename over `output`: a failed or
/// interrupted backup never leaves a file that looks complete.
fn write_archive_file(
    job: ArchiveJob,
    manifest: &mut Manifest,
    output: &Path,
    progress: &Progress,
) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut partial = output.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        // Archives hold password hashes: readable by their owner only.
        .mode(0o600)
        .open(&partial)
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let result = write_archive(job, manifest, BufWriter::new(file), progress).and_then(|out| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&partial, output)
            .with_context(|| format!("cannot rename to {}", output.display()))?;
        if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn write_archive<W: Write>(
    job: ArchiveJob,
    manifest: &mut Manifest,
    out: W,
    progress: &Progress,
) -> anyhow::Result<W> {
    let mtime = (now_ms() / 1000).max(0) as u64;
    let mut tar = tar::Builder::new(out);
    let header_json = serde_json::to_vec_pretty(&job.header)?;
    append(
        &mut tar,
        HEADER_ENTRY,
        header_json.len() as u64,
        mtime,
        &header_json[..],
    )?;
    for (name, file, bytes) in job.tables {
        append(
            &mut tar,
            &format!("tables/{name}.jsonl"),
            bytes,
            mtime,
            file,
        )?;
    }

    let total_bytes: u64 = job.files.iter().map(|f| f.size).sum();
    let total_files = job.files.len();
    let mut done_bytes = 0;
    for (n, item) in job.files.iter().enumerate() {
        let path = job.blobs_dir.join(item.id.to_string());
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let id = item.id.to_string();
                let still_there = job.runtime.block_on(job.store.item_exists(&id))?;
                if still_there {
                    bail!(
                        "the file of item {id} is missing from {} although the item exists; \
                         the data directory is damaged (restore that file, or delete the item)",
                        job.blobs_dir.display()
                    );
                }
                tracing::warn!(item = %id, "item deleted while the backup ran; left out");
                progress.say(format!(
                    "backup: warning: item {id} was deleted while the backup ran; left out"
                ));
                manifest.skipped_items.push(id);
                done_bytes += item.size;
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
        };
        let len = file.metadata()?.len();
        if len != item.size {
            bail!(
                "the file of item {} is {len} bytes but the database says {}; the data directory is damaged",
                item.id,
                item.size
            );
        }
        let mut reader = HashingReader::new(file);
        let base = done_bytes;
        reader.on_read = Some(Box::new(move |read| {
            progress.tick(|| {
                format!(
                    "backup: files {}/{total_files}, {} of {} ({}%)",
                    n + 1,
                    ByteSize(base + read),
                    ByteSize(total_bytes),
                    percent(base + read, total_bytes)
                )
            })
        }));
        append(
            &mut tar,
            &format!("blobs/{}", item.id),
            item.size,
            mtime,
            &mut reader,
        )?;
        let sha256 = reader.sha256();
        if sha256 != item.sha256 {
            bail!(
                "the file of item {} does not match its recorded SHA-256 (has {sha256}, expected {}); \
                 the data directory is damaged",
                item.id,
                item.sha256
            );
        }
        done_bytes += item.size;
        manifest.blobs.insert(
            item.id.to_string(),
            BlobEntry {
                size: item.size,
                sha256,
            },
        );
    }
    if total_files > 0 {
        progress.say(format!(
            "backup: files {}/{total_files}, {}",
            manifest.blobs.len(),
            ByteSize(done_bytes)
        ));
    }
    manifest.counts.insert(
        "blob_bytes".into(),
        manifest.blobs.values().map(|b| b.size).sum(),
    );
    let manifest_json = serde_json::to_vec_pretty(&manifest)?;
    append(
        &mut tar,
        MANIFEST_ENTRY,
        manifest_json.len() as u64,
        mtime,
        &manifest_json[..],
    )?;
    let mut out = tar.into_inner()?;
    out.flush()?;
    Ok(out)
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    mtime: u64,
    data: impl Read,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    // Exactly `size` bytes: a reader that grew or shrank must not shift the archive.
    let mut data = data.take(size);
    tar.append_data(&mut header, path, &mut data)
        .with_context(|| format!("cannot write {path} to the archive"))?;
    Ok(())
}

/// Hashes what passes through and reports the running byte count.
struct HashingReader<'a, R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    on_read: Option<Box<dyn FnMut(u64) + 'a>>,
}

impl<'a, R: Read> HashingReader<'a, R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            read: 0,
            on_read: None,
        }
    }

    fn sha256(&self) -> String {
        crate::blobs::hex(&self.hasher.clone().finalize())
    }
}

impl<R: Read> Read for HashingReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        if let Some(f) = self.on_read.as_mut() {
            f(self.read);
        }
        Ok(n)
    }
}

// ---- restore ---------------------------------------------------------------------

/// What the archive held, checked and staged on disk.
struct Staged {
    header: Header,
    manifest: Manifest,
    /// Table name to its staged JSON-lines file.
    tables: BTreeMap<String, PathBuf>,
    /// Blob id to its staged file.
    blobs: BTreeMap<String, PathBuf>,
}

/// A directory under `<data>/tmp/` claimed the way uploads claim theirs: a
/// locked `<name>.lock` beside it tells a starting server not to sweep it away.
struct StagingDir {
    path: PathBuf,
    lock_path: PathBuf,
    _lock: File,
}

impl StagingDir {
    fn create(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("tmp");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("cannot create {}", root.display()))?;
        let name = format!("restore-{}", uuid::Uuid::new_v4());
        let lock_path = root.join(format!("{name}.lock"));
        let lock = File::create(&lock_path)
            .with_context(|| format!("cannot create {}", lock_path.display()))?;
        lock.try_lock()
            .map_err(|e| anyhow::anyhow!("cannot lock {}: {e:?}", lock_path.display()))?;
        let path = root.join(name);
        for sub in ["tables", "blobs"] {
            std::fs::create_dir_all(path.join(sub))
                .with_context(|| format!("cannot create {}", path.display()))?;
        }
        Ok(Self {
            path,
            lock_path,
            _lock: lock,
        })
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

/// Restore an archive (`-` for stdin) into the configured database and data
/// directory, which must hold no users, items or files yet.
pub async fn restore(
    settings: &Settings,
    archive: &Path,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(&settings.data_dir).with_context(|| {
        format!(
            "cannot create data directory {}",
            settings.data_dir.display()
        )
    })?;
    let store = Store::connect(settings).await?;
    let result = restore_into(settings, &store, archive, progress).await;
    store.close().await;
    result
}

async fn restore_into(
    settings: &Settings,
    store: &Store,
    archive: &Path,
    progress: &Progress,
) -> anyhow::Result<Manifest> {
    let started = Instant::now();
    ensure_empty_target(store, &settings.data_dir).await?;
    let target_version = store.schema_version().await?;
    let latest = store.latest_schema_version();
    let staging = StagingDir::create(&settings.data_dir)?;

    // 1. Read and verify everything before touching the database.
    let archive = archive.to_path_buf();
    let staging_path = staging.path.clone();
    let staged = tokio::task::block_in_place(|| {
        read_archive(&archive, &staging_path, latest, target_version, progress)
    })?;
    if !store.knows_schema_version(staged.manifest.schema_version) {
        bail!(
            "the archive's schema version {} is not one this Ferry ({}) knows",
            staged.manifest.schema_version,
            crate::VERSION
        );
    }
    progress.say(format!(
        "restore: archive verified: {} tables, {} files, schema version {} from Ferry {} on {}",
        staged.tables.len(),
        staged.blobs.len(),
        staged.manifest.schema_version,
        staged.header.ferry_version,
        staged.manifest.backend
    ));

    // 2. The archive's schema, its rows in one transaction, the blobs, commit.
    store
        .migrate_until(Some(staged.manifest.schema_version))
        .await?;
    let mut tx = store.begin_load().await?;
    let moved = match load_staged(&mut tx, &staged, &settings.data_dir, progress).await {
        Ok(moved) => moved,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    if let Err(e) = tx.commit().await {
        for path in moved {
            let _ = std::fs::remove_file(path);
        }
        return Err(e.context("cannot commit the restored rows"));
    }

    // 3. Newer migrations, if the archive is older than this binary.
    if staged.manifest.schema_version < latest {
        progress.say(format!(
            "restore: migrating from schema version {} to {latest}",
            staged.manifest.schema_version
        ));
    }
    store.migrate().await?;
    drop(staging);
    progress.say(format!(
        "restore: done in {:.1}s: {}",
        started.elapsed().as_secs_f64(),
        summary(&staged.manifest)
    ));
    Ok(staged.manifest)
}

/// Restore and migrate-db write only into a database without users or items.
pub async fn ensure_empty_database(store: &Store) -> anyhow::Result<()> {
    if !store.holds_no_data().await? {
        bail!(
            "the target database already holds data ({} users, {} items); write only into an \
             empty database (a new PostgreSQL database, or a data directory without ferry.db)",
            store.count_users().await?,
            store.count_items().await?
        );
    }
    Ok(())
}

/// Restore writes only into a data directory without uploaded files.
async fn ensure_empty_target(store: &Store, data_dir: &Path) -> anyhow::Result<()> {
    ensure_empty_database(store).await?;
    let blobs = data_dir.join("blobs");
    if let Ok(mut entries) = std::fs::read_dir(&blobs)
        && entries.next().is_some()
    {
        bail!(
            "{} already holds files; restore only into an empty data directory",
            blobs.display()
        );
    }
    Ok(())
}

fn read_archive(
    archive: &Path,
    staging: &Path,
    latest: i64,
    target_version: i64,
    progress: &Progress,
) -> anyhow::Result<Staged> {
    let (input, total): (Box<dyn Read>, Option<u64>) = if archive.as_os_str() == "-" {
        (Box::new(io::stdin().lock()), None)
    } else {
        let file =
            File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
        let len = file.metadata()?.len();
        (Box::new(io::BufReader::new(file)), Some(len))
    };
    let mut tar = tar::Archive::new(input);
    let mut header: Option<Header> = None;
    let mut manifest: Option<Manifest> = None;
    let mut tables: BTreeMap<String, (PathBuf, String, u64)> = BTreeMap::new();
    let mut blobs: BTreeMap<String, (PathBuf, String, u64)> = BTreeMap::new();
    let mut read_bytes = 0u64;
    let report = |read: u64| {
        progress.tick(|| match total {
            Some(total) => format!(
                "restore: reading archive: {} of {} ({}%)",
                ByteSize(read),
                ByteSize(total),
                percent(read, total)
            ),
            None => format!("restore: reading archive: {}", ByteSize(read)),
        })
    };
    for entry in tar.entries().context("not a tar archive")? {
        let mut entry = entry.context("the archive is damaged or truncated")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let size = entry.size();
        if manifest.is_some() {
            bail!("unexpected entry {path} after {MANIFEST_ENTRY}");
        }
        if header.is_none() && path != HEADER_ENTRY {
            bail!("not a Ferry backup: the first entry is {path}, not {HEADER_ENTRY}");
        }
        if path == HEADER_ENTRY {
            if header.is_some() {
                bail!("the archive has two {HEADER_ENTRY} entries");
            }
            let h: Header = serde_json::from_reader(&mut entry)
                .with_context(|| format!("{HEADER_ENTRY} is not valid"))?;
            check_header(&h, latest, target_version)?;
            header = Some(h);
        } else if path == MANIFEST_ENTRY {
            manifest = Some(
                serde_json::from_reader(&mut entry)
                    .with_context(|| format!("{MANIFEST_ENTRY} is not valid"))?,
            );
        } else if let Some(name) = path
            .strip_prefix("tables/")
            .and_then(|p| p.strip_suffix(".jsonl"))
        {
            crate::store::dump::check_identifier(name)?;
            let dest = staging.join("tables").join(format!("{name}.jsonl"));
            let (sha, n) = copy_hashed(&mut entry, &dest, false, |n| report(read_bytes + n))?;
            if tables.insert(name.to_string(), (dest, sha, n)).is_some() {
                bail!("the archive has table {name} twice");
            }
        } else if let Some(id) = path.strip_prefix("blobs/") {
            let id = uuid::Uuid::parse_str(id)
                .with_context(|| format!("unexpected entry {path}"))?
                .to_string();
            let dest = staging.join("blobs").join(&id);
            let (sha, n) = copy_hashed(&mut entry, &dest, true, |n| report(read_bytes + n))?;
            if blobs.insert(id.clone(), (dest, sha, n)).is_some() {
                bail!("the archive has the file of item {id} twice");
            }
        } else {
            bail!("unexpected entry {path} in the archive");
        }
        read_bytes += size;
        report(read_bytes);
    }
    let header = header.context("not a Ferry backup (empty archive)")?;
    let manifest = manifest.with_context(|| {
        format!(
            "the archive has no {MANIFEST_ENTRY}: it is truncated (was the backup interrupted?)"
        )
    })?;
    verify(&header, &manifest, &tables, &blobs)?;
    Ok(Staged {
        header,
        manifest,
        tables: tables.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
        blobs: blobs.into_iter().map(|(k, (p, _, _))| (k, p)).collect(),
    })
}

fn check_header(h: &Header, latest: i64, target_version: i64) -> anyhow::Result<()> {
    if h.format != FORMAT {
        bail!(
            "this backup uses archive format {}; this Ferry ({}) reads format {FORMAT}",
            h.format,
            crate::VERSION
        );
    }
    if h.schema_version > latest {
        bail!(
            "this backup comes from a newer Ferry ({}, schema version {}); this Ferry ({}) knows \
             schema versions up to {latest}: restore it with Ferry {} or newer",
            h.ferry_version,
            h.schema_version,
            crate::VERSION,
            h.ferry_version
        );
    }
    if target_version > h.schema_version {
        bail!(
            "the target database is already at schema version {target_version}, newer than the \
             backup's {}: restore into a new, empty database (drop and create it again, or \
             remove ferry.db) and run restore before the first start",
            h.schema_version
        );
    }
    Ok(())
}

/// Copy an entry to `dest`, returning its SHA-256 and size.
fn copy_hashed(
    entry: &mut impl Read,
    dest: &Path,
    sync: bool,
    on_read: impl FnMut(u64),
) -> anyhow::Result<(String, u64)> {
    let file = File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    let mut out = BufWriter::new(file);
    let mut reader = HashingReader::new(entry);
    reader.on_read = Some(Box::new(on_read));
    let n = io::copy(&mut reader, &mut out)
        .with_context(|| format!("cannot stage {}", dest.display()))?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    if sync {
        file.sync_all()?;
    }
    Ok((reader.sha256(), n))
}

/// Every entry the manifest lists is there with its size and checksum, and there is
/// nothing else.
fn verify(
    header: &Header,
    manifest: &Manifest,
    tables: &BTreeMap<String, (PathBuf, String, u64)>,
    blobs: &BTreeMap<String, (PathBuf, String, u64)>,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if manifest.format != header.format || manifest.schema_version != header.schema_version {
        problems.push(format!(
            "{MANIFEST_ENTRY} and {HEADER_ENTRY} disagree about the format or schema version"
        ));
    }
    let check = |kind: &str,
                 listed: BTreeMap<&String, (u64, &String)>,
                 found: &BTreeMap<String, (PathBuf, String, u64)>,
                 problems: &mut Vec<String>| {
        for (name, (size, sha)) in &listed {
            match found.get(*name) {
                None => problems.push(format!("{kind} {name} is missing")),
                Some((_, got_sha, got_size)) => {
                    if got_size != size {
                        problems.push(format!(
                            "{kind} {name} is {got_size} bytes, the manifest says {size}"
                        ));
                    } else if got_sha != *sha {
                        problems.push(format!("{kind} {name} fails its SHA-256 check"));
                    }
                }
            }
        }
        for name in found.keys() {
            if !listed.contains_key(name) {
                problems.push(format!("{kind} {name} is not in the manifest"));
            }
        }
    };
    check(
        "table",
        manifest
            .tables
            .iter()
            .map(|(k, t)| (k, (t.bytes, &t.sha256)))
            .collect(),
        tables,
        &mut problems,
    );
    check(
        "the file of item",
        manifest
            .blobs
            .iter()
            .map(|(k, b)| (k, (b.size, &b.sha256)))
            .collect(),
        blobs,
        &mut problems,
    );
    if problems.is_empty() {
        return Ok(());
    }
    let shown = problems.len().min(20);
    bail!(
        "the archive fails verification ({} problems); nothing was restored:\n  {}{}",
        problems.len(),
        problems[..shown].join("\n  "),
        if problems.len() > shown {
            "\n  …"
        } else {
            ""
        }
    )
}

/// Load every staged table, check the loaded rows against the manifest, drop the
/// skipped items, set id counters and move the blobs into place. Returns the blob
/// paths created, for clean-up if the commit fails.
async fn load_staged(
    tx: &mut DataTx,
    staged: &Staged,
    data_dir: &Path,
    progress: &Progress,
) -> anyhow::Result<Vec<PathBuf>> {
    let manifest = &staged.manifest;
    let tables = tx.tables().await?;
    check_same_tables(&tables, &manifest.tables)?;
    tx.clear(&tables).await?;
    let skipped: BTreeSet<&String> = manifest.skipped_items.iter().collect();
    for table in &tables {
        let path = &staged.tables[&table.name];
        let file = tokio::fs::File::open(path).await?;
        let mut lines = tokio::io::BufReader::new(file).lines();
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let mut loaded = 0u64;
        while let Some(line) = lines.next_line().await? {
            let row: Row = serde_json::from_str(&line)
                .with_context(|| format!("a row of {} is not valid JSON", table.name))?;
            if table.name == "items"
                && let Some(item) = file_item(&row)?
            {
                let id = item.id.to_string();
                let blob = manifest.blobs.get(&id);
                if !skipped.contains(&id)
                    && blob.is_none_or(|b| b.size != item.size || b.sha256 != item.sha256)
                {
                    bail!("the archive has no matching file for item {id}");
                }
            }
            batch.push(row);
            if batch.len() == LOAD_BATCH {
                tx.insert(table, &batch).await?;
                loaded += batch.len() as u64;
                batch.clear();
                progress.tick(|| format!("restore: table {}: {loaded} rows", table.name));
            }
        }
        tx.insert(table, &batch).await?;
        loaded += batch.len() as u64;
        progress.say(format!("restore: table {} ({})", table.name, rows(loaded)));
    }
    // The rows as the database now returns them must be the rows that were saved.
    for table in &tables {
        let sum = tx.table_sum(table).await?;
        let entry = &manifest.tables[&table.name];
        if sum.rows != entry.rows || sum.sha256() != entry.sha256 {
            bail!(
                "table {} reads back differently after loading ({} rows, the backup has {}); nothing was restored",
                table.name,
                sum.rows,
                entry.rows
            );
        }
    }
    for id in &manifest.skipped_items {
        tx.delete_where("items", "id", id).await?;
    }
    tx.set_sequences(&tables, &manifest.sequences).await?;

    let blobs_dir = data_dir.join("blobs");
    std::fs::create_dir_all(&blobs_dir)
        .with_context(|| format!("cannot create {}", blobs_dir.display()))?;
    let mut moved = Vec::new();
    for (id, from) in &staged.blobs {
        let to = blobs_dir.join(id);
        if let Err(e) = std::fs::rename(from, &to) {
            for path in &moved {
                let _ = std::fs::remove_file(path);
            }
            return Err(e).with_context(|| format!("cannot move a file into {}", to.display()));
        }
        moved.push(to);
    }
    File::open(&blobs_dir)?.sync_all()?;
    Ok(moved)
}

fn check_same_tables(
    tables: &[Table],
    listed: &BTreeMap<String, TableEntry>,
) -> anyhow::Result<()> {
    let have: BTreeSet<&String> = tables.iter().map(|t| &t.name).collect();
    let want: BTreeSet<&String> = listed.keys().collect();
    if have != want {
        bail!("the archive's tables {want:?} do not match the database's {have:?}");
    }
    for table in tables {
        let mut a = table.columns.clone();
        let mut b = listed[&table.name].columns.clone();
        a.sort_by(|x, y| x.name.cmp(&y.name));
        b.sort_by(|x, y| x.name.cmp(&y.name));
        if a != b {
            bail!(
                "table {}: the archive's columns differ from the database's",
                table.name
            );
        }
    }
    Ok(())
}

/// Read only the manifest of an archive (used by tests and for inspection).
pub fn read_manifest(archive: &Path) -> anyhow::Result<Manifest> {
    let file = File::open(archive).with_context(|| format!("cannot open {}", archive.display()))?;
    let mut tar = tar::Archive::new(io::BufReader::new(file));
    for entry in tar.entries()? {
        let mut entry = entry?;
        if entry.path()?.as_os_str() == MANIFEST_ENTRY {
            return Ok(serde_json::from_reader(&mut entry)?);
        }
    }
    bail!("{} has no {MANIFEST_ENTRY}", archive.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_down_and_cap() {
        assert_eq!(percent(1, 0), 100);
        assert_eq!(percent(50, 200), 25);
    }

    /// The race a live backup can meet: an item of the snapshot deleted (row and
    /// blob) before its blob is copied is left out; a blob missing while its item
    /// still exists is damage and fails the backup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blobs_of_deleted_items_are_skipped_and_missing_ones_fail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = Settings::for_data_dir(dir.path().join("data"));
        std::fs::create_dir_all(settings.data_dir.join("blobs")).expect("dirs");
        let store = Store::connect(&settings).await.expect("connect");
        store.migrate().await.expect("migrate");
        let kept = crate::store::Item {
            id: uuid::Uuid::now_v7().to_string(),
            author_id: None,
            author_name: None,
            kind: crate::domain::ItemKind::File,
            name: Some("a.bin".into()),
            content_type: "application/octet-stream".into(),
            size: 3,
            sha256: crate::blobs::sha256_hex(b"abc"),
            note: None,
            created_at: now_ms(),
            expires_at: None,
        };
        store.insert_item(&kept, "{}").await.expect("insert");
        let header = Header {
            format: FORMAT,
            ferry_version: crate::VERSION.into(),
            schema_version: 1,
            backend: "sqlite".into(),
            created_at: String::new(),
        };
        let mut manifest = Manifest {
            format: FORMAT,
            ferry_version: crate::VERSION.into(),
            ferry_revision: String::new(),
            schema_version: 1,
            backend: "sqlite".into(),
            created_at: String::new(),
            counts: BTreeMap::new(),
            tables: BTreeMap::new(),
            sequences: BTreeMap::new(),
            blobs: BTreeMap::new(),
            skipped_items: Vec::new(),
        };
        let job = |id: &str| ArchiveJob {
            header: header.clone(),
            tables: Vec::new(),
            files: vec![FileItem {
                id: uuid::Uuid::parse_str(id).expect("uuid"),
                size: 3,
                sha256: kept.sha256.clone(),
            }],
            blobs_dir: settings.data_dir.join("blobs"),
            store: store.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let gone = uuid::Uuid::now_v7().to_string();
        tokio::task::block_in_place(|| {
            write_archive(job(&gone), &mut manifest, Vec::new(), &Progress::quiet())
        })
        .expect("a deleted item is skipped");
        assert_eq!(manifest.skipped_items, vec![gone]);
        assert!(manifest.blobs.is_empty());

        let err = tokio::task::block_in_place(|| {
            write_archive(job(&kept.id), &mut manifest, Vec::new(), &Progress::quiet())
        })
        .expect_err("a missing blob of a live item fails");
        assert!(
            err.to_string().contains("although the item exists"),
            "{err}"
        );

        std::fs::write(settings.data_dir.join("blobs").join(&kept.id), b"abd").expect("blob");
        let err = tokio::task::block_in_place(|| {
            write_archive(job(&kept.id), &mut manifest, Vec::new(), &Progress::quiet())
        })
        .expect_err("a damaged blob fails");
        assert!(err.to_string().contains("SHA-256"), "{err}");
        store.close().await;
    }

    #[test]
    fn newer_schemas_and_formats_are_refused() {
        let h = Header {
            format: FORMAT,
            ferry_version: "9.9.9".into(),
            schema_version: 7,
            backend: "sqlite".into(),
            created_at: String::new(),
        };
        let err = check_header(&h, 3, 0)
            .expect_err("newer schema")
            .to_string();
        assert!(
            err.contains("newer Ferry (9.9.9, schema version 7)"),
            "{err}"
        );
        assert!(check_header(&h, 7, 0).is_ok());
        assert!(check_header(&h, 8, 8).is_err(), "target already newer");
        let h = Header { format: 2, ..h };
        assert!(check_header(&h, 9, 0).is_err());
    }
}
