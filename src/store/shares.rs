//! Share links: their rows, resolution by token hash and download counting.

use super::*;

impl Store {
    /// Record a share link; false when its item is gone (deleted since the caller
    /// looked it up).
    pub async fn create_share(&self, share: &Share, token_hash: &str) -> sqlx::Result<bool> {
        let inserted = on_pool!(self, |pool| {
            sqlx::query(
            "insert into shares (id, item_id, token_hash, created_by, created_at, expires_at, max_downloads, downloads, password_hash) \
             values ($1, $2, $3, $4, $5, $6, $7, 0, $8)"
        )
        .bind(&share.id)
        .bind(&share.item_id)
        .bind(token_hash)
        .bind(&share.created_by)
        .bind(share.created_at)
        .bind(share.expires_at)
        .bind(share.max_downloads)
        .bind(&share.password_hash)
        .execute(pool)
        .await
        .map(|_| ())
        });
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => Ok(false),
            other => other.map(|()| true),
        }
    }

    pub async fn share_by_token(&self, token_hash: &str) -> sqlx::Result<Option<Share>> {
        on_pool!(self, |pool| {
            sqlx::query_as(
            "select id, item_id, created_by, created_at, expires_at, max_downloads, downloads, password_hash, revoked_at \
             from shares where token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await
        })
    }

    pub async fn shares_of_item(&self, item_id: &str) -> sqlx::Result<Vec<Share>> {
        on_pool!(self, |pool| {
            sqlx::query_as(
            "select id, item_id, created_by, created_at, expires_at, max_downloads, downloads, password_hash, revoked_at \
             from shares where item_id = $1 order by created_at desc"
        )
        .bind(item_id)
        .fetch_all(pool)
        .await
        })
    }

    pub async fn revoke_share(&self, share_id: &str) -> sqlx::Result<Option<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
            "update shares set revoked_at = $1 where id = $2 and revoked_at is null returning item_id"
        )
        .bind(now_ms())
        .bind(share_id)
        .fetch_optional(pool)
        .await
        })
    }

    /// Count one download if the limit allows it; false once the limit is reached.
    /// A single conditional update, so concurrent downloads cannot overshoot.
    pub async fn count_share_download(&self, share_id: &str) -> sqlx::Result<bool> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "update shares set downloads = downloads + 1 \
             where id = $1 and (max_downloads is null or downloads < max_downloads)"
        )
        .bind(share_id)
        .execute(pool)
        .await?
        .rows_affected()
            == 1))
    }
}
