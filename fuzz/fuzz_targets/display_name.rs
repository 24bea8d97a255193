//! Filenames from uploads (multipart `filename`, `?name=`) become display names and
//! Content-Disposition headers. Whatever the input: no path, no control or bidi
//! characters, a bounded length, cleaning is stable, and the header is valid and
//! carries the name exactly.
#![no_main]

use axum::http::HeaderValue;
use ferry::domain::DisplayName;
use libfuzzer_sys::fuzz_target;

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii escape");
            out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let name = DisplayName::clean(&raw);
    let s = name.as_str();

    assert!(!s.is_empty(), "empty name for {raw:?}");
    assert!(
        s.chars().count() <= DisplayName::MAX_CHARS,
        "too long: {s:?}"
    );
    assert!(!s.contains(['/', '\\']), "a path: {s:?}");
    assert!(
        !s.chars().any(|c| c.is_control() || is_bidi_control(c)),
        "control or bidi character kept: {s:?}"
    );
    assert!(
        !s.contains(['"', '<', '>', '|', ':', '*', '?']),
        "special character kept: {s:?}"
    );
    assert!(!s.starts_with('.'), "a hidden (dot) file: {s:?}");
    assert_eq!(s, s.trim(), "untrimmed: {s:?}");
    // Downloads clean the stored name again: the result must not change.
    assert_eq!(
        DisplayName::clean(s).as_str(),
        s,
        "cleaning is not stable for {raw:?}"
    );

    for inline in [false, true] {
        let header = name.content_disposition(inline);
        assert!(
            HeaderValue::from_str(&header).is_ok(),
            "invalid header {header:?}"
        );
        let kind = if inline { "inline; " } else { "attachment; " };
        assert!(header.starts_with(kind), "{header:?}");
        let rest = &header[kind.len()..];
        let fallback = rest
            .strip_prefix("filename=\"")
            .and_then(|r| r.split_once("\"; filename*=UTF-8''"))
            .unwrap_or_else(|| panic!("unexpected shape: {header:?}"));
        assert!(
            !fallback.0.contains(['"', '\\']),
            "quote or backslash in {header:?}"
        );
        assert!(fallback.0.is_ascii(), "{header:?}");
        assert_eq!(
            percent_decode(fallback.1),
            s.as_bytes(),
            "filename* does not carry the name: {header:?}"
        );
    }
});
