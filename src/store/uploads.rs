//! Resumable uploads in progress: how much of each has safely arrived, whose it
//! is and when it lapses. The row is the truth every replica reads; the bytes
//! are in the data directory (see `partials.rs`).

use super::*;

#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ResumableUpload {
    pub id: String,
    pub user_id: String,
    /// The file name as the client gave it; cleaned when the item is recorded.
    pub name: String,
    /// The item's expiry (`never`, `1d`, ...), applied when it is recorded.
    pub item_expiry: String,
    pub length: i64,
    /// Bytes on stable storage, acknowledged to the client.
    pub received: i64,
    /// The client's `Upload-Metadata`, returned as it came.
    pub metadata: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub completed_at: Option<i64>,
}

impl Store {
    pub async fn insert_upload(&self, upload: &ResumableUpload) -> sqlx::Result<()> {
        let sql = "insert into uploads (id, user_id, name, item_expiry, length, received, metadata, \
                   created_at, expires_at, completed_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(&upload.id)
            .bind(&upload.user_id)
            .bind(&upload.name)
            .bind(&upload.item_expiry)
            .bind(upload.length)
            .bind(upload.received)
            .bind(&upload.metadata)
            .bind(upload.created_at)
            .bind(upload.expires_at)
            .bind(upload.completed_at)
            .execute(pool)
            .await
            .map(|_| ()))
    }

    pub async fn upload(&self, id: &str) -> sqlx::Result<Option<ResumableUpload>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from uploads where id = $1"
        )
        .bind(id)
        .fetch_optional(pool)
        .await)
    }

    pub async fn count_unfinished_uploads(&self, user_id: &str) -> sqlx::Result<i64> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
            "select count(*) from uploads where user_id = $1 and completed_at is null and expires_at > $2"
        )
        .bind(user_id)
        .bind(now_ms())
        .fetch_one(pool)
        .await
        })
    }

    /// Move the acknowledged offset from `from` to `to`. False when the row is not
    /// at `from` any more (deleted, or moved by another request).
    pub async fn record_received(
        &self,
        id: &str,
        from: i64,
        to: i64,
        expires_at: i64,
    ) -> sqlx::Result<bool> {
        let sql = "update uploads set received = $3, expires_at = $4 \
                   where id = $1 and received = $2 and completed_at is null";
        on_pool!(self, |pool| Ok(sqlx::query(sql)
            .bind(id)
            .bind(from)
            .bind(to)
            .bind(expires_at)
            .execute(pool)
            .await?
            .rows_affected()
            == 1))
    }

    /// Mark an upload complete: all of it received, its item recorded.
    pub async fn complete_upload(&self, id: &str, expires_at: i64) -> sqlx::Result<()> {
        let sql = "update uploads set received = length, completed_at = $2, expires_at = $3 \
                   where id = $1 and completed_at is null";
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(id)
            .bind(now_ms())
            .bind(expires_at)
            .execute(pool)
            .await
            .map(|_| ()))
    }

    pub async fn delete_upload(&self, id: &str) -> sqlx::Result<bool> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "delete from uploads where id = $1"
        )
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected()
            == 1))
    }

    /// Uploads past their expiry, finished or not, oldest first.
    pub async fn expired_upload_ids(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select id from uploads where expires_at <= $1 order by expires_at limit $2"
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(pool)
        .await)
    }
}
