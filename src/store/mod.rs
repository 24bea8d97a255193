//! The database seam. One `Store` with a SQLite and a PostgreSQL backend, chosen by
//! the URL scheme. Queries are written once in the SQL both dialects share
//! (`$1` placeholders, `returning`, `on conflict`); the `on_pool!` macro runs the
//! same text on whichever pool is configured, so only the few real differences
//! (migrations, locking, notifications) are spelled out per backend.

mod cache;
pub mod dump;
mod migrate;
mod models;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use cache::{FRESH_FOR, ItemsPage, ReadCache};
pub use models::*;

use crate::config::Settings;

/// Channel used for cross-replica live updates on PostgreSQL.
pub const EVENTS_CHANNEL: &str = "ferry_events";

#[derive(Clone, Debug)]
pub enum Store {
    Sqlite {
        pool: SqlitePool,
        /// Shared: handlers clone the store with every request.
        path: Arc<Path>,
        cache: Arc<ReadCache>,
    },
    Postgres {
        pool: PgPool,
        cache: Arc<ReadCache>,
    },
}

/// Run the same statement on whichever backend is configured.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            Store::Sqlite { pool: $pool, .. } => $body,
            Store::Postgres { pool: $pool, .. } => $body,
        }
    };
}

pub(crate) use on_pool;

/// Insert an event row inside the open transaction `$tx` and, on PostgreSQL, queue a
/// notification that is delivered when the transaction commits, so no replica hears
/// of an uncommitted event. A macro because it runs on either backend's transaction.
macro_rules! record_event {
    ($store:expr, $tx:expr, $kind:expr, $item_id:expr, $payload:expr) => {{
        let created_at = now_ms();
        let id: i64 = sqlx::query_scalar(
            "insert into events (kind, item_id, payload, created_at) values ($1, $2, $3, $4) returning id",
        )
        .bind($kind.as_str())
        .bind($item_id)
        .bind($payload)
        .bind(created_at)
        .fetch_one(&mut *$tx)
        .await?;
        if matches!($store, Store::Postgres { .. }) {
            sqlx::query(&format!("select pg_notify('{EVENTS_CHANNEL}', cast($1 as text))"))
                .bind(id)
                .execute(&mut *$tx)
                .await?;
        }
        Event { id, kind: $kind.as_str().to_string(), item_id: $item_id.to_string(), payload: $payload.to_string(), created_at }
    }};
}

/// How precisely an API token's "last used" time is kept.
const TOKEN_USE_RESOLUTION_MS: i64 = 60_000;

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Store {
    /// Connect to the configured database. For SQLite the file (and its directory)
    /// is created on first start.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.expose();
        if settings.is_postgres() {
            let options = PgConnectOptions::from_str(url)
                .context("FERRY_DATABASE_URL is not a valid PostgreSQL URL")?;
            let pool = PgPoolOptions::new()
                .max_connections(settings.db_max_connections)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .context("cannot connect to PostgreSQL")?;
            let cache = Arc::new(ReadCache::new(false));
            return Ok(Self::Postgres { pool, cache });
        }
        let options = SqliteConnectOptions::from_str(url)
            .context("FERRY_DATABASE_URL is not a valid SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL is durable across application crashes; FULL also survives a
            // power cut at the cost of an fsync per commit, which uploads pay anyway.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let path = options.get_filename().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(settings.db_max_connections)
            .acquire_timeout(Duration::from_secs(10))
            // An in-process database has no connection to lose: skip the ping that
            // would otherwise cost a round trip to the connection's thread per query.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
        // This process is the only writer of items on SQLite: it may keep pages.
        let cache = Arc::new(ReadCache::new(true));
        Ok(Self::Sqlite {
            pool,
            path: path.into(),
            cache,
        })
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// What the store remembers of recent reads (see `cache.rs`).
    pub fn cache(&self) -> &ReadCache {
        match self {
            Self::Sqlite { cache, .. } | Self::Postgres { cache, .. } => cache,
        }
    }

    pub async fn ping(&self) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query("select 1")
            .execute(pool)
            .await
            .map(|_| ()))
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }

    // ---- users ---------------------------------------------------------------

    pub async fn count_users(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from users"
        )
        .fetch_one(pool)
        .await)
    }

    /// Create a user; `None` when the name is taken.
    pub async fn create_user(
        &self,
        name: &str,
        password_hash: &str,
        is_admin: bool,
    ) -> sqlx::Result<Option<User>> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            password_hash: password_hash.to_string(),
            is_admin,
            created_at: now_ms(),
        };
        let sql = "insert into users (id, name, password_hash, is_admin, created_at) values ($1, $2, $3, $4, $5) on conflict (name) do nothing";
        let done = on_pool!(self, |pool| sqlx::query(sql)
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(user.created_at)
            .execute(pool)
            .await?
            .rows_affected());
        Ok((done == 1).then_some(user))
    }

    pub async fn user_by_name(&self, name: &str) -> sqlx::Result<Option<User>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from users where name = $1"
        )
        .bind(name)
        .fetch_optional(pool)
        .await)
    }

    pub async fn list_users(&self) -> sqlx::Result<Vec<User>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from users order by name"
        )
        .fetch_all(pool)
        .await)
    }

    /// Change a password and end every session of that user.
    pub async fn set_password(&self, user_id: &str, password_hash: &str) -> sqlx::Result<bool> {
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("update users set password_hash = $1 where id = $2")
                .bind(password_hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("delete from sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.cache().forget_credentials();
            Ok(n == 1)
        })
    }

    pub async fn delete_user(&self, name: &str) -> sqlx::Result<bool> {
        let deleted = on_pool!(self, |pool| sqlx::query(
            "delete from users where name = $1"
        )
        .bind(name)
        .execute(pool)
        .await?
        .rows_affected())
            == 1;
        // Their sessions and tokens are gone, and their items lost their author.
        self.cache().forget_all();
        Ok(deleted)
    }

    // ---- first-admin setup -----------------------------------------------------

    pub async fn add_setup_token(&self, token_hash: &str) -> sqlx::Result<()> {
        on_pool!(self, |pool| sqlx::query(
            "insert into setup_tokens (token_hash, created_at) values ($1, $2)"
        )
        .bind(token_hash)
        .bind(now_ms())
        .execute(pool)
        .await
        .map(|_| ()))
    }

    pub async fn setup_token_valid(&self, token_hash: &str) -> sqlx::Result<bool> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from setup_tokens where token_hash = $1"
        )
        .bind(token_hash)
        .fetch_one(pool)
        .await?);
        Ok(n == 1 && self.count_users().await? == 0)
    }

    /// Create the first admin with a setup token. Succeeds once: the token is
    /// consumed, all other setup tokens are dropped, and the user table must be empty.
    pub async fn complete_setup(
        &self,
        token_hash: &str,
        name: &str,
        password_hash: &str,
    ) -> sqlx::Result<Option<User>> {
        let user = User {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            password_hash: password_hash.to_string(),
            is_admin: true,
            created_at: now_ms(),
        };
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let consumed = sqlx::query("delete from setup_tokens where token_hash = $1")
                .bind(token_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            // Inserting only when no user exists keeps two racing visitors from both
            // becoming admin, on either backend.
            let created = sqlx::query(
                "insert into users (id, name, password_hash, is_admin, created_at) \
                 select $1, $2, $3, $4, $5 where not exists (select 1 from users)",
            )
            .bind(&user.id)
            .bind(&user.name)
            .bind(&user.password_hash)
            .bind(true)
            .bind(user.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if consumed != 1 || created != 1 {
                tx.rollback().await?;
                return Ok(None);
            }
            sqlx::query("delete from setup_tokens")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(user))
        })
    }

    // ---- sessions ----------------------------------------------------------------

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> sqlx::Result<()> {
        on_pool!(self, |pool| {
            sqlx::query(
            "insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at) values ($1, $2, $3, $4, $5)"
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(csrf_token)
        .bind(now_ms())
        .bind(expires_at)
        .execute(pool)
        .await
        .map(|_| ())
        })
    }

    pub async fn session(&self, token_hash: &str) -> sqlx::Result<Option<SessionUser>> {
        if let Some(user) = self.cache().session(token_hash) {
            return Ok(Some(user));
        }
        let sql = "select u.id, u.name, u.is_admin, s.csrf_token from sessions s join users u on u.id = s.user_id \
                   where s.token_hash = $1 and s.expires_at > $2";
        let user: Option<SessionUser> = on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(token_hash)
            .bind(now_ms())
            .fetch_optional(pool)
            .await?);
        if let Some(user) = &user {
            self.cache().remember_session(token_hash, user);
        }
        Ok(user)
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
        if now - last_used_at > TOKEN_USE_RESOLUTION_MS {
            on_pool!(self, |pool| sqlx::query(
                "update api_tokens set last_used_at = $1 where token_hash = $2"
            )
            .bind(now)
            .bind(token_hash)
            .execute(pool)
            .await
            .map(|_| ()))?;
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

    // ---- items and their events ---------------------------------------------------

    /// Record an item and its `item.created` event in one transaction, so that a
    /// visible item always has an event and replay never misses one.
    pub async fn insert_item(&self, item: &Item) -> sqlx::Result<Event> {
        let payload =
            serde_json::to_string(&item.view()).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "insert into items (id, author_id, kind, name, content_type, size, sha256, note, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&item.id)
            .bind(&item.author_id)
            .bind(&item.kind)
            .bind(&item.name)
            .bind(&item.content_type)
            .bind(item.size)
            .bind(&item.sha256)
            .bind(&item.note)
            .bind(item.created_at)
            .bind(item.expires_at)
            .execute(&mut *tx)
            .await?;
            let event = record_event!(self, tx, EventKind::Created, &item.id, &payload);
            tx.commit().await?;
            self.cache().forget_pages();
            Ok(event)
        })
    }

    pub async fn item(&self, id: &str) -> sqlx::Result<Option<Item>> {
        let sql = "select i.*, u.name as author_name from items i left join users u on u.id = i.author_id \
                   where i.id = $1 and (i.expires_at is null or i.expires_at > $2)";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .bind(now_ms())
            .fetch_optional(pool)
            .await)
    }

    /// Newest first; `before` is the id of the last item of the previous page.
    pub async fn list_items(&self, before: Option<&str>, limit: i64) -> sqlx::Result<Arc<[Item]>> {
        if !self.cache().keeps_pages() {
            return Ok(self.query_items(before, limit).await?.into());
        }
        Ok(self.items_page(before, limit).await?.items)
    }

    /// A page of items with the newest event id read before it, for a page whose
    /// live stream resumes after that id: an item created meanwhile is then
    /// replayed to the stream rather than missed.
    pub async fn items_page(&self, before: Option<&str>, limit: i64) -> sqlx::Result<ItemsPage> {
        let ticket = match self.cache().page(before, limit) {
            Ok(page) => return Ok(page),
            Err(ticket) => ticket,
        };
        let last_event_id = self.latest_event_id().await?;
        let page = ItemsPage {
            items: self.query_items(before, limit).await?.into(),
            last_event_id,
        };
        if let Some(ticket) = ticket {
            self.cache().remember_page(ticket, page.clone());
        }
        Ok(page)
    }

    async fn query_items(&self, before: Option<&str>, limit: i64) -> sqlx::Result<Vec<Item>> {
        let sql = "select i.*, u.name as author_name from items i left join users u on u.id = i.author_id \
                   where (i.expires_at is null or i.expires_at > $1) and ($2 is null or i.id < $2) \
                   order by i.id desc limit $3";
        on_pool!(self, |pool| sqlx::query_as(sql)
            .bind(now_ms())
            .bind(before)
            .bind(limit)
            .fetch_all(pool)
            .await)
    }

    /// Delete an item and record `item.deleted`. Returns the deleted item so the
    /// caller can remove its blob once the row is gone.
    pub async fn delete_item(&self, id: &str) -> sqlx::Result<Option<(Item, Event)>> {
        // Write first: a SQLite transaction that reads and then writes fails at once
        // (SQLITE_BUSY_SNAPSHOT) when another connection committed in between.
        let sql = "delete from items where id = $1 returning *, cast(null as text) as author_name";
        on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let item: Option<Item> = sqlx::query_as(sql)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(item) = item else {
                return Ok(None);
            };
            let payload = serde_json::json!({ "id": id }).to_string();
            let event = record_event!(self, tx, EventKind::Deleted, id, &payload);
            tx.commit().await?;
            self.cache().forget_pages();
            Ok(Some((item, event)))
        })
    }

    pub async fn expired_item_ids(&self, limit: i64) -> sqlx::Result<Vec<String>> {
        on_pool!(self, |pool| {
            sqlx::query_scalar(
            "select id from items where expires_at is not null and expires_at <= $1 order by expires_at limit $2"
        )
        .bind(now_ms())
        .bind(limit)
        .fetch_all(pool)
        .await
        })
    }

    /// Ids of every file item, for sweeping orphaned blobs.
    pub async fn item_exists(&self, id: &str) -> sqlx::Result<bool> {
        let n: i64 = on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from items where id = $1"
        )
        .bind(id)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    pub async fn count_items(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select count(*) from items"
        )
        .fetch_one(pool)
        .await)
    }

    // ---- events --------------------------------------------------------------------

    pub async fn events_after(&self, after: i64, limit: i64) -> sqlx::Result<Vec<Event>> {
        on_pool!(self, |pool| sqlx::query_as(
            "select * from events where id > $1 order by id limit $2"
        )
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)
    }

    pub async fn latest_event_id(&self) -> sqlx::Result<i64> {
        on_pool!(self, |pool| sqlx::query_scalar(
            "select coalesce(max(id), 0) from events"
        )
        .fetch_one(pool)
        .await)
    }

    pub async fn prune_events(&self, older_than_ms: i64) -> sqlx::Result<u64> {
        on_pool!(self, |pool| Ok(sqlx::query(
            "delete from events where created_at < $1"
        )
        .bind(older_than_ms)
        .execute(pool)
        .await?
        .rows_affected()))
    }

    // ---- share links ---------------------------------------------------------------

    pub async fn create_share(&self, share: &Share, token_hash: &str) -> sqlx::Result<()> {
        on_pool!(self, |pool| {
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
        })
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

    // ---- leases --------------------------------------------------------------------

    /// Take or renew a named lease. Only one holder at a time across replicas, and
    /// a crashed holder's lease lapses after `ttl`.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> sqlx::Result<bool> {
        let now = now_ms();
        let sql = "insert into leases (name, holder, expires_at) values ($1, $2, $3) \
                   on conflict (name) do update set holder = excluded.holder, expires_at = excluded.expires_at \
                   where leases.expires_at < $4 or leases.holder = $2";
        on_pool!(self, |pool| Ok(sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(now + ttl.as_millis() as i64)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
            == 1))
    }
}
