//! `ferry migrate-db --from URL --to URL`: copy every row of one Ferry database into
//! another, empty one, typically SQLite to PostgreSQL, and prove the copy.
//!
//! The source is read in one snapshot transaction and the target written in one
//! transaction, table by table in foreign-key order. Before the target commits,
//! each of its tables is read back in the canonical form backups use and its row
//! count and SHA-256 compared with the source's; any difference rolls the whole copy
//! back. Uploaded files are not touched: they stay in `FERRY_DATA_DIR/blobs/`.

use std::collections::BTreeSet;
use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::TryStreamExt;

use super::progress::{Progress, rows};
use super::{LOAD_BATCH, ensure_empty_database, sqlite_path};
use crate::config::{Secret, Settings};
use crate::store::Store;
use crate::store::dump::{DataTx, Table, TableSum, row_line, same_columns};

/// One table's result: rows and checksum, equal on both sides.
#[derive(Clone, Debug)]
pub struct CopiedTable {
    pub name: String,
    pub rows: u64,
    pub sha256: String,
}

/// Copy `from` into `to` (the configured database when `to` is None). Returns
/// what was copied, table by table.
pub async fn migrate_db(
    settings: &Settings,
    from: &str,
    to: Option<&str>,
    progress: &Progress,
) -> anyhow::Result<Vec<CopiedTable>> {
    let to = to.unwrap_or(settings.database_url.expose());
    if from == to {
        bail!("--from and --to name the same database");
    }
    if let Some(path) = sqlite_path(from)
        && !path.exists()
    {
        bail!("no SQLite database at {}", path.display());
    }
    let connect = |url: &str| {
        let mut s = settings.clone();
        s.database_url = Secret::new(url);
        async move { Store::connect(&s).await }
    };
    let source = connect(from)
        .await
        .context("cannot open the source database")?;
    let target = connect(to)
        .await
        .context("cannot open the target database")?;
    let result = copy(&source, &target, progress).await;
    source.close().await;
    target.close().await;
    result
}

async fn copy(
    source: &Store,
    target: &Store,
    progress: &Progress,
) -> anyhow::Result<Vec<CopiedTable>> {
    let started = Instant::now();
    let version = source.schema_version().await?;
    if version == 0 {
        bail!("the source database has no Ferry schema; nothing to copy");
    }
    if version > source.latest_schema_version() {
        bail!(
            "the source database is at schema version {version}, newer than this Ferry ({}) knows; \
             use the Ferry version that wrote it",
            crate::VERSION
        );
    }
    ensure_empty_database(target).await?;
    let target_version = target.schema_version().await?;
    if target_version > version {
        bail!(
            "the target database is at schema version {target_version}, newer than the source's \
             {version}: upgrade the source first (`ferry migrate` with this Ferry) or start from a \
             new, empty target database"
        );
    }
    // The target gets the source's schema, the rows, then any newer migrations.
    target.migrate_until(Some(version)).await?;
    progress.say(format!(
        "migrate-db: copying {} (schema version {version}) into {}",
        source.backend(),
        target.backend()
    ));

    let mut src = source.snapshot().await?;
    let mut dst = target.begin_load().await?;
    let copied = match copy_tables(&mut src, &mut dst, progress).await {
        Ok(copied) => copied,
        Err(e) => {
            let _ = dst.rollback().await;
            let _ = src.rollback().await;
            return Err(e);
        }
    };
    src.rollback().await?;
    dst.commit().await.context("cannot commit the copy")?;
    target.migrate().await?;
    let rows: u64 = copied.iter().map(|t| t.rows).sum();
    progress.say(format!(
        "migrate-db: done in {:.1}s: {} tables, {rows} rows, counts and checksums match",
        started.elapsed().as_secs_f64(),
        copied.len()
    ));
    Ok(copied)
}

async fn copy_tables(
    src: &mut DataTx,
    dst: &mut DataTx,
    progress: &Progress,
) -> anyhow::Result<Vec<CopiedTable>> {
    let tables = src.tables().await?;
    let target_tables = dst.tables().await?;
    same_tables(&tables, &target_tables)?;
    dst.clear(&target_tables).await?;
    let mut copied = Vec::new();
    for table in &tables {
        // Columns in the target's order, so inserts match whatever order it has.
        let into = target_tables
            .iter()
            .find(|t| t.name == table.name)
            .context("table vanished")?;
        let total = src.count(table).await?;
        let mut sum = TableSum::default();
        let mut batch = Vec::with_capacity(LOAD_BATCH);
        let mut stream = src.rows(table);
        while let Some(row) = stream.try_next().await? {
            sum.add(&row_line(&row)?);
            batch.push(row);
            if batch.len() == LOAD_BATCH {
                dst.insert(into, &batch).await?;
                batch.clear();
                progress
                    .tick(|| format!("migrate-db: {}: {} of {total} rows", table.name, sum.rows));
            }
        }
        drop(stream);
        dst.insert(into, &batch).await?;
        let check = dst.table_sum(into).await?;
        if check.rows != sum.rows || check.sha256() != sum.sha256() {
            bail!(
                "table {} differs after copying ({} rows read, {} rows in the target); nothing was changed",
                table.name,
                sum.rows,
                check.rows
            );
        }
        progress.say(format!(
            "migrate-db: {}: {}, sha256 {} matches",
            table.name,
            rows(sum.rows),
            &sum.sha256()[..16]
        ));
        copied.push(CopiedTable {
            name: table.name.clone(),
            rows: sum.rows,
            sha256: sum.sha256(),
        });
    }
    let sequences = src.sequences(&tables).await?;
    dst.set_sequences(&target_tables, &sequences).await?;
    Ok(copied)
}

fn same_tables(a: &[Table], b: &[Table]) -> anyhow::Result<()> {
    let names = |t: &[Table]| t.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>();
    if names(a) != names(b) {
        bail!(
            "the databases have different tables: {:?} and {:?}",
            names(a),
            names(b)
        );
    }
    for table in a {
        let other = b.iter().find(|t| t.name == table.name).context("table")?;
        if !same_columns(&table.columns, &other.columns) {
            bail!(
                "table {} has different columns in the two databases",
                table.name
            );
        }
    }
    Ok(())
}
