//! The files of items (`item_files`), read alongside the items that hold them.

use super::*;

impl Store {
    /// Fill in the files of these items, with one query: the items of a page are
    /// neighbours in id order, so their files are those with an item id between
    /// the page's first and last (files of expired items in between are dropped).
    pub(super) async fn attach_files(&self, items: &mut [Item]) -> sqlx::Result<()> {
        let ids = items.iter().filter(|i| !i.is_note()).map(|i| i.id.as_str());
        let (Some(low), Some(high)) = (ids.clone().min(), ids.max()) else {
            return Ok(());
        };
        let rows: Vec<ItemFile> = on_pool!(self, |pool| {
            sqlx::query_as(
            "select * from item_files where item_id >= $1 and item_id <= $2 order by item_id, position"
        )
        .bind(low)
        .bind(high)
        .fetch_all(pool)
        .await?
        });
        let mut by_item: std::collections::HashMap<String, Vec<ItemFile>> =
            std::collections::HashMap::new();
        for row in rows {
            by_item.entry(row.item_id.clone()).or_default().push(row);
        }
        for item in items.iter_mut() {
            if let Some(files) = by_item.remove(&item.id) {
                item.files = files;
            }
        }
        Ok(())
    }

    /// Remember a file's CRC-32, once computed for a file stored without one.
    pub async fn set_file_crc32(&self, file_id: &str, crc32: u32) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "update item_files set crc32 = $1 where id = $2"
        )
        .bind(i64::from(crc32))
        .bind(file_id)
        .execute(pool)
        .await
        .map(|_| ()))
    }

    /// Whether a blob key belongs to a file of a recorded item.
    pub async fn file_exists(&self, id: &str) -> sqlx::Result<bool> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from item_files where id = $1"
        )
        .bind(id)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }
}
