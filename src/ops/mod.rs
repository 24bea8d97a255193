//! The operations commands: `ferry backup` and `ferry restore` (one archive of the
//! database and the uploads, see `archive`) and `ferry migrate-db` (a database
//! copied into another), all built on the whole-table copies of `store::dump`;
//! and `ferry blobs copy` (the files from one file store into the other).

mod archive;
mod backup;
mod copy_blobs;
mod migrate_db;
mod progress;
mod restore;

use std::path::PathBuf;

use anyhow::bail;

use crate::store::Store;

pub use archive::{BlobEntry, FORMAT, Header, Manifest, TableEntry, read_manifest};
pub use backup::backup;
pub use copy_blobs::{CopyReport, copy_blobs};
pub use migrate_db::{CopiedTable, migrate_db};
pub use progress::Progress;
pub use restore::restore;

/// Rows read ahead for each insert when loading a table (restore, migrate-db).
const LOAD_BATCH: usize = 500;

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
