//! Which database errors mean "not now" rather than "wrong": the one place that
//! knows each backend's words for a database that is away or too busy. Requests
//! that meet one are worth retrying; every other database error is a fault.

use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

/// SQLite's primary result codes for another connection holding the file
/// (`SQLITE_BUSY`, past the busy timeout) or a table (`SQLITE_LOCKED`). Extended
/// codes keep the primary one in their low byte.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// Whether the database cannot serve right now but should again soon: the server
/// restarting or shutting down, a connection refused, reset or ended by the
/// server, no connection free within the pool's wait, or (SQLite) the file still
/// locked by another writer when the busy timeout ran out.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        // Refused, reset, or closed under a query: the server is away.
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // Every connection stayed busy, or none could be opened, for the whole wait.
        sqlx::Error::PoolTimedOut => true,
        // This process is stopping.
        sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            if db.try_downcast_ref::<PgDatabaseError>().is_some() {
                postgres_unavailable(&code)
            } else if db.try_downcast_ref::<SqliteError>().is_some() {
                sqlite_unavailable(&code)
            } else {
                false
            }
        }
        _ => false,
    }
}

/// PostgreSQL's SQLSTATEs for a server that is going or not yet back: class 08
/// (connection exceptions), 57P01 `admin_shutdown` ("terminating connection due to
/// administrator command"), 57P02 `crash_shutdown`, 57P03 `cannot_connect_now`
/// ("the database system is shutting down" or "starting up"), and 53300
/// `too_many_connections`.
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || matches!(sqlstate, "57P01" | "57P02" | "57P03" | "53300")
}

/// SQLite reports its extended result code, in decimal.
fn sqlite_unavailable(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|code| matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_and_pool_timeouts_are_unavailable() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_unavailable(&sqlx::Error::Io(refused)));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(is_unavailable(&sqlx::Error::Io(reset)));
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::PoolClosed));
    }

    #[test]
    fn faults_in_ferry_are_not_unavailable() {
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("id".into())));
        assert!(!is_unavailable(&sqlx::Error::Protocol(
            "bad message".into()
        )));
    }

    #[test]
    fn postgres_shutdown_and_connection_states_are_unavailable() {
        for code in [
            "57P01", "57P02", "57P03", "53300", "08006", "08003", "08000",
        ] {
            assert!(postgres_unavailable(code), "{code}");
        }
        // A unique violation, a syntax error, a lock timeout: Ferry's to handle.
        for code in ["23505", "42601", "55P03", "40001"] {
            assert!(!postgres_unavailable(code), "{code}");
        }
    }

    #[test]
    fn sqlite_busy_and_locked_are_unavailable() {
        // SQLITE_BUSY, SQLITE_BUSY_SNAPSHOT, SQLITE_BUSY_TIMEOUT, SQLITE_LOCKED.
        for code in ["5", "517", "773", "6"] {
            assert!(sqlite_unavailable(code), "{code}");
        }
        // SQLITE_CONSTRAINT_UNIQUE, SQLITE_FULL, SQLITE_CORRUPT.
        for code in ["2067", "13", "11", ""] {
            assert!(!sqlite_unavailable(code), "{code}");
        }
    }
}
