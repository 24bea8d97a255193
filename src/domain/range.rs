//! Byte ranges from `Range` headers. Ferry's own parser rather than a crate's: it
//! is small, handles exactly the single ranges Ferry serves, and is fuzzed.

/// A byte range from a `Range` header, resolved against the file length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    /// Inclusive.
    pub end: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum RangeError {
    /// Syntax we do not serve (multiple ranges, other units): send the whole file.
    Ignore,
    /// Valid syntax but outside the file: 416.
    Unsatisfiable,
}

impl ByteRange {
    /// Parse a single `bytes=` range (RFC 9110 14.1.2).
    pub fn parse(header: &str, len: u64) -> Result<Self, RangeError> {
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or(RangeError::Ignore)?
            .trim();
        if spec.contains(',') {
            return Err(RangeError::Ignore);
        }
        let (first, last) = spec.split_once('-').ok_or(RangeError::Ignore)?;
        let (first, last) = (first.trim(), last.trim());
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if first.is_empty() {
            if !digits(last) {
                return Err(RangeError::Ignore);
            }
            let suffix: u64 = last.parse().map_err(|_| RangeError::Ignore)?;
            if suffix == 0 || len == 0 {
                return Err(RangeError::Unsatisfiable);
            }
            return Ok(Self {
                start: len.saturating_sub(suffix),
                end: len - 1,
            });
        }
        if !digits(first) || !(last.is_empty() || digits(last)) {
            return Err(RangeError::Ignore);
        }
        let start: u64 = first.parse().map_err(|_| RangeError::Ignore)?;
        if start >= len {
            return Err(RangeError::Unsatisfiable);
        }
        let end = if last.is_empty() {
            len - 1
        } else {
            last.parse::<u64>()
                .map_err(|_| RangeError::Ignore)?
                .min(len - 1)
        };
        if end < start {
            return Err(RangeError::Ignore);
        }
        Ok(Self { start, end })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let r = |h| ByteRange::parse(h, 1000);
        assert_eq!(r("bytes=0-99"), Ok(ByteRange { start: 0, end: 99 }));
        assert_eq!(
            r("bytes=900-"),
            Ok(ByteRange {
                start: 900,
                end: 999
            })
        );
        assert_eq!(
            r("bytes=-100"),
            Ok(ByteRange {
                start: 900,
                end: 999
            })
        );
        assert_eq!(r("bytes=-5000"), Ok(ByteRange { start: 0, end: 999 }));
        assert_eq!(
            r("bytes=990-5000"),
            Ok(ByteRange {
                start: 990,
                end: 999
            })
        );
        assert_eq!(r("bytes=1000-"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=-0"), Err(RangeError::Unsatisfiable));
        assert_eq!(r("bytes=5-1"), Err(RangeError::Ignore));
        assert_eq!(r("bytes=0-1,5-6"), Err(RangeError::Ignore));
        assert_eq!(r("items=0-1"), Err(RangeError::Ignore));
        assert_eq!(r("bytes=+1-2"), Err(RangeError::Ignore));
        assert_eq!(r("bytes=99999999999999999999999-"), Err(RangeError::Ignore));
        assert_eq!(
            ByteRange::parse("bytes=0-", 0),
            Err(RangeError::Unsatisfiable)
        );
    }
}
