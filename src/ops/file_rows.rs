//! Which rows of a backup stand for blobs, and the facts of each blob.

use anyhow::Context;

use crate::store::dump::Row;

/// A file of an item: the blob the archive holds for it.
pub(super) struct FileItem {
    /// The blob key.
    pub id: uuid::Uuid,
    /// The item that holds the file.
    pub item_id: String,
    pub size: u64,
    pub sha256: String,
}

/// The blob a row of `table` stands for: an `item_files` row, or, in a schema
/// from before several files per item (no `item_files` table), a file item's
/// `items` row (its blob key is its id).
pub(super) fn blob_of(
    table: &str,
    row: &Row,
    has_item_files: bool,
) -> anyhow::Result<Option<FileItem>> {
    match table {
        "item_files" => {
            let item_id = row
                .get("item_id")
                .and_then(|v| v.as_str())
                .context("a file row without an item")?
                .to_string();
            let mut file = blob_facts(row)?;
            file.item_id = item_id;
            Ok(Some(file))
        }
        "items" if !has_item_files => file_item(row),
        _ => Ok(None),
    }
}

/// The blob facts of an `items` row, None for notes.
fn file_item(row: &Row) -> anyhow::Result<Option<FileItem>> {
    if row.get("kind").and_then(|v| v.as_str()) != Some("file") {
        return Ok(None);
    }
    blob_facts(row).map(Some)
}

/// A row's blob key (`id`), `size` and `sha256`.
fn blob_facts(row: &Row) -> anyhow::Result<FileItem> {
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
    Ok(FileItem {
        id,
        item_id: id.to_string(),
        size,
        sha256,
    })
}
