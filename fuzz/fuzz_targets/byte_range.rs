//! Range headers come from any client, on downloads and public share links. A
//! parsed range always lies inside the file, and for the plain `bytes=A-B`, `A-`
//! and `-N` forms the result matches RFC 9110 (numbers beyond u64 are ignored).
#![no_main]

use arbitrary::Arbitrary;
use ferry::domain::{ByteRange, RangeError};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    header: String,
    len: u64,
    small: bool,
}

/// RFC 9110 14.1.2 for the strict single-range grammar; None when `spec` is not
/// in it.
fn reference(spec: &str, len: u64) -> Option<Result<(u64, u64), RangeError>> {
    let rest = spec.strip_prefix("bytes=")?;
    let (first, last) = rest.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        if !digits(last) {
            return None;
        }
        let Ok(suffix) = last.parse::<u64>() else {
            return Some(Err(RangeError::Ignore));
        };
        if suffix == 0 || len == 0 {
            return Some(Err(RangeError::Unsatisfiable));
        }
        return Some(Ok((len.saturating_sub(suffix), len - 1)));
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return None;
    }
    let Ok(start) = first.parse::<u64>() else {
        return Some(Err(RangeError::Ignore));
    };
    let end = if last.is_empty() {
        None
    } else {
        match last.parse::<u64>() {
            Ok(e) => Some(e),
            Err(_) => return Some(Err(RangeError::Ignore)),
        }
    };
    if end.is_some_and(|e| e < start) {
        // An invalid range-spec: a server may ignore or reject it.
        return None;
    }
    if start >= len {
        return Some(Err(RangeError::Unsatisfiable));
    }
    Some(Ok((start, end.unwrap_or(len - 1).min(len - 1))))
}

fuzz_target!(|input: Input| {
    // Small lengths reach the edges (empty and one-byte files) more often.
    let len = if input.small {
        input.len % 4
    } else {
        input.len
    };
    let parsed = ByteRange::parse(&input.header, len);
    if let Ok(r) = &parsed {
        assert!(r.start <= r.end, "{r:?}");
        assert!(r.end < len, "{r:?} outside a file of {len} bytes");
        assert_eq!(r.len(), r.end - r.start + 1);
        assert!(!r.is_empty());
    }
    if let Some(want) = reference(&input.header, len) {
        let got = parsed.map(|r| (r.start, r.end));
        assert_eq!(got, want, "{:?} on {len} bytes", input.header);
    }
});
