//! One-time links that sign another device in ("add a device" on the account page).

use super::sessions::{NewSession, insert_session};
use super::*;

/// The session a link grants, but for whom: that is the link's to say.
#[derive(Clone, Copy)]
pub struct Session<'a> {
    pub token_hash: &'a str,
    pub csrf_token: &'a str,
    pub expires_at: i64,
    pub user_agent: Option<&'a str>,
}

impl Store {
    pub async fn create_device_link(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> sqlx::Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
            "insert into device_links (token_hash, user_id, created_at, expires_at) values ($1, $2, $3, $4)"
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(now_ms())
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ())
        })
    }

    /// A link and its owner, used or not, expired or not.
    pub async fn device_link(&self, token_hash: &str) -> sqlx::Result<Option<DeviceLink>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select l.user_id, u.name as user_name, l.expires_at, l.used_at \
             from device_links l join users u on u.id = l.user_id where l.token_hash = $1"
        )
        .bind(token_hash)
        .fetch_optional(pool)
        .await)
    }

    /// Use a link and start the session it grants, in one transaction: of two
    /// devices redeeming the same link at once, one gets a session and the other
    /// `None`, and a link is never used up without a session to show for it. The
    /// session (`user_id` is taken from the link) is for the link's owner.
    pub async fn redeem_device_link(
        &self,
        token_hash: &str,
        session: Session<'_>,
    ) -> sqlx::Result<Option<String>> {
        let now = now_ms();
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let owner: Option<String> = sqlx::query_scalar(
                "update device_links set used_at = $1 \
                 where token_hash = $2 and used_at is null and expires_at > $1 returning user_id",
            )
            .bind(now)
            .bind(token_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(user_id) = owner else {
                return Ok(None);
            };
            let session = NewSession {
                token_hash: session.token_hash,
                user_id: &user_id,
                csrf_token: session.csrf_token,
                expires_at: session.expires_at,
                user_agent: session.user_agent,
            };
            insert_session!(&mut *tx, session, now)?;
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Links past their expiry, used or not: nothing can be done with them.
    pub async fn delete_expired_device_links(&self) -> sqlx::Result<u64> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "delete from device_links where expires_at <= $1"
        )
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()))
    }
}
