//! Whole-database copies, for `ferry backup`, `ferry restore` and `ferry migrate-db`.
//!
//! Tables and columns are read from the database's own catalog, so a migration that
//! adds a table or a column is copied without changes here. Every column is text,
//! an integer or a boolean; a row travels as one JSON object with its keys in name
//! order, and rows are read in primary-key order with byte-wise text comparison on
//! both backends. The same data therefore gives the same lines, and the same
//! checksum, whether it was read from SQLite or from PostgreSQL.
//!
//! A [`DataTx`] is one transaction: [`Store::snapshot`] opens a read-only one that
//! sees a single consistent state while other writers carry on (SQLite: a read
//! transaction in WAL mode; PostgreSQL: `repeatable read, read only`), and
//! [`Store::begin_load`] opens the write transaction that fills an empty database.

mod rows;
mod tables;

use std::collections::BTreeMap;

use anyhow::Context;
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use sqlx::{Postgres, Sqlite, Transaction};

use super::Store;
use rows::{Bind, bind_values, decode};
use tables::{insert_sql, quote};

pub use rows::{Row, TableSum, row_line};
pub use tables::{Column, ColumnType, Table, check_identifier, same_columns};

/// Rows per insert statement are limited to this many bound values.
const MAX_BIND_VALUES: usize = 900;

/// A transaction on either backend, for reading or loading whole tables.
pub enum DataTx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Run the same statement on whichever backend's transaction this is.
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            DataTx::Sqlite($conn) => $body,
            DataTx::Postgres($conn) => $body,
        }
    };
}

impl Store {
    /// A read-only transaction that sees one consistent state of every table while
    /// the server keeps writing.
    pub async fn snapshot(&self) -> anyhow::Result<DataTx> {
        match self {
            Self::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await?;
                // A deferred transaction takes its snapshot at the first read; take it
                // now, so that every later statement sees the same state.
                sqlx::query("select count(*) from sqlite_master")
                    .execute(&mut *tx)
                    .await?;
                Ok(DataTx::Sqlite(tx))
            }
            Self::Postgres { pool, .. } => Ok(DataTx::Postgres(
                pool.begin_with("begin isolation level repeatable read, read only")
                    .await?,
            )),
        }
    }

    /// The write transaction that loads rows into an empty database.
    pub async fn begin_load(&self) -> anyhow::Result<DataTx> {
        match self {
            // Take the write lock up front rather than failing half-way.
            Self::Sqlite { pool, .. } => {
                Ok(DataTx::Sqlite(pool.begin_with("begin immediate").await?))
            }
            Self::Postgres { pool, .. } => Ok(DataTx::Postgres(pool.begin().await?)),
        }
    }

    /// True when the database has no users and no items (a fresh or unmigrated
    /// database), the only kind restore and migrate-db write into.
    pub async fn holds_no_data(&self) -> anyhow::Result<bool> {
        if self.schema_version().await? == 0 {
            return Ok(true);
        }
        Ok(self.count_users().await? == 0 && self.count_items().await? == 0)
    }
}

impl DataTx {
    pub async fn commit(self) -> anyhow::Result<()> {
        on_tx!(self, |tx| tx.commit().await?);
        Ok(())
    }

    pub async fn rollback(self) -> anyhow::Result<()> {
        on_tx!(self, |tx| tx.rollback().await?);
        Ok(())
    }

    /// The highest applied migration, 0 when there is none.
    pub async fn schema_version(&mut self) -> anyhow::Result<i64> {
        let has_table = match self {
            DataTx::Sqlite(tx) => {
                sqlx::query_scalar::<_, i64>(
                    "select count(*) from sqlite_master where type = 'table' and name = '_sqlx_migrations'",
                )
                .fetch_one(&mut **tx)
                .await?
            }
            DataTx::Postgres(tx) => {
                sqlx::query_scalar::<_, i64>(
                    "select count(*) from information_schema.tables \
                     where table_schema = current_schema() and table_name = '_sqlx_migrations'",
                )
                .fetch_one(&mut **tx)
                .await?
            }
        };
        if has_table == 0 {
            return Ok(0);
        }
        let sql = "select coalesce(max(version), 0) from _sqlx_migrations where success";
        Ok(on_tx!(self, |tx| sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&mut **tx)
            .await?))
    }

    /// The rows of one table in primary-key order.
    pub fn rows<'a>(&'a mut self, table: &'a Table) -> BoxStream<'a, anyhow::Result<Row>> {
        let columns = &table.columns;
        on_tx!(self, |tx| Box::pin(
            sqlx::query(&table.select_sql)
                .fetch(&mut **tx)
                .map_err(anyhow::Error::from)
                .and_then(move |row| async move { decode(&row, columns) })
        ))
    }

    pub async fn count(&mut self, table: &Table) -> anyhow::Result<i64> {
        let sql = format!("select count(*) from {}", quote(&table.name));
        Ok(on_tx!(self, |tx| sqlx::query_scalar::<_, i64>(&sql)
            .fetch_one(&mut **tx)
            .await?))
    }

    /// Row count and checksum of a table as it reads now (see [`TableSum`]).
    pub async fn table_sum(&mut self, table: &Table) -> anyhow::Result<TableSum> {
        let mut sum = TableSum::default();
        let mut rows = self.rows(table);
        while let Some(row) = rows.try_next().await? {
            sum.add(&row_line(&row)?);
        }
        Ok(sum)
    }

    /// Delete the rows whose `column` equals `value`; returns how many went.
    pub async fn delete_where(
        &mut self,
        table: &str,
        column: &str,
        value: &str,
    ) -> anyhow::Result<u64> {
        check_identifier(table)?;
        check_identifier(column)?;
        let sql = format!("delete from {} where {} = $1", quote(table), quote(column));
        Ok(on_tx!(self, |tx| sqlx::query(&sql)
            .bind(value)
            .execute(&mut **tx)
            .await?
            .rows_affected()))
    }

    /// Delete every row of these tables, children first.
    pub async fn clear(&mut self, tables: &[Table]) -> anyhow::Result<()> {
        for table in tables.iter().rev() {
            let sql = format!("delete from {}", quote(&table.name));
            on_tx!(self, |tx| sqlx::query(&sql)
                .execute(&mut **tx)
                .await
                .map(|_| ())?);
        }
        Ok(())
    }

    /// Insert rows, several per statement. Every row must have exactly the table's
    /// columns.
    pub async fn insert(&mut self, table: &Table, rows: &[Row]) -> anyhow::Result<()> {
        let width = table.columns.len().max(1);
        for chunk in rows.chunks((MAX_BIND_VALUES / width).max(1)) {
            let mut values = Vec::with_capacity(chunk.len() * width);
            for row in chunk {
                values.extend(bind_values(table, row)?);
            }
            let sql = insert_sql(table, chunk.len());
            on_tx!(self, |tx| {
                let mut query = sqlx::query(&sql);
                for value in values {
                    query = match value {
                        Bind::Text(v) => query.bind(v),
                        Bind::Int(v) => query.bind(v),
                        Bind::Bool(v) => query.bind(v),
                    };
                }
                query
                    .execute(&mut **tx)
                    .await
                    .map(|_| ())
                    .with_context(|| format!("cannot insert into {}", table.name))?
            });
        }
        Ok(())
    }

    /// How far each table's id counter has gone (SQLite `autoincrement`, PostgreSQL
    /// serial/identity columns), by table name. Restoring these keeps new ids after
    /// every id a client may already have seen, even if those rows were pruned.
    pub async fn sequences(&mut self, tables: &[Table]) -> anyhow::Result<BTreeMap<String, i64>> {
        let mut out = BTreeMap::new();
        match self {
            DataTx::Sqlite(tx) => {
                if has_sqlite_sequence(tx).await? {
                    let rows: Vec<(String, i64)> =
                        sqlx::query_as("select name, seq from sqlite_sequence")
                            .fetch_all(&mut **tx)
                            .await?;
                    out.extend(rows);
                }
            }
            DataTx::Postgres(tx) => {
                for table in tables {
                    for column in pg_serial_columns(tx, table).await? {
                        let (seq, _) = column;
                        let (last, called): (i64, bool) =
                            sqlx::query_as(&format!("select last_value, is_called from {seq}"))
                                .fetch_one(&mut **tx)
                                .await?;
                        out.insert(table.name.clone(), if called { last } else { last - 1 });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Move id counters past both the loaded rows and the recorded positions.
    pub async fn set_sequences(
        &mut self,
        tables: &[Table],
        recorded: &BTreeMap<String, i64>,
    ) -> anyhow::Result<()> {
        match self {
            DataTx::Sqlite(tx) => {
                if !has_sqlite_sequence(tx).await? {
                    return Ok(());
                }
                for (name, value) in recorded {
                    if !tables.iter().any(|t| &t.name == name) {
                        continue;
                    }
                    let updated = sqlx::query(
                        "update sqlite_sequence set seq = max(seq, $2) where name = $1",
                    )
                    .bind(name)
                    .bind(value)
                    .execute(&mut **tx)
                    .await?
                    .rows_affected();
                    if updated == 0 {
                        sqlx::query("insert into sqlite_sequence (name, seq) values ($1, $2)")
                            .bind(name)
                            .bind(value)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
            }
            DataTx::Postgres(tx) => {
                for table in tables {
                    for (seq, column) in pg_serial_columns(tx, table).await? {
                        let max: i64 = sqlx::query_scalar(&format!(
                            "select coalesce(max(cast({} as bigint)), 0) from {}",
                            quote(&column),
                            quote(&table.name)
                        ))
                        .fetch_one(&mut **tx)
                        .await?;
                        let last = max.max(recorded.get(&table.name).copied().unwrap_or(0));
                        sqlx::query("select setval(cast($1 as regclass), $2, false)")
                            .bind(&seq)
                            .bind(last + 1)
                            .execute(&mut **tx)
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// SQLite keeps `autoincrement` counters in `sqlite_sequence`, created with the
/// first such table.
async fn has_sqlite_sequence(tx: &mut Transaction<'static, Sqlite>) -> anyhow::Result<bool> {
    let tables: i64 = sqlx::query_scalar(
        "select count(*) from sqlite_master where type = 'table' and name = 'sqlite_sequence'",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(tables > 0)
}

/// The sequences behind a PostgreSQL table's serial or identity columns, with the
/// column each one feeds.
async fn pg_serial_columns(
    tx: &mut Transaction<'static, Postgres>,
    table: &Table,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for column in table.columns.iter().filter(|c| c.ty == ColumnType::Int) {
        let seq: Option<String> = sqlx::query_scalar("select pg_get_serial_sequence($1, $2)")
            .bind(quote(&table.name))
            .bind(&column.name)
            .fetch_one(&mut **tx)
            .await?;
        if let Some(seq) = seq {
            out.push((seq, column.name.clone()));
        }
    }
    Ok(out)
}
