//! File names and content types: what is safe to show of a name a client sent, and
//! what a browser may display inline.

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

/// What a note is served as.
pub const NOTE_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

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
}
