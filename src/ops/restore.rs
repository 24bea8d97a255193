//! `ferry restore`: an archive (see `archive`) into an empty database and data
//! directory.
//!
//! Restore reads the archive once into a staging directory under the data
//! directory's `tmp/`, verifies every checksum, and only then loads the rows in
//! one transaction and puts the blobs into the configured file store (moved into
//! the data directory's `blobs/`, or streamed into the object store).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::AsyncBufReadExt;

use super::archive::{FORMAT, Header, Manifest, Staged, TableEntry, file_item, read_archive};
use super::progress::{Progress, bytes_of, rows, summary};
use super::{LOAD_BATCH, ensure_empty_database};
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::domain::ByteSize;
use crate::store::Store;
use crate::store::dump::{DataTx, Row, Table, same_columns};

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
    let blobs = Blobs::open(settings).await?;
    ensure_empty_target(store, &blobs).await?;
    let target_version = store.schema_version().await?;
    let latest = store.latest_schema_version();
    let staging = StagingDir::create(&settings.data_dir)?;

    // 1. Read and verify everything before touching the database.
    let archive = archive.to_path_buf();
    let staging_path = staging.path.clone();
    let staged = tokio::task::block_in_place(|| {
        stage_archive(&archive, &staging_path, latest, target_version, progress)
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
    let placed = match load_staged(&mut tx, &staged, &blobs, progress).await {
        Ok(moved) => moved,
        Err(e) => {
            let _ = tx.rollback().await;
            return Err(e);
        }
    };
    if let Err(e) = tx.commit().await {
        for id in placed {
            let _ = blobs.remove(&id).await;
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

/// Restore writes only into a file store without uploaded files.
async fn ensure_empty_target(store: &Store, blobs: &Blobs) -> anyhow::Result<()> {
    ensure_empty_database(store).await?;
    if !blobs.is_empty().await? {
        bail!(
            "the {} already holds files; restore only into an empty file store",
            blobs.describe()
        );
    }
    Ok(())
}

/// Read the archive file (or stdin) into `staging`, reporting how far it got.
fn stage_archive(
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
    read_archive(
        input,
        staging,
        |header| check_header(header, latest, target_version),
        |read| {
            progress.tick(|| match total {
                Some(total) => format!("restore: reading archive: {}", bytes_of(read, total)),
                None => format!("restore: reading archive: {}", ByteSize(read)),
            })
        },
    )
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

/// Load every staged table, check the loaded rows against the manifest, drop the
/// skipped items, set id counters and put the blobs into the store. Returns the
/// blobs placed, for clean-up if the commit fails.
async fn load_staged(
    tx: &mut DataTx,
    staged: &Staged,
    blobs: &Blobs,
    progress: &Progress,
) -> anyhow::Result<Vec<uuid::Uuid>> {
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

    let mut placed = Vec::new();
    let total = staged.blobs.len();
    for (n, (id, from)) in staged.blobs.iter().enumerate() {
        let expected = manifest.blobs.get(id).map(|b| b.sha256.as_str());
        match place(blobs, id, from, expected).await {
            Ok(uuid) => placed.push(uuid),
            Err(e) => {
                for placed in &placed {
                    let _ = blobs.remove(placed).await;
                }
                return Err(e);
            }
        }
        progress.tick(|| format!("restore: files {}/{total}", n + 1));
    }
    if total > 0 {
        progress.say(format!(
            "restore: files {total}/{total} into the {}",
            blobs.describe()
        ));
    }
    Ok(placed)
}

/// Put one staged file into the store as blob `id`, checked against its SHA-256.
async fn place(
    blobs: &Blobs,
    id: &str,
    from: &Path,
    expected: Option<&str>,
) -> anyhow::Result<uuid::Uuid> {
    let uuid: uuid::Uuid = id
        .parse()
        .map_err(|_| anyhow::anyhow!("the archive names a file {id:?}, not an item id"))?;
    let stored = blobs
        .adopt(&uuid, from)
        .await
        .with_context(|| format!("cannot put file {id} into the {}", blobs.describe()))?;
    if Some(stored.sha256.as_str()) != expected {
        let _ = blobs.remove(&uuid).await;
        bail!("file {id} changed while it was restored; nothing was restored");
    }
    Ok(uuid)
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
        if !same_columns(&table.columns, &listed[&table.name].columns) {
            bail!(
                "table {}: the archive's columns differ from the database's",
                table.name
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
