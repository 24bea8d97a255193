//! `ferry backup`: one archive (see `archive`) of the database and the uploads.
//!
//! The tables are read in one snapshot transaction (see `store::dump`), so the
//! archive holds one consistent state while the server keeps writing. Blobs are
//! immutable once written, so copying the blobs of exactly the file items in that
//! snapshot afterwards gives the same bytes, except for an item deleted in the
//! meantime: its blob is skipped with a warning (and restore drops the item), but
//! only when the live database confirms the item is gone.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;

use super::archive::{
    ArchiveWriter, BlobEntry, FORMAT, FileItem, HashingReader, Manifest, TableEntry, file_item,
    write_file_atomically,
};
use super::progress::{Progress, bytes_of, rows, summary};
use super::sqlite_path;
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::domain::ByteSize;
use crate::store::dump::{DataTx, Table, TableSum, row_line};
use crate::store::{Store, now_ms, rfc3339};

/// Open the configured database as it is, without migrating it.
pub(super) async fn open_existing(settings: &Settings) -> anyhow::Result<Store> {
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
        created_at,
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

    // 2. The archive, written on a blocking thread (tar and file I/O are synchronous).
    let job = ArchiveJob {
        tables: staged
            .into_iter()
            .map(|(t, f, sum)| (t.name, f, sum.bytes))
            .collect(),
        files,
        blobs: Blobs::open(settings).await?,
        store: store.clone(),
        runtime: tokio::runtime::Handle::current(),
    };
    let output = output.to_path_buf();
    let manifest = tokio::task::block_in_place(|| {
        let result = if to_stdout {
            let stdout = BufWriter::with_capacity(1 << 16, io::stdout().lock());
            write_archive(job, &mut manifest, stdout, progress).map(|_| ())
        } else {
            write_file_atomically(&output, |out| {
                write_archive(job, &mut manifest, out, progress)
            })
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

/// Tables whose rows an archive leaves out (their table is still listed, empty):
/// unfinished resumable uploads, whose bytes are not in the archive, so a restored
/// row could not continue. Their clients start those uploads again.
const ROWS_NOT_BACKED_UP: &[&str] = &["uploads"];

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
    if ROWS_NOT_BACKED_UP.contains(&table.name.as_str()) {
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        return Ok((file, sum));
    }
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

/// What goes into the archive after the snapshot: the staged tables (name, file,
/// size) and the blobs of the snapshot's file items.
struct ArchiveJob {
    tables: Vec<(String, File, u64)>,
    files: Vec<FileItem>,
    /// The file store (the data directory or the object store), read through
    /// `Blobs::read` like any download.
    blobs: Blobs,
    /// To ask whether the item of a missing blob still exists.
    store: Store,
    runtime: tokio::runtime::Handle,
}

/// Write the archive of `manifest`, adding the blobs copied and the items skipped.
fn write_archive<W: Write>(
    job: ArchiveJob,
    manifest: &mut Manifest,
    out: W,
    progress: &Progress,
) -> anyhow::Result<W> {
    let mut archive = ArchiveWriter::new(out, &manifest.header())?;
    for (name, file, bytes) in job.tables {
        archive.table(&name, file, bytes)?;
    }

    let total_bytes: u64 = job.files.iter().map(|f| f.size).sum();
    let total_files = job.files.len();
    let mut done_bytes = 0;
    for (n, item) in job.files.iter().enumerate() {
        let len = match job.runtime.block_on(job.blobs.len(&item.id)) {
            Ok(Some(len)) => len,
            Ok(None) => {
                let id = item.id.to_string();
                let still_there = job.runtime.block_on(job.store.item_exists(&id))?;
                if still_there {
                    bail!(
                        "the file of item {id} is missing from the {} although the item exists; \
                         the file store is damaged (restore that file, or delete the item)",
                        job.blobs.describe()
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
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "cannot read the file of item {} from the {}",
                        item.id,
                        job.blobs.describe()
                    )
                });
            }
        };
        if len != item.size {
            bail!(
                "the file of item {} is {len} bytes but the database says {}; the file store is damaged",
                item.id,
                item.size
            );
        }
        let stream = job
            .runtime
            .block_on(job.blobs.read(&item.id, 0, len))
            .with_context(|| format!("cannot read the file of item {}", item.id))?;
        let file = tokio_util::io::SyncIoBridge::new_with_handle(
            tokio_util::io::StreamReader::new(stream),
            job.runtime.clone(),
        );
        let base = done_bytes;
        let mut reader = HashingReader::new(file, move |read| {
            progress.tick(|| {
                format!(
                    "backup: files {}/{total_files}, {}",
                    n + 1,
                    bytes_of(base + read, total_bytes)
                )
            })
        });
        archive.blob(&item.id, &mut reader, item.size)?;
        let sha256 = reader.sha256();
        if sha256 != item.sha256 {
            bail!(
                "the file of item {} does not match its recorded SHA-256 (has {sha256}, expected {}); \
                 the file store is damaged",
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
    archive.finish(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            tables: Vec::new(),
            files: vec![FileItem {
                id: uuid::Uuid::parse_str(id).expect("uuid"),
                size: 3,
                sha256: kept.sha256.clone(),
            }],
            blobs: Blobs::open_local(&settings.data_dir, 0).expect("blobs"),
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
}
