//! Embedded migrations, one set per backend, applied under a lock so that two
//! processes starting together do not race.

use std::borrow::Cow;
use std::fs::File;

use anyhow::Context;
use sqlx::migrate::Migrator;

use super::Store;

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

impl Store {
    fn migrator(&self) -> &'static Migrator {
        match self {
            Self::Sqlite { .. } => &SQLITE,
            Self::Postgres { .. } => &POSTGRES,
        }
    }

    /// Whether this binary has a migration with exactly this version.
    pub fn knows_schema_version(&self, version: i64) -> bool {
        version == 0 || self.migrator().version_exists(version)
    }

    /// The newest schema version this binary knows.
    pub fn latest_schema_version(&self) -> i64 {
        self.migrator().iter().map(|m| m.version).max().unwrap_or(0)
    }

    /// Apply pending migrations. PostgreSQL: sqlx holds an advisory lock for the
    /// run. SQLite: an exclusive lock on a file beside the database, since two
    /// processes may share one database file.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        self.migrate_until(None).await
    }

    /// Apply pending migrations up to and including version `last` (all of them for
    /// `None`). Restore uses it to bring an empty database to an archive's schema
    /// before loading rows, then migrates the rest of the way.
    pub async fn migrate_until(&self, last: Option<i64>) -> anyhow::Result<()> {
        let subset;
        let migrator = match last {
            None => self.migrator(),
            Some(last) => {
                subset = Migrator {
                    migrations: Cow::Owned(
                        self.migrator()
                            .iter()
                            .filter(|m| m.version <= last)
                            .cloned()
                            .collect(),
                    ),
                    ..Migrator::DEFAULT
                };
                &subset
            }
        };
        let _guard = match self {
            Self::Sqlite { path, .. } => {
                let lock_path = path.with_extension("migrate.lock");
                let file = File::options()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .with_context(|| format!("cannot open {}", lock_path.display()))?;
                let file = tokio::task::spawn_blocking(move || file.lock().map(|_| file))
                    .await
                    .context("migration lock task failed")?
                    .with_context(|| format!("cannot lock {}", lock_path.display()))?;
                Some(file)
            }
            Self::Postgres { .. } => None,
        };
        match self {
            Self::Sqlite { pool, .. } => migrator.run(pool).await,
            Self::Postgres { pool, .. } => migrator.run(pool).await,
        }
        .context("database migration failed")?;
        // Dropping the file releases the lock.
        Ok(())
    }

    /// The highest applied schema version, 0 for an empty database.
    pub async fn schema_version(&self) -> sqlx::Result<i64> {
        let sql = "select coalesce(max(version), 0) from _sqlx_migrations where success";
        let result: sqlx::Result<i64> =
            super::on_pool!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await);
        match result {
            Ok(v) => Ok(v),
            // No migration table yet: nothing applied.
            Err(sqlx::Error::Database(e)) if e.message().contains("_sqlx_migrations") => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// True when every embedded migration has been applied.
    pub async fn migrations_applied(&self) -> sqlx::Result<bool> {
        Ok(self.schema_version().await? >= self.latest_schema_version())
    }
}
