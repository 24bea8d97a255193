//! The table list: which tables and columns a database has (from its own catalog),
//! the order they load in, and the SQL that reads and fills each one.

use std::collections::BTreeSet;

use anyhow::bail;
use serde::{Deserialize, Serialize};

use super::DataTx;

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
    pub(super) select_sql: String,
}

impl DataTx {
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

pub(super) fn quote(name: &str) -> String {
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

pub(super) fn insert_sql(table: &Table, rows: usize) -> String {
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
