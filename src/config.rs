//! Over 450 lines because it is the one settings table and its loader, validation
//! and redaction together, so a setting is added in one place.
//! Typed settings, loaded once: defaults < optional file (`FERRY_CONFIG`) < `FERRY_*`
//! environment. Every setting can instead be read from a file named by
//! `FERRY_<NAME>_FILE` (Docker and compose secrets). Parsing collects every problem
//! so an operator fixes a broken configuration in one pass.
//!
//! Each setting is declared once, in the `settings!` table below; the table gives
//! the `Settings` struct, `SETTINGS` (which docs/configuration.md is checked
//! against), the parser and the redacted listing of `ferry config check`.

mod sources;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::Expiry;
pub use values::{BlobStoreKind, Redacted, parse_duration};
use values::{
    Listed, Parser, is_bucket_name, optional, parse_bool, parse_nets, parse_positive, split_list,
};

/// The log filter when FERRY_LOG is unset (commands other than `serve` then log
/// warnings only; see `telemetry::command_filter`).
pub const DEFAULT_LOG: &str = "info";

/// One documented setting. `docs/configuration.md` is checked against this table.
pub struct SettingDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

/// The first of its arguments: an optional part of a `settings!` entry, or the
/// fallback after it.
macro_rules! first {
    ($first:expr $(, $rest:expr)*) => {
        $first
    };
}

/// Declares the settings. Per entry: the field and its type; `secret: true` for a
/// value never printed; `default`, the raw text parsed when the setting is unset
/// (an expression, which may use settings declared above it); `shown`, the
/// default as documented when it differs from `default`; `expected`, what a valid
/// value is, for error messages; `parse`, from trimmed text to a value; `help`,
/// the line the documentation must contain.
macro_rules! settings {
    ($(
        $name:ident: $ty:ty {
            $(secret: $secret:literal,)?
            default: $default:expr,
            $(shown: $shown:literal,)?
            expected: $expected:literal,
            parse: $parse:expr,
            help: $help:literal $(,)?
        }
    )*) => {
        /// The effective configuration.
        #[derive(Clone, Debug)]
        pub struct Settings {
            $(#[doc = $help] pub $name: $ty,)*
        }

        /// Every setting Ferry reads, with its default as shown to operators.
        pub const SETTINGS: &[SettingDoc] = &[$(SettingDoc {
            key: stringify!($name),
            default: first!($($shown,)? $default),
            secret: first!($($secret,)? false),
            help: $help,
        },)*];

        fn parse(raw: &BTreeMap<String, String>, errors: &mut Vec<String>) -> Settings {
            let mut p = Parser { raw, errors };
            $(let $name: $ty = p.value(
                stringify!($name),
                first!($($secret,)? false),
                &$default,
                $expected,
                $parse,
            );)*
            Settings { $($name,)* }
        }

        impl Settings {
            /// The effective configuration as `KEY=value` lines, secrets redacted.
            pub fn redacted_lines(&self) -> Vec<String> {
                vec![$(format!("{}={}", env_name(stringify!($name)), self.$name.listed()),)*]
            }
        }
    };
}

settings! {
    listen: SocketAddr {
        default: "127.0.0.1:8080",
        expected: "an address:port like 0.0.0.0:8080",
        parse: |s| s.parse().ok(),
        help: "Address and port the HTTP server listens on.",
    }
    data_dir: PathBuf {
        default: "./data",
        expected: "a directory path",
        parse: |s| (!s.is_empty()).then(|| PathBuf::from(s)),
        help: "Directory for the SQLite database, uploaded files (blobs/) and in-progress uploads (tmp/, uploads/).",
    }
    database_url: Secret {
        secret: true,
        default: format!("sqlite://{}", data_dir.join("ferry.db").display()),
        shown: "sqlite://$FERRY_DATA_DIR/ferry.db",
        expected: "a sqlite:// or postgres:// URL",
        parse: |s| (s.starts_with("sqlite:") || is_postgres_url(s)).then(|| Secret::new(s)),
        help: "sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. The scheme picks the backend.",
    }
    public_url: Option<url::Url> {
        default: "",
        shown: "(unset)",
        expected: "an absolute http:// or https:// URL",
        parse: optional(|s| {
            url::Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        }),
        help: "External URL users reach Ferry at, e.g. https://ferry.example.org. Used in links; https makes session cookies Secure.",
    }
    max_upload_bytes: u64 {
        default: "2147483648",
        expected: "a positive number of bytes, at most 2^50 (1 PiB)",
        parse: |s| parse_positive(s).filter(|n| *n <= MAX_UPLOAD_BYTES),
        help: "Largest accepted upload in bytes, enforced while streaming (413).",
    }
    min_free_bytes: u64 {
        default: "268435456",
        expected: "a number of bytes",
        parse: |s| s.parse().ok(),
        help: "Free disk space to keep in the data directory; uploads that would go below it get 507.",
    }
    upload_expiry: Duration {
        default: "24h",
        expected: "a duration like 24h or 7d, at most 3650d",
        parse: |s| parse_duration(s).filter(|d| !d.is_zero() && *d <= MAX_SESSION_TTL),
        help: "How long an unfinished resumable upload is kept after its last chunk; the sweeper then removes it and its bytes.",
    }
    max_unfinished_uploads: u32 {
        default: "20",
        expected: "a number from 1 to 10000",
        parse: |s| s.parse().ok().filter(|n| (1..=10_000).contains(n)),
        help: "Unfinished resumable uploads one user may have at a time.",
    }
    max_note_bytes: usize {
        default: "65536",
        expected: "a positive number of bytes, at most 2^30 (1 GiB)",
        parse: |s| s.parse().ok().filter(|n| (1..=MAX_NOTE_BYTES).contains(n)),
        help: "Largest note text in bytes.",
    }
    default_expiry: Expiry {
        default: "never",
        expected: "one of never, 1h, 1d, 7d, 30d",
        parse: |s| Expiry::parse(s).ok(),
        help: "Expiry preselected for new items: never, 1h, 1d, 7d or 30d.",
    }
    log: String {
        default: DEFAULT_LOG,
        shown: "info",
        expected: "a tracing filter like info or ferry=debug",
        // ASCII first: tracing-subscriber 0.3.23's parser panics on some non-ASCII
        // input (found by the config fuzz target); no valid filter needs it.
        parse: |s| (s.is_ascii() && tracing_subscriber::EnvFilter::try_new(s).is_ok()).then(|| s.to_string()),
        help: "Log filter in tracing's EnvFilter syntax, e.g. info or ferry=debug,tower_http=info.",
    }
    log_format: LogFormat {
        default: "pretty",
        expected: "pretty or json",
        parse: |s| match s {
            "pretty" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            _ => None,
        },
        help: "pretty (human readable) or json (one JSON object per line).",
    }
    migrate_on_start: bool {
        default: "true",
        expected: "true or false",
        parse: parse_bool,
        help: "Apply pending database migrations when the server starts.",
    }
    db_max_connections: u32 {
        default: "10",
        expected: "a number from 1 to 1000",
        parse: |s| s.parse().ok().filter(|n| (1..=1000).contains(n)),
        help: "Size of the database connection pool.",
    }
    shutdown_grace: Duration {
        default: "30s",
        expected: "a duration like 30s, 2m or 30",
        parse: parse_duration,
        help: "How long in-flight requests may run after SIGTERM/SIGINT before they are cut off.",
    }
    trusted_proxies: Vec<IpNet> {
        default: "",
        shown: "(none)",
        expected: "comma-separated networks like 127.0.0.1/32",
        parse: parse_nets,
        help: "Comma-separated networks (CIDR) whose X-Forwarded-For header is believed, e.g. 127.0.0.1/32,172.16.0.0/12.",
    }
    metrics_listen: Option<SocketAddr> {
        default: "",
        shown: "(off)",
        expected: "an address:port like 127.0.0.1:9090",
        parse: optional(|s| s.parse().ok()),
        help: "Separate address serving /metrics only, e.g. 127.0.0.1:9090.",
    }
    metrics_allow: Vec<IpNet> {
        default: "",
        shown: "(none)",
        expected: "comma-separated networks like 10.0.0.0/8",
        parse: parse_nets,
        help: "Comma-separated networks allowed to read /metrics on the main listener.",
    }
    accel_redirect: Option<String> {
        default: "",
        shown: "(off)",
        expected: "a path that starts and ends with /, like /_protected/",
        parse: optional(|s| {
            (s.starts_with('/') && s.ends_with('/') && !s.contains("..")).then(|| s.to_string())
        }),
        help: "Internal nginx location prefix, e.g. /_protected/; downloads then answer with X-Accel-Redirect.",
    }
    blob_store: BlobStoreKind {
        default: "local",
        expected: "local or s3",
        parse: |s| match s {
            "local" => Some(BlobStoreKind::Local),
            "s3" => Some(BlobStoreKind::S3),
            _ => None,
        },
        help: "Where uploaded files are kept: local (FERRY_DATA_DIR/blobs) or s3 (an S3-compatible object store, set up by the S3 settings below).",
    }
    s3_endpoint: Option<url::Url> {
        default: "",
        shown: "(unset)",
        expected: "an http:// or https:// URL like http://127.0.0.1:3900",
        parse: optional(|s| {
            url::Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some() && u.path() == "/")
        }),
        help: "The object store's S3 API URL, e.g. http://127.0.0.1:3900 (Garage) or https://s3.eu-west-1.amazonaws.com.",
    }
    s3_region: String {
        default: "garage",
        expected: "a region name like garage or eu-west-1",
        parse: |s| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')).then(|| s.to_string()),
        help: "The region requests are signed for (Garage: its s3_region, by default garage).",
    }
    s3_bucket: Option<String> {
        default: "",
        shown: "(unset)",
        expected: "a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens",
        parse: optional(|s| is_bucket_name(s).then(|| s.to_string())),
        help: "The bucket that holds the files; it must exist, and the key must be allowed to read and write it.",
    }
    s3_prefix: String {
        default: "",
        shown: "(none)",
        expected: "a key prefix of letters, digits and - _ . / without .. or a leading /",
        parse: |s| {
            (!s.starts_with('/')
                && !s.split('/').any(|part| part == "." || part == "..")
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b)))
            .then(|| s.trim_end_matches('/').to_string())
        },
        help: "Optional key prefix inside the bucket, e.g. ferry/, so several instances can share one bucket.",
    }
    s3_path_style: bool {
        default: "true",
        expected: "true or false",
        parse: parse_bool,
        help: "Path-style requests (ENDPOINT/BUCKET/KEY, as Garage and MinIO expect); false for virtual-hosted style (BUCKET.ENDPOINT/KEY).",
    }
    s3_access_key_id: Option<String> {
        default: "",
        shown: "(unset)",
        expected: "an access key id",
        parse: optional(|s| s.bytes().all(|b| b.is_ascii_graphic()).then(|| s.to_string())),
        help: "The S3 access key id.",
    }
    s3_secret_access_key: Option<Redacted> {
        secret: true,
        default: "",
        shown: "(unset)",
        expected: "a secret access key",
        parse: optional(|s| s.bytes().all(|b| b.is_ascii_graphic()).then(|| Redacted(Secret::new(s)))),
        help: "The S3 secret access key; its _FILE form takes a compose or Docker secret. Never printed.",
    }
    session_ttl: Duration {
        default: "30d",
        expected: "a duration like 12h or 30d, at most 3650d",
        parse: |s| parse_duration(s).filter(|d| !d.is_zero() && *d <= MAX_SESSION_TTL),
        help: "How long a login session lasts.",
    }
    cors_origins: Vec<String> {
        default: "",
        shown: "(none)",
        expected: "comma-separated origins like https://app.example.org",
        parse: |s| {
            split_list(s)
                .map(|o| {
                    url::Url::parse(o)
                        .ok()
                        .filter(|u| u.path() == "/" && !o.ends_with('/'))
                        .map(|_| o.to_string())
                })
                .collect()
        },
        help: "Comma-separated origins allowed to call the API from a browser; none by default.",
    }
}

/// Upper bounds that keep the server's arithmetic in range: item sizes and
/// instants are 64-bit signed in the database, and a note is held in memory.
const MAX_UPLOAD_BYTES: u64 = 1 << 50;
const MAX_NOTE_BYTES: usize = 1 << 30;
const MAX_SESSION_TTL: Duration = Duration::from_secs(3650 * 86_400);

/// A value that must never be printed or logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// All problems found in a configuration, one line each.
#[derive(Debug)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "configuration error: {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Settings {
    /// Load from the process environment (and `FERRY_CONFIG` if set).
    pub fn load() -> Result<Self, ConfigErrors> {
        Self::from_env(std::env::vars())
    }

    /// Load from an explicit environment; tests use this instead of mutating the process.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigErrors> {
        let vars: BTreeMap<String, String> = vars.into_iter().collect();
        let mut errors = Vec::new();
        let raw = sources::collect_raw(&vars, &mut errors);
        let settings = parse(&raw, &mut errors);
        if settings.blob_store == BlobStoreKind::S3 {
            errors.extend(settings.s3_missing());
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// Settings for tests and tools: defaults with the given data directory.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        let vars = [("FERRY_DATA_DIR".to_string(), data_dir.display().to_string())];
        match Self::from_env(vars) {
            Ok(settings) => settings,
            // Only the data dir is set and defaults are valid by construction.
            Err(errors) => panic!("default settings are invalid: {errors}"),
        }
    }

    /// What the S3 store still needs, one line per missing setting.
    pub fn s3_missing(&self) -> Vec<String> {
        let needs = |key: &str, what: &str| format!("FERRY_BLOB_STORE=s3 needs {key}: {what}");
        let mut missing = Vec::new();
        if self.s3_endpoint.is_none() {
            missing.push(needs(
                "FERRY_S3_ENDPOINT",
                "the object store's URL, e.g. http://127.0.0.1:3900",
            ));
        }
        if self.s3_bucket.is_none() {
            missing.push(needs("FERRY_S3_BUCKET", "the bucket that holds the files"));
        }
        if self.s3_access_key_id.is_none() {
            missing.push(needs("FERRY_S3_ACCESS_KEY_ID", "the key's id"));
        }
        if self.s3_secret_access_key.is_none() {
            missing.push(needs(
                "FERRY_S3_SECRET_ACCESS_KEY (or its _FILE form)",
                "the key's secret",
            ));
        }
        missing
    }

    pub fn is_postgres(&self) -> bool {
        is_postgres_url(self.database_url.expose())
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn env_name(key: &str) -> String {
    format!("FERRY_{}", key.to_ascii_uppercase())
}

#[cfg(test)]
mod tests;
