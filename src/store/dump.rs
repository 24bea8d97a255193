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

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use futures_util::TryStreamExt;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlx::{Postgres, Sqlite, Transaction};

use super::Store;

/// One row: column name to value (string, integer, boolean or null).
pub type Row = Map<String, Value>;

/// Rows per insert statement are limited to this many bound values.
const MAX_BIND_VALUES: usize = 900;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Text,
    Int,
    Bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
}

/// Whether two descriptions of a table have the same columns, in any order.
pub fn same_columns(a: &[Column], b: &[Column]) -> bool {
    let by_name = |columns: &[Column]| {
        let mut sorted = columns.to_vec();
        sorted.sort_by(|x, y| x.name.cmp(&y.name));
        sorted
    };
    by_name(a) == by_name(b)
}

/// A table as the catalog describes it.
#[derive(Clone, Debug)]
pub struct Table {
    pub name: String,
    /// In the database's column order.
    pub columns: Vec<Column>,
    /// Tables this one references by foreign key.
    pub parents: BTreeSet<String>,
    select_sql: String,
}

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

/// A value ready to bind, typed by its column.
enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
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

    /// Every application table (migration bookkeeping and SQLite internals aside),
    /// parents before the tables that reference them.
    pub async fn tables(&mut self) -> anyhow::Result<Vec<Table>> {
        let mut tables = Vec::new();
        match self {
            DataTx::Sqlite(tx) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "select name from sqlite_master where type = 'table' \
                     and name not like 'sqlite\\_%' escape '\\' and name not like '\\_sqlx%' escape '\\' \
                     order by name",
                )
                .fetch_all(&mut **tx)
                .await?;
                for name in names {
                    check_identifier(&name)?;
                    let cols: Vec<(String, String, i64)> = sqlx::query_as(
                        "select name, type, pk from pragma_table_info($1) order by cid",
                    )
                    .bind(&name)
                    .fetch_all(&mut **tx)
                    .await?;
                    let parents: Vec<String> =
                        sqlx::query_scalar("select \"table\" from pragma_foreign_key_list($1)")
                            .bind(&name)
                            .fetch_all(&mut **tx)
                            .await?;
                    let mut key: Vec<(i64, String)> = cols
                        .iter()
                        .filter(|(_, _, pk)| *pk > 0)
                        .map(|(n, _, pk)| (*pk, n.clone()))
                        .collect();
                    key.sort();
                    let columns = cols
                        .iter()
                        .map(|(n, ty, _)| column(&name, n, ty))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let key = key.into_iter().map(|(_, n)| n).collect();
                    tables.push(Table::new(name, columns, parents, key, false));
                }
            }
            DataTx::Postgres(tx) => {
                let names: Vec<String> = sqlx::query_scalar(
                    "select cast(table_name as text) from information_schema.tables \
                     where table_schema = current_schema() and table_type = 'BASE TABLE' \
                     and table_name not like '\\_sqlx%' order by 1",
                )
                .fetch_all(&mut **tx)
                .await?;
                for name in names {
                    check_identifier(&name)?;
                    let cols: Vec<(String, String)> = sqlx::query_as(
                        "select cast(column_name as text), cast(data_type as text) \
                         from information_schema.columns \
                         where table_schema = current_schema() and table_name = $1 \
                         order by ordinal_position",
                    )
                    .bind(&name)
                    .fetch_all(&mut **tx)
                    .await?;
                    let key: Vec<String> = sqlx::query_scalar(
                        "select cast(a.attname as text) from pg_index i \
                         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey) \
                         where i.indrelid = cast(cast($1 as text) as regclass) and i.indisprimary \
                         order by array_position(cast(i.indkey as int2[]), a.attnum)",
                    )
                    .bind(quote(&name))
                    .fetch_all(&mut **tx)
                    .await?;
                    let parents: Vec<String> = sqlx::query_scalar(
                        "select cast(p.relname as text) from pg_constraint c \
                         join pg_class p on p.oid = c.confrelid \
                         where c.contype = 'f' and c.conrelid = cast(cast($1 as text) as regclass)",
                    )
                    .bind(quote(&name))
                    .fetch_all(&mut **tx)
                    .await?;
                    let columns = cols
                        .iter()
                        .map(|(n, ty)| column(&name, n, ty))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    tables.push(Table::new(name, columns, parents, key, true));
                }
            }
        }
        order_by_dependencies(tables)
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
                let exists: i64 = sqlx::query_scalar(
                    "select count(*) from sqlite_master where type = 'table' and name = 'sqlite_sequence'",
                )
                .fetch_one(&mut **tx)
                .await?;
                if exists > 0 {
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
                let exists: i64 = sqlx::query_scalar(
                    "select count(*) from sqlite_master where type = 'table' and name = 'sqlite_sequence'",
                )
                .fetch_one(&mut **tx)
                .await?;
                if exists == 0 {
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

impl Table {
    fn new(
        name: String,
        columns: Vec<Column>,
        parents: Vec<String>,
        mut key: Vec<String>,
        postgres: bool,
    ) -> Self {
        if key.is_empty() {
            // No primary key: every column, which orders distinct rows fully.
            key = columns.iter().map(|c| c.name.clone()).collect();
        }
        let select = columns
            .iter()
            .map(|c| match c.ty {
                // sqlx decodes only bigint as i64 on PostgreSQL.
                ColumnType::Int if postgres => {
                    format!("cast({} as bigint) as {}", quote(&c.name), quote(&c.name))
                }
                _ => quote(&c.name),
            })
            .collect::<Vec<_>>()
            .join(", ");
        // Byte order on both backends: SQLite compares text with memcmp, PostgreSQL's
        // "C" collation does the same whatever the database's locale.
        let order = key
            .iter()
            .map(|k| {
                let text = columns
                    .iter()
                    .any(|c| &c.name == k && c.ty == ColumnType::Text);
                if postgres && text {
                    format!("{} collate \"C\"", quote(k))
                } else {
                    quote(k)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let select_sql = format!("select {select} from {} order by {order}", quote(&name));
        let parents = parents.into_iter().filter(|p| p != &name).collect();
        Self {
            name,
            columns,
            parents,
            select_sql,
        }
    }
}

/// Row count and SHA-256 of a table's canonical lines (each line `row_line` plus a
/// newline): exactly the bytes of the table's file in a backup archive.
#[derive(Clone, Debug, Default)]
pub struct TableSum {
    pub rows: u64,
    pub bytes: u64,
    hasher: Sha256,
}

impl TableSum {
    pub fn add(&mut self, line: &str) {
        self.rows += 1;
        self.bytes += line.len() as u64 + 1;
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
    }

    pub fn sha256(&self) -> String {
        crate::blobs::hex(&self.hasher.clone().finalize())
    }
}

/// One row as a canonical JSON line (keys in name order, no trailing newline).
pub fn row_line(row: &Row) -> anyhow::Result<String> {
    let mut keys: Vec<&String> = row.keys().collect();
    keys.sort();
    // Written by hand so that the key order does not depend on serde_json's features.
    let mut line = String::from("{");
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(key)?);
        line.push(':');
        line.push_str(&serde_json::to_string(&row[key])?);
    }
    line.push('}');
    Ok(line)
}

fn column(table: &str, name: &str, declared: &str) -> anyhow::Result<Column> {
    check_identifier(name)?;
    let t = declared.to_ascii_lowercase();
    let ty = if t.contains("int") {
        ColumnType::Int
    } else if t.contains("bool") {
        ColumnType::Bool
    } else if t.contains("text") || t.contains("char") || t.contains("clob") {
        ColumnType::Text
    } else {
        bail!("{table}.{name} has type {declared:?}, which backups cannot copy yet");
    };
    Ok(Column {
        name: name.to_string(),
        ty,
    })
}

/// Table and column names come from the catalog or an archive; only plain
/// lowercase identifiers are accepted, so quoting them is always safe.
pub fn check_identifier(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !ok {
        bail!("unexpected table or column name {name:?}");
    }
    Ok(())
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// Parents first; a cycle (which Ferry's schema does not have) is an error.
fn order_by_dependencies(mut pending: Vec<Table>) -> anyhow::Result<Vec<Table>> {
    let names: BTreeSet<String> = pending.iter().map(|t| t.name.clone()).collect();
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let (ready, rest): (Vec<Table>, Vec<Table>) = pending.into_iter().partition(|t| {
            t.parents
                .iter()
                .all(|p| done.contains(p) || !names.contains(p))
        });
        if ready.is_empty() {
            let stuck: Vec<&str> = rest.iter().map(|t| t.name.as_str()).collect();
            bail!("foreign keys form a cycle between {stuck:?}");
        }
        done.extend(ready.iter().map(|t| t.name.clone()));
        ordered.extend(ready);
        pending = rest;
    }
    Ok(ordered)
}

fn decode<R>(row: &R, columns: &[Column]) -> anyhow::Result<Row>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    bool: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let mut out = Row::new();
    let mut order: Vec<(usize, &Column)> = columns.iter().enumerate().collect();
    order.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    for (i, column) in order {
        let value = match column.ty {
            ColumnType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::from),
            ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
            ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::from),
        };
        out.insert(column.name.clone(), value.unwrap_or(Value::Null));
    }
    Ok(out)
}

fn bind_values(table: &Table, row: &Row) -> anyhow::Result<Vec<Bind>> {
    if row.len() != table.columns.len() {
        let expected: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let got: Vec<&String> = row.keys().collect();
        bail!(
            "a row of {} has columns {got:?}, expected {expected:?}",
            table.name
        );
    }
    table
        .columns
        .iter()
        .map(|c| {
            let value = row
                .get(&c.name)
                .with_context(|| format!("a row of {} has no column {}", table.name, c.name))?;
            let wrong = || {
                anyhow::anyhow!(
                    "{}.{}: {value} is not a {:?} value",
                    table.name,
                    c.name,
                    c.ty
                )
            };
            Ok(match (c.ty, value) {
                (ColumnType::Text, Value::Null) => Bind::Text(None),
                (ColumnType::Int, Value::Null) => Bind::Int(None),
                (ColumnType::Bool, Value::Null) => Bind::Bool(None),
                (ColumnType::Text, Value::String(s)) => Bind::Text(Some(s.clone())),
                (ColumnType::Int, Value::Number(n)) => {
                    Bind::Int(Some(n.as_i64().ok_or_else(wrong)?))
                }
                (ColumnType::Bool, Value::Bool(b)) => Bind::Bool(Some(*b)),
                _ => return Err(wrong()),
            })
        })
        .collect()
}

fn insert_sql(table: &Table, rows: usize) -> String {
    let width = table.columns.len();
    let columns = table
        .columns
        .iter()
        .map(|c| quote(&c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let values = (0..rows)
        .map(|r| {
            let params = (1..=width)
                .map(|c| format!("${}", r * width + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({params})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "insert into {} ({columns}) values {values}",
        quote(&table.name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str, parents: &[&str]) -> Table {
        Table::new(
            name.into(),
            vec![Column {
                name: "id".into(),
                ty: ColumnType::Text,
            }],
            parents.iter().map(|p| p.to_string()).collect(),
            vec!["id".into()],
            true,
        )
    }

    #[test]
    fn parents_come_first() {
        let ordered = order_by_dependencies(vec![
            table("shares", &["items", "users"]),
            table("items", &["users"]),
            table("users", &[]),
            table("events", &[]),
        ])
        .expect("order");
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["users", "events", "items", "shares"]);
        assert!(order_by_dependencies(vec![table("a", &["b"]), table("b", &["a"])]).is_err());
    }

    #[test]
    fn lines_are_canonical() {
        let mut row = Row::new();
        row.insert("z".into(), Value::from(1));
        row.insert("a".into(), Value::from("x\"y"));
        row.insert("m".into(), Value::Null);
        assert_eq!(
            row_line(&row).expect("line"),
            r#"{"a":"x\"y","m":null,"z":1}"#
        );
    }

    #[test]
    fn select_orders_bytewise_and_inserts_batch() {
        let t = table("items", &[]);
        assert_eq!(
            t.select_sql,
            "select \"id\" from \"items\" order by \"id\" collate \"C\""
        );
        assert_eq!(
            insert_sql(&t, 2),
            "insert into \"items\" (\"id\") values ($1), ($2)"
        );
        assert!(check_identifier("api_tokens").is_ok());
        assert!(check_identifier("x\"; drop").is_err());
    }
}
