//! Sign-in sessions and API tokens: the credentials that name a user.

use super::*;

/// How precisely an API token's "last used" and a session's "last seen" are kept.
const LAST_USE_RESOLUTION_MS: i64 = 60_000;

/// A session about to start.
pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: &'a str,
    pub csrf_token: &'a str,
    pub expires_at: i64,
    /// The browser's User-Agent, already clipped, for the account's device list.
    pub user_agent: Option<&'a str>,
}

/// Insert a `NewSession` on a pool or inside a transaction (the device-link
/// redemption starts its session in the same transaction that uses the link).
macro_rules! insert_session {
    ($executor:expr, $session:expr, $now:expr) => {
        sqlx::query(
            "insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at, user_agent, last_seen_at) \
             values ($1, $2, $3, $4, $5, $6, $4)",
        )
        .bind($session.token_hash)
        .bind($session.user_id)
        .bind($session.csrf_token)
        .bind($now)
        .bind($session.expires_at)
        .bind($session.user_agent)
        .execute($executor)
        .await
        .map(|_| ())
    };
}

pub(crate) use insert_session;

impl Store {
    /// A session with no device recorded (the command line, benchmarks, tests).
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> sqlx::Result<()> {
        self.insert_session(&NewSession {
            token_hash,
            user_id,
            csrf_token,
            expires_at,
            user_agent: None,
        })
        .await
    }

    pub async fn insert_session(&self, session: &NewSession<'_>) -> sqlx::Result<()> {
        on_pool!(self, |pool| insert_session!(pool, session, now_ms()))
    }

    pub async fn session(&self, token_hash: &str) -> sqlx::Result<Option<SessionUser>> {
        if let Some(user) = self.cache().session(token_hash) {
            return Ok(Some(user));
        }
        let sql = "select u.id, u.name, u.is_admin, s.csrf_token, coalesce(s.last_seen_at, s.created_at) \
                   from sessions s join users u on u.id = s.user_id \
                   where s.token_hash = $1 and s.expires_at > $2";
        let now = now_ms();
        let row: Option<(String, String, bool, String, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql)
                .bind(token_hash)
                .bind(now)
                .fetch_optional(pool)
                .await?);
        let Some((id, name, is_admin, csrf_token, last_seen_at)) = row else {
            return Ok(None);
        };
        // "Last seen" on the account page, kept to the minute like a token's last use:
        // a write per page view would serialise browsing on SQLite.
        if now - last_seen_at > LAST_USE_RESOLUTION_MS {
            self.record_use(
                "update sessions set last_seen_at = $1 where token_hash = $2",
                token_hash,
                now,
            )
            .await?;
        }
        let user = SessionUser {
            id,
            name,
            is_admin,
            csrf_token,
        };
        self.cache().remember_session(token_hash, &user);
        Ok(Some(user))
    }

    /// A user's sessions that have not expired, the most recently seen first.
    pub async fn sessions_of_user(&self, user_id: &str) -> sqlx::Result<Vec<SessionRow>> {
        on_pool!(self, |pool| {
            sqlx::query_as(
            "select token_hash, user_agent, created_at, coalesce(last_seen_at, created_at) as last_seen_at \
             from sessions where user_id = $1 and expires_at > $2 \
             order by coalesce(last_seen_at, created_at) desc, created_at desc"
        )
        .bind(user_id)
        .bind(now_ms())
        .fetch_all(pool)
        .await
        })
    }

    /// End one of a user's sessions; false when the user has no such session.
    pub async fn delete_user_session(&self, user_id: &str, token_hash: &str) -> sqlx::Result<bool> {
        let ended = on_pool!(self, |pool| sqlx::query(
            "delete from sessions where user_id = $1 and token_hash = $2"
        )
        .bind(user_id)
        .bind(token_hash)
        .execute(pool)
        .await?
        .rows_affected());
        self.cache().forget_credentials();
        Ok(ended > 0)
    }

    pub async fn delete_session(&self, token_hash: &str) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "delete from sessions where token_hash = $1"
        )
        .bind(token_hash)
        .execute(pool)
        .await
        .map(|_| ()))?;
        self.cache().forget_credentials();
        Ok(())
    }

    pub async fn delete_expired_sessions(&self) -> sqlx::Result<u64> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "delete from sessions where expires_at <= $1"
        )
        .bind(now_ms())
        .execute(pool)
        .await?
        .rows_affected()))
    }

    // ---- API tokens ----------------------------------------------------------------

    pub async fn create_api_token(
        &self,
        user_id: &str,
        name: &str,
        token_hash: &str,
    ) -> sqlx::Result<ApiToken> {
        let token = ApiToken {
            id: uuid::Uuid::now_v7().to_string(),
            user_id: user_id.to_string(),
            name: name.to_string(),
            created_at: now_ms(),
            last_used_at: None,
        };
        on_pool!(self, |pool| {
            sqlx::query(
            "insert into api_tokens (id, user_id, name, token_hash, created_at) values ($1, $2, $3, $4, $5)"
        )
        .bind(&token.id)
        .bind(&token.user_id)
        .bind(&token.name)
        .bind(token_hash)
        .bind(token.created_at)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(token)
    }

    pub async fn api_token_user(&self, token_hash: &str) -> sqlx::Result<Option<SessionUser>> {
        if let Some(user) = self.cache().api_token(token_hash) {
            return Ok(Some(user));
        }
        let sql = "select u.id, u.name, u.is_admin, '' as csrf_token, coalesce(t.last_used_at, 0) as last_used_at \
                   from api_tokens t join users u on u.id = t.user_id where t.token_hash = $1";
        let row: Option<(String, String, bool, String, i64)> =
            on_pool!(self, |pool| sqlx::query_as(sql)
                .bind(token_hash)
                .fetch_optional(pool)
                .await?);
        let Some((id, name, is_admin, csrf_token, last_used_at)) = row else {
            return Ok(None);
        };
        // Record use at most once a minute: a write per API request would
        // serialise every script call on SQLite.
        let now = now_ms();
        if now - last_used_at > LAST_USE_RESOLUTION_MS {
            self.record_use(
                "update api_tokens set last_used_at = $1 where token_hash = $2",
                token_hash,
                now,
            )
            .await?;
        }
        let user = SessionUser {
            id,
            name,
            is_admin,
            csrf_token,
        };
        self.cache().remember_api_token(token_hash, &user);
        Ok(Some(user))
    }

    pub async fn list_api_tokens(&self, user_id: &str) -> sqlx::Result<Vec<ApiToken>> {
        on_pool!(self, |pool| {
            sqlx::query_as(
            "select id, user_id, name, created_at, last_used_at from api_tokens where user_id = $1 order by created_at desc"
        )
        .bind(user_id)
        .fetch_all(pool)
        .await
        })
    }

    /// Revoke a token by id or name; only its owner may.
    pub async fn revoke_api_token(&self, user_id: &str, id_or_name: &str) -> sqlx::Result<u64> {
        let revoked = on_pool!(self, |pool| sqlx::query(
            "delete from api_tokens where user_id = $1 and (id = $2 or name = $2)"
        )
        .bind(user_id)
        .bind(id_or_name)
        .execute(pool)
        .await?
        .rows_affected());
        self.cache().forget_credentials();
        Ok(revoked)
    }

    /// Note when a credential was last used (`sql` sets the time `$1` for the token
    /// hash `$2`); callers keep it to the minute.
    async fn record_use(&self, sql: &'static str, token_hash: &str, now: i64) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query(sql)
            .bind(now)
            .bind(token_hash)
            .execute(pool)
            .await
            .map(|_| ()))
    }
}
