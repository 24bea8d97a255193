//! Row encoding: a row as typed JSON values, its canonical line and the checksum of
//! a table's lines, and the conversions from and to database values.

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::tables::{Column, ColumnType, Table};

/// One row: column name to value (string, integer, boolean or null).
pub type Row = Map<String, Value>;

/// A value ready to bind, typed by its column.
pub(super) enum Bind {
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
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

pub(super) fn decode<R>(row: &R, columns: &[Column]) -> anyhow::Result<Row>
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

pub(super) fn bind_values(table: &Table, row: &Row) -> anyhow::Result<Vec<Bind>> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
