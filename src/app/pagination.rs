//! Keyset pagination: a page is fetched with one row more than it shows, and that
//! extra row says whether an older page follows. The cursor is the id of the last
//! row shown.

use std::sync::Arc;

use crate::error::{AppError, Result};

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 200;

/// A requested page size, checked.
pub fn limit(requested: Option<i64>) -> Result<i64> {
    let limit = requested.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AppError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    Ok(limit)
}

/// Rows of one page; shares the rows it was cut from (the store may keep them).
pub struct Page<T> {
    rows: Arc<[T]>,
    shown: usize,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` were fetched with a limit of `limit + 1`.
    pub fn new(rows: Arc<[T]>, limit: i64, cursor_of: impl Fn(&T) -> String) -> Self {
        let limit = usize::try_from(limit).unwrap_or(0);
        let shown = rows.len().min(limit);
        let next_cursor = if rows.len() > limit {
            rows[..shown].last().map(cursor_of)
        } else {
            None
        };
        Self {
            rows,
            shown,
            next_cursor,
        }
    }

    pub fn items(&self) -> &[T] {
        &self.rows[..self.shown]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extra_row_makes_a_cursor() {
        let full = Page::new(Arc::from(vec![5, 4, 3]), 2, |n| n.to_string());
        assert_eq!(full.items(), &[5, 4]);
        assert_eq!(full.next_cursor.as_deref(), Some("4"));
        let last = Page::new(Arc::from(vec![2, 1]), 2, |n| n.to_string());
        assert_eq!(last.items(), &[2, 1]);
        assert_eq!(last.next_cursor, None);
        let empty = Page::new(Arc::from(Vec::<i32>::new()), 2, |n| n.to_string());
        assert!(empty.items().is_empty() && empty.next_cursor.is_none());
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(limit(None).ok(), Some(DEFAULT_LIMIT));
        assert_eq!(limit(Some(MAX_LIMIT)).ok(), Some(MAX_LIMIT));
        assert!(limit(Some(0)).is_err());
        assert!(limit(Some(MAX_LIMIT + 1)).is_err());
    }
}
