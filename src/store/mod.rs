//! The database seam. One `Store` with a SQLite and a PostgreSQL backend, chosen by
//! the URL scheme. Queries are written once in the SQL both dialects share
//! (`$1` placeholders, `returning`, `on conflict`); the `on_pool!` macro runs the
//! same text on whichever pool is configured, so only the few real differences
//! (migrations, locking, notifications) are spelled out per backend.

mod cache;
pub mod dump;
mod errors;
mod item_files;
mod items;
mod lease;
mod links;
mod migrate;
mod models;
mod sessions;
mod shares;
mod uploads;
mod users;

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
pub use errors::is_unavailable;
pub use links::Session as LinkedSession;
pub use models::*;
pub use sessions::NewSession;
pub use uploads::ResumableUpload;

use crate::config::Settings;

/// Channel used for cross-replica live updates on PostgreSQL.
pub const EVENTS_CHANNEL: &str = "ferry_events";
/// PostgreSQL advisory lock that orders event writers (see `record_event!`).
const EVENTS_LOCK_KEY: i64 = 0x6665_7272_795f_6576; // "ferry_ev"

/// How long a request waits for a database connection before it fails. Long on
/// purpose: a burst of uploads or a slow migration may hold every connection for a
/// few seconds, and a request should wait that out rather than fail. Readiness does
/// not wait this long; it gives up on its own, shorter deadline (`app::health`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

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
///
/// Event ids must become visible in order: a client resuming after id N is sent only
/// ids above N, so an id below N that commits later would never reach it. SQLite
/// has one writer at a time; on PostgreSQL a lock held until commit does the same
/// for event writers (taken last, just before commit, so it is held briefly).
macro_rules! record_event {
    ($store:expr, $tx:expr, $kind:expr, $item_id:expr, $payload:expr) => {{
        if matches!($store, Store::Postgres { .. }) {
            sqlx::query("select pg_advisory_xact_lock($1)")
                .bind(EVENTS_LOCK_KEY)
                .execute(&mut *$tx)
                .await?;
        }
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

pub(crate) use record_event;

pub use crate::domain::now_ms;

impl Store {
    /// Connect to the configured database. For SQLite the file (and its directory)
    /// is created on first start.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = settings.database_url.expose();
        if settings.is_postgres() {
            let options = PgConnectOptions::from_str(url)
                .context("FERRY_DATABASE_URL is not a valid PostgreSQL URL")?
                // PostgreSQL sends NOTICEs (such as "relation _sqlx_migrations already
                // exists, skipping" on every migration run) that sqlx logs as lines in
                // the middle of a command's output; warnings and errors still come.
                .options([("client_min_messages", "warning")]);
            let pool = PgPoolOptions::new()
                .max_connections(settings.db_max_connections)
                .acquire_timeout(ACQUIRE_TIMEOUT)
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
            .acquire_timeout(ACQUIRE_TIMEOUT)
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

    /// Whether every connection the pool may open is open and taken: a wait for one
    /// then means the database is busy (slow queries), not that it is gone.
    pub fn pool_exhausted(&self) -> bool {
        on_pool!(self, |pool| pool.size()
            >= pool.options().get_max_connections()
            && pool.num_idle() == 0)
    }

    pub async fn close(&self) {
        on_pool!(self, |pool| pool.close().await)
    }
}
