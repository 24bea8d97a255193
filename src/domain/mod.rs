//! Domain values parsed from untrusted input. Each type can only hold a valid value.

use std::time::Duration;

use serde::Serialize;

mod checksum;
mod files;
mod range;
pub mod zip;

pub use checksum::{Checksum, ChecksumAlgorithm, Hasher};
pub use files::{DisplayName, NOTE_CONTENT_TYPE, content_type_for, is_inline_safe};
pub use range::{ByteRange, RangeError};

/// How long an item lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Expiry {
    Never,
    Hour,
    Day,
    Week,
    Month,
}

impl Expiry {
    pub const ALL: [Expiry; 5] = [
        Expiry::Never,
        Expiry::Hour,
        Expiry::Day,
        Expiry::Week,
        Expiry::Month,
    ];

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "never" | "" => Ok(Self::Never),
            "1h" => Ok(Self::Hour),
            "1d" => Ok(Self::Day),
            "7d" => Ok(Self::Week),
            "30d" => Ok(Self::Month),
            other => Err(format!(
                "expiry {other:?} is not one of never, 1h, 1d, 7d, 30d"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::Hour => "1h",
            Self::Day => "1d",
            Self::Week => "7d",
            Self::Month => "30d",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Never => "Never",
            Self::Hour => "1 hour",
            Self::Day => "1 day",
            Self::Week => "7 days",
            Self::Month => "30 days",
        }
    }

    pub fn duration(self) -> Option<Duration> {
        let hours = match self {
            Self::Never => return None,
            Self::Hour => 1,
            Self::Day => 24,
            Self::Week => 24 * 7,
            Self::Month => 24 * 30,
        };
        Some(Duration::from_secs(hours * 3600))
    }

    /// Expiry instant in unix milliseconds, counted from `now_ms`.
    pub fn expires_at(self, now_ms: i64) -> Option<i64> {
        self.duration()
            .map(|d| now_ms.saturating_add(d.as_millis() as i64))
    }
}

/// A count of bytes, shown to people in binary units: 1536 reads "1.5 KiB".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit < UNITS.len() - 1 {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", UNITS[unit])
        }
    }
}

/// What an item holds. Stored as its `as_str` text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Note,
    File,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Note => "note",
            Self::File => "file",
        }
    }
}

/// Rows written by any version hold one of the two; anything else reads as a file.
impl From<String> for ItemKind {
    fn from(s: String) -> Self {
        if s == "note" { Self::Note } else { Self::File }
    }
}

/// The time now as unix milliseconds, the form every instant is stored in.
pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A unix-millisecond instant as RFC 3339 text, in UTC.
pub fn rfc3339(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Opaque pagination cursor: the id of the last item of the previous page.
pub fn parse_cursor(s: &str) -> Result<uuid::Uuid, String> {
    uuid::Uuid::parse_str(s.trim()).map_err(|_| format!("cursor {s:?} is not valid"))
}

/// Item ids are UUIDs; anything else is a 404 rather than a database query.
pub fn parse_item_id(s: &str) -> Option<uuid::Uuid> {
    uuid::Uuid::parse_str(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(3 * 1024 * 1024 * 1024).to_string(), "3.0 GiB");
    }

    #[test]
    fn expiry_round_trips() {
        for e in Expiry::ALL {
            assert_eq!(Expiry::parse(e.as_str()), Ok(e));
        }
        assert!(Expiry::parse("2h").is_err());
        assert_eq!(Expiry::Hour.expires_at(0), Some(3_600_000));
        assert_eq!(Expiry::Never.expires_at(0), None);
    }
}
