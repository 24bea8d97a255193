//! Domain values parsed from untrusted input. Each type can only hold a valid value.

use std::time::Duration;

use serde::Serialize;

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

/// A filename safe to show and to put in a Content-Disposition header. It is never
/// used as a path: blobs are stored under the item id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_CHARS: usize = 200;

    /// Keep the last path component, drop control and bidirectional-formatting
    /// characters and characters that are special in headers or on common
    /// filesystems, drop leading dots and spaces, and cap the length. Cleaning a
    /// cleaned name changes nothing.
    pub fn clean(raw: &str) -> Self {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
        let kept: String = last
            .chars()
            .filter(|c| {
                !c.is_control()
                    && !is_bidi_control(*c)
                    && !matches!(c, '"' | '<' | '>' | '|' | ':' | '*' | '?')
            })
            .collect();
        // Dots and spaces in any order: ". .bashrc" is as hidden as ".bashrc".
        let mut cleaned = kept
            .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
            .trim_end()
            .to_string();
        if cleaned.chars().count() > Self::MAX_CHARS {
            // Keep the extension when shortening, it decides how the file opens.
            let ext: String = match cleaned.rsplit_once('.') {
                Some((_, ext)) if ext.chars().count() <= 16 => format!(".{ext}"),
                _ => String::new(),
            };
            let keep = Self::MAX_CHARS - ext.chars().count();
            let head: String = cleaned.chars().take(keep).collect();
            cleaned = head.trim_end().to_string() + &ext;
        }
        if cleaned.is_empty() {
            cleaned = "file".into();
        }
        Self(cleaned)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// RFC 6266 header value: an ASCII fallback plus the UTF-8 name.
    pub fn content_disposition(&self, inline: bool) -> String {
        let kind = if inline { "inline" } else { "attachment" };
        let ascii: String = self
            .0
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '_'
                }
            })
            .filter(|c| *c != '\\' && *c != '"')
            .collect();
        let mut encoded = String::new();
        for b in self.0.bytes() {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
    }
}

/// Characters that reorder how text is shown (overrides, embeddings, isolates
/// and marks): "evil\u{202e}gpj.exe" would show as "evilexe.jpg".
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Content type guessed from the extension; browsers' claims are not trusted.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map_or("", |(_, ext)| ext);
    match mime_guess::from_ext(ext).first_raw() {
        // Ferry serves text as UTF-8; `is_inline_safe` knows these exact values.
        Some("text/plain") => "text/plain; charset=utf-8",
        Some("text/csv") => "text/csv; charset=utf-8",
        Some("text/html") => "text/html; charset=utf-8",
        // Shown inline as plain text, as before: `is_inline_safe` does not list
        // text/markdown, so mime_guess's type would make .md a download.
        Some("text/markdown") => "text/plain; charset=utf-8",
        Some(known) => known,
        None => "application/octet-stream",
    }
}

/// Types a browser may show inline. Everything else, including HTML and SVG
/// (scriptable), is sent as an attachment.
pub fn is_inline_safe(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png"
            | "image/jpeg"
            | "image/gif"
            | "image/webp"
            | "image/avif"
            | "application/pdf"
            | "text/plain; charset=utf-8"
            | "video/mp4"
            | "video/webm"
            | "audio/mpeg"
            | "audio/ogg"
    )
}

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
    fn content_types_come_from_the_extension() {
        let cases = [
            ("photo.jpg", "image/jpeg"),
            ("photo.JPEG", "image/jpeg"),
            ("scan.png", "image/png"),
            ("a.gif", "image/gif"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("a.pdf", "application/pdf"),
            ("notes.txt", "text/plain; charset=utf-8"),
            ("server.log", "text/plain; charset=utf-8"),
            ("README.md", "text/plain; charset=utf-8"),
            ("table.csv", "text/csv; charset=utf-8"),
            ("a.json", "application/json"),
            ("a.zip", "application/zip"),
            ("backup.tar.gz", "application/gzip"),
            ("a.tar", "application/x-tar"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("a.mp3", "audio/mpeg"),
            ("a.ogg", "audio/ogg"),
            ("a.svg", "image/svg+xml"),
            ("page.html", "text/html; charset=utf-8"),
            ("page.htm", "text/html; charset=utf-8"),
            ("two.bin", "application/octet-stream"),
            ("no-extension", "application/octet-stream"),
            ("trailing.", "application/octet-stream"),
            ("a.unknown-extension", "application/octet-stream"),
        ];
        for (name, expected) in cases {
            assert_eq!(content_type_for(name), expected, "{name}");
        }
        assert!(is_inline_safe(content_type_for("README.md")));
        assert!(!is_inline_safe(content_type_for("page.html")));
        assert!(!is_inline_safe(content_type_for("a.svg")));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(ByteSize(512).to_string(), "512 B");
        assert_eq!(ByteSize(1536).to_string(), "1.5 KiB");
        assert_eq!(ByteSize(3 * 1024 * 1024 * 1024).to_string(), "3.0 GiB");
    }

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        let cases = [
            ("../../etc/passwd", "passwd"),
            ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
            ("/", "file"),
            ("..", "file"),
            (".bashrc", "bashrc"),
            ("a\u{0}b\nc\r.txt", "abc.txt"),
            ("report \"final\".pdf", "report final.pdf"),
            ("photo.jpg", "photo.jpg"),
            ("Ünïcødé 📷.png", "Ünïcødé 📷.png"),
            ("evil\u{202e}gpj.exe", "evilgpj.exe"),
        ];
        for (raw, want) in cases {
            assert_eq!(DisplayName::clean(raw).as_str(), want, "input {raw:?}");
        }
        let long = format!("{}.tar.gz", "x".repeat(500));
        let cleaned = DisplayName::clean(&long);
        assert_eq!(cleaned.as_str().chars().count(), DisplayName::MAX_CHARS);
        assert!(cleaned.as_str().ends_with(".gz"));
    }

    /// Inputs the `display_name` fuzz target found (fuzz/fuzz_targets/display_name.rs).
    #[test]
    fn fuzz_regressions_for_display_names() {
        // Dots and spaces mixed still made a hidden name.
        assert_eq!(DisplayName::clean(". .\u{fffd}").as_str(), "\u{fffd}");
        assert_eq!(DisplayName::clean(" . .. bashrc").as_str(), "bashrc");
        // Isolates and marks reorder text as overrides do.
        assert_eq!(
            DisplayName::clean("evil\u{2067}gpj\u{2069}.exe").as_str(),
            "evilgpj.exe"
        );
        assert_eq!(DisplayName::clean("a\u{200f}b\u{061c}c").as_str(), "abc");
        // Shortening could end the name in a space that the next cleaning removed.
        let long = format!(
            "{} {}",
            "x".repeat(DisplayName::MAX_CHARS - 1),
            "y".repeat(50)
        );
        let once = DisplayName::clean(&long);
        assert_eq!(once.as_str(), "x".repeat(DisplayName::MAX_CHARS - 1));
        for raw in [long.as_str(), ". .\u{fffd}", "a \u{3000}", "\u{85}x\u{a0}"] {
            let once = DisplayName::clean(raw);
            assert_eq!(DisplayName::clean(once.as_str()), once, "{raw:?}");
        }
    }

    #[test]
    fn content_disposition_is_header_safe() {
        let name = DisplayName::clean("naïve résumé.pdf");
        let v = name.content_disposition(false);
        assert!(
            v.starts_with("attachment; filename=\"na_ve r_sum_.pdf\""),
            "{v}"
        );
        assert!(
            v.contains("filename*=UTF-8''na%C3%AFve%20r%C3%A9sum%C3%A9.pdf"),
            "{v}"
        );
        assert!(v.is_ascii());
    }

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
