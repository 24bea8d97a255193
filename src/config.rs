//! Typed settings, loaded once: defaults < optional file (`FERRY_CONFIG`) < `FERRY_*`
//! environment. Every setting can instead be read from a file named by
//! `FERRY_<NAME>_FILE` (Docker and compose secrets). Parsing collects every problem
//! so an operator fixes a broken configuration in one pass.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::domain::Expiry;

/// One documented setting. `docs/configuration.md` is checked against this table.
pub struct SettingDoc {
    pub key: &'static str,
    pub default: &'static str,
    pub secret: bool,
    pub help: &'static str,
}

/// Every setting Ferry reads, with its default as shown to operators.
pub const SETTINGS: &[SettingDoc] = &[
    SettingDoc {
        key: "listen",
        default: "127.0.0.1:8080",
        secret: false,
        help: "Address and port the HTTP server listens on.",
    },
    SettingDoc {
        key: "data_dir",
        default: "./data",
        secret: false,
        help: "Directory for the SQLite database, uploaded files (blobs/) and in-progress uploads (tmp/).",
    },
    SettingDoc {
        key: "database_url",
        default: "sqlite://$FERRY_DATA_DIR/ferry.db",
        secret: true,
        help: "sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. The scheme picks the backend.",
    },
    SettingDoc {
        key: "public_url",
        default: "(unset)",
        secret: false,
        help: "External URL users reach Ferry at, e.g. https://ferry.example.org. Used in links; https makes session cookies Secure.",
    },
    SettingDoc {
        key: "max_upload_bytes",
        default: "2147483648",
        secret: false,
        help: "Largest accepted upload in bytes, enforced while streaming (413).",
    },
    SettingDoc {
        key: "min_free_bytes",
        default: "268435456",
        secret: false,
        help: "Free disk space to keep in the data directory; uploads that would go below it get 507.",
    },
    SettingDoc {
        key: "max_note_bytes",
        default: "65536",
        secret: false,
        help: "Largest note text in bytes.",
    },
    SettingDoc {
        key: "default_expiry",
        default: "never",
        secret: false,
        help: "Expiry preselected for new items: never, 1h, 1d, 7d or 30d.",
    },
    SettingDoc {
        key: "log",
        default: "info",
        secret: false,
        help: "Log filter in tracing's EnvFilter syntax, e.g. info or ferry=debug,tower_http=info.",
    },
    SettingDoc {
        key: "log_format",
        default: "pretty",
        secret: false,
        help: "pretty (human readable) or json (one JSON object per line).",
    },
    SettingDoc {
        key: "migrate_on_start",
        default: "true",
        secret: false,
        help: "Apply pending database migrations when the server starts.",
    },
    SettingDoc {
        key: "db_max_connections",
        default: "10",
        secret: false,
        help: "Size of the database connection pool.",
    },
    SettingDoc {
        key: "shutdown_grace",
        default: "30s",
        secret: false,
        help: "How long in-flight requests may run after SIGTERM/SIGINT before they are cut off.",
    },
    SettingDoc {
        key: "trusted_proxies",
        default: "(none)",
        secret: false,
        help: "Comma-separated networks (CIDR) whose X-Forwarded-For header is believed, e.g. 127.0.0.1/32,172.16.0.0/12.",
    },
    SettingDoc {
        key: "metrics_listen",
        default: "(off)",
        secret: false,
        help: "Separate address serving /metrics only, e.g. 127.0.0.1:9090.",
    },
    SettingDoc {
        key: "metrics_allow",
        default: "(none)",
        secret: false,
        help: "Comma-separated networks allowed to read /metrics on the main listener.",
    },
    SettingDoc {
        key: "accel_redirect",
        default: "(off)",
        secret: false,
        help: "Internal nginx location prefix, e.g. /_protected/; downloads then answer with X-Accel-Redirect.",
    },
    SettingDoc {
        key: "session_ttl",
        default: "30d",
        secret: false,
        help: "How long a login session lasts.",
    },
    SettingDoc {
        key: "cors_origins",
        default: "(none)",
        secret: false,
        help: "Comma-separated origins allowed to call the API from a browser; none by default.",
    },
];

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

#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Secret,
    pub public_url: Option<url::Url>,
    pub max_upload_bytes: u64,
    pub min_free_bytes: u64,
    pub max_note_bytes: usize,
    pub default_expiry: Expiry,
    pub log: String,
    pub log_format: LogFormat,
    pub migrate_on_start: bool,
    pub db_max_connections: u32,
    pub shutdown_grace: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub metrics_listen: Option<SocketAddr>,
    pub metrics_allow: Vec<IpNet>,
    pub accel_redirect: Option<String>,
    pub session_ttl: Duration,
    pub cors_origins: Vec<String>,
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
        let raw = collect_raw(&vars, &mut errors);
        let settings = parse(&raw, &mut errors);
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

    pub fn is_postgres(&self) -> bool {
        is_postgres_url(self.database_url.expose())
    }

    pub fn secure_cookies(&self) -> bool {
        self.public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }

    /// The effective configuration as `KEY=value` lines, secrets redacted.
    pub fn redacted_lines(&self) -> Vec<String> {
        let opt = |v: Option<String>| v.unwrap_or_default();
        let nets = |v: &[IpNet]| {
            v.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        let values: Vec<(&str, String)> = vec![
            ("listen", self.listen.to_string()),
            ("data_dir", self.data_dir.display().to_string()),
            ("database_url", redact_url(self.database_url.expose())),
            (
                "public_url",
                opt(self.public_url.as_ref().map(|u| u.to_string())),
            ),
            ("max_upload_bytes", self.max_upload_bytes.to_string()),
            ("min_free_bytes", self.min_free_bytes.to_string()),
            ("max_note_bytes", self.max_note_bytes.to_string()),
            ("default_expiry", self.default_expiry.as_str().to_string()),
            ("log", self.log.clone()),
            (
                "log_format",
                match self.log_format {
                    LogFormat::Pretty => "pretty".into(),
                    LogFormat::Json => "json".into(),
                },
            ),
            ("migrate_on_start", self.migrate_on_start.to_string()),
            ("db_max_connections", self.db_max_connections.to_string()),
            (
                "shutdown_grace",
                format!("{}s", self.shutdown_grace.as_secs()),
            ),
            ("trusted_proxies", nets(&self.trusted_proxies)),
            (
                "metrics_listen",
                opt(self.metrics_listen.map(|a| a.to_string())),
            ),
            ("metrics_allow", nets(&self.metrics_allow)),
            ("accel_redirect", opt(self.accel_redirect.clone())),
            ("session_ttl", format!("{}s", self.session_ttl.as_secs())),
            ("cors_origins", self.cors_origins.join(",")),
        ];
        values
            .into_iter()
            .map(|(k, v)| format!("{}={}", env_name(k), v))
            .collect()
    }
}

pub fn is_postgres_url(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn env_name(key: &str) -> String {
    format!("FERRY_{}", key.to_ascii_uppercase())
}

/// Hide the password of a database URL; anything unparsable is hidden whole.
fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("REDACTED"));
            }
            u.to_string()
        }
        Err(_) => "REDACTED".into(),
    }
}

/// Merge the optional file and the environment into `key -> raw string`, resolving
/// `_FILE` indirections. The key is the lowercase setting name.
fn collect_raw(
    vars: &BTreeMap<String, String>,
    errors: &mut Vec<String>,
) -> BTreeMap<String, String> {
    let mut raw = BTreeMap::new();
    if let Some(path) = vars.get("FERRY_CONFIG").filter(|p| !p.is_empty()) {
        let file = config::Config::builder()
            .add_source(config::File::new(path, config::FileFormat::Toml).required(true))
            .build()
            .and_then(|c| c.try_deserialize::<BTreeMap<String, config::Value>>());
        match file {
            Ok(table) => {
                for (key, value) in table {
                    match value.into_string() {
                        Ok(s) => {
                            raw.insert(key.to_ascii_lowercase(), s);
                        }
                        Err(e) => errors.push(format!("FERRY_CONFIG ({path}): {key}: {e}")),
                    }
                }
            }
            Err(e) => errors.push(format!("FERRY_CONFIG: cannot read {path}: {e}")),
        }
    }
    let env = config::Environment::with_prefix("FERRY")
        .source(Some(vars.clone().into_iter().collect()))
        .try_parsing(false);
    match config::Config::builder()
        .add_source(env)
        .build()
        .and_then(|c| c.try_deserialize::<BTreeMap<String, String>>())
    {
        Ok(table) => raw.extend(table.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v))),
        Err(e) => errors.push(format!("environment: {e}")),
    }

    // FERRY_<NAME>_FILE: read the value from a file; setting both is ambiguous.
    for doc in SETTINGS {
        let file_key = format!("{}_file", doc.key);
        if let Some(path) = raw.remove(&file_key) {
            if raw.contains_key(doc.key) {
                errors.push(format!(
                    "{} and {}_FILE are both set; set only one",
                    env_name(doc.key),
                    env_name(doc.key)
                ));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(contents) => {
                    raw.insert(
                        doc.key.to_string(),
                        contents.trim_end_matches(['\r', '\n']).to_string(),
                    );
                }
                Err(e) => errors.push(format!(
                    "{}_FILE: cannot read {path}: {e}",
                    env_name(doc.key)
                )),
            }
        }
    }
    raw
}

fn parse(raw: &BTreeMap<String, String>, errors: &mut Vec<String>) -> Settings {
    let mut p = Parser { raw, errors };
    let data_dir = PathBuf::from(p.get("data_dir").unwrap_or("./data"));
    if data_dir.as_os_str().is_empty() {
        p.problem("data_dir", "must not be empty");
    }
    let default_db = format!("sqlite://{}", data_dir.join("ferry.db").display());
    let database_url = p
        .get("database_url")
        .map(str::to_string)
        .unwrap_or(default_db);
    if !(database_url.starts_with("sqlite:") || is_postgres_url(&database_url)) {
        p.problem(
            "database_url",
            "must start with sqlite:// or postgres:// (value hidden)",
        );
    }

    Settings {
        listen: p.value(
            "listen",
            "127.0.0.1:8080",
            "an address:port like 0.0.0.0:8080",
            |s| s.parse().ok(),
        ),
        database_url: Secret::new(database_url),
        public_url: p.optional("public_url", "an absolute http:// or https:// URL", |s| {
            url::Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
        }),
        max_upload_bytes: p.value(
            "max_upload_bytes",
            "2147483648",
            "a positive number of bytes, at most 2^50 (1 PiB)",
            |s| parse_positive(s).filter(|n| *n <= MAX_UPLOAD_BYTES),
        ),
        min_free_bytes: p.value("min_free_bytes", "268435456", "a number of bytes", |s| {
            s.parse().ok()
        }),
        max_note_bytes: p.value(
            "max_note_bytes",
            "65536",
            "a positive number of bytes, at most 2^30 (1 GiB)",
            |s| s.parse().ok().filter(|n| (1..=MAX_NOTE_BYTES).contains(n)),
        ),
        default_expiry: p.value(
            "default_expiry",
            "never",
            "one of never, 1h, 1d, 7d, 30d",
            |s| Expiry::parse(s).ok(),
        ),
        log: p.value(
            "log",
            "info",
            "a tracing filter like info or ferry=debug",
            |s| {
                tracing_subscriber::EnvFilter::try_new(s)
                    .ok()
                    .map(|_| s.to_string())
            },
        ),
        log_format: p.value("log_format", "pretty", "pretty or json", |s| match s {
            "pretty" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            _ => None,
        }),
        migrate_on_start: p.value("migrate_on_start", "true", "true or false", parse_bool),
        db_max_connections: p.value("db_max_connections", "10", "a number from 1 to 1000", |s| {
            s.parse().ok().filter(|n| (1..=1000).contains(n))
        }),
        shutdown_grace: p.value(
            "shutdown_grace",
            "30s",
            "a duration like 30s, 2m or 30",
            parse_duration,
        ),
        trusted_proxies: p.value(
            "trusted_proxies",
            "",
            "comma-separated networks like 127.0.0.1/32",
            parse_nets,
        ),
        metrics_listen: p.optional(
            "metrics_listen",
            "an address:port like 127.0.0.1:9090",
            |s| s.parse().ok(),
        ),
        metrics_allow: p.value(
            "metrics_allow",
            "",
            "comma-separated networks like 10.0.0.0/8",
            parse_nets,
        ),
        accel_redirect: p.optional(
            "accel_redirect",
            "a path that starts and ends with /, like /_protected/",
            |s| {
                (s.starts_with('/') && s.ends_with('/') && !s.contains("..")).then(|| s.to_string())
            },
        ),
        session_ttl: p.value(
            "session_ttl",
            "30d",
            "a duration like 12h or 30d, at most 3650d",
            |s| parse_duration(s).filter(|d| !d.is_zero() && *d <= MAX_SESSION_TTL),
        ),
        cors_origins: p.value(
            "cors_origins",
            "",
            "comma-separated origins like https://app.example.org",
            |s| {
                split_list(s)
                    .map(|o| {
                        url::Url::parse(o)
                            .ok()
                            .filter(|u| u.path() == "/" && !o.ends_with('/'))
                            .map(|_| o.to_string())
                    })
                    .collect()
            },
        ),
        data_dir,
    }
}

/// Upper bounds that keep the server's arithmetic in range: item sizes and
/// instants are 64-bit signed in the database, and a note is held in memory.
const MAX_UPLOAD_BYTES: u64 = 1 << 50;
const MAX_NOTE_BYTES: usize = 1 << 30;
const MAX_SESSION_TTL: Duration = Duration::from_secs(3650 * 86_400);

struct Parser<'a> {
    raw: &'a BTreeMap<String, String>,
    errors: &'a mut Vec<String>,
}

impl Parser<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.raw.get(key).map(|s| s.trim())
    }

    fn problem(&mut self, key: &str, message: &str) {
        self.errors.push(format!("{}: {message}", env_name(key)));
    }

    /// Parse a setting with a default. On failure, record the problem and fall back
    /// to the default so that later settings are still checked.
    fn value<T>(
        &mut self,
        key: &str,
        default: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        if let Some(raw) = self.get(key) {
            if let Some(v) = parse(raw) {
                return v;
            }
            let shown = if SETTINGS.iter().any(|d| d.key == key && d.secret) {
                "(hidden)".to_string()
            } else {
                format!("{raw:?}")
            };
            self.errors
                .push(format!("{}: {shown} is not {expected}", env_name(key)));
        }
        match parse(default) {
            Some(v) => v,
            None => panic!("built-in default for {key} does not parse"),
        }
    }

    fn optional<T>(
        &mut self,
        key: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.get(key).filter(|s| !s.is_empty())?;
        let parsed = parse(raw);
        if parsed.is_none() {
            self.errors
                .push(format!("{}: {raw:?} is not {expected}", env_name(key)));
        }
        parsed
    }
}

fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

fn parse_positive(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n| *n > 0)
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_nets(s: &str) -> Option<Vec<IpNet>> {
    split_list(s)
        .map(|part| {
            part.parse::<IpNet>()
                .ok()
                .or_else(|| part.parse::<std::net::IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

/// `30`, `30s`, `5m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::from_env(env(&[])).expect("defaults");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url.expose(), "sqlite://./data/ferry.db");
        assert!(s.migrate_on_start);
        assert_eq!(s.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Settings::from_env(env(&[
            ("FERRY_LISTEN", "nope"),
            ("FERRY_MAX_UPLOAD_BYTES", "-1"),
            ("FERRY_LOG_FORMAT", "xml"),
        ]))
        .expect_err("invalid");
        assert_eq!(err.0.len(), 3, "{err}");
        assert!(err.0[0].starts_with("FERRY_LISTEN"), "{err}");
        assert!(
            err.to_string().contains("FERRY_MAX_UPLOAD_BYTES: \"-1\""),
            "{err}"
        );
        assert!(err.to_string().contains("FERRY_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn secrets_come_from_files_and_conflicts_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db_url");
        std::fs::write(&path, "postgres://ferry:hunter2@db/ferry\n").expect("write");
        let p = path.display().to_string();
        let s = Settings::from_env(env(&[("FERRY_DATABASE_URL_FILE", &p)])).expect("file secret");
        assert_eq!(s.database_url.expose(), "postgres://ferry:hunter2@db/ferry");
        assert!(s.is_postgres());
        let lines = s.redacted_lines().join("\n");
        assert!(!lines.contains("hunter2"), "{lines}");
        assert!(
            lines.contains("FERRY_DATABASE_URL=postgres://ferry:REDACTED@db/ferry"),
            "{lines}"
        );

        let err = Settings::from_env(env(&[
            ("FERRY_DATABASE_URL", "sqlite://x.db"),
            ("FERRY_DATABASE_URL_FILE", &p),
        ]))
        .expect_err("conflict");
        assert!(err.to_string().contains("both set"), "{err}");
    }

    #[test]
    fn file_layer_is_below_environment() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ferry.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nmax_upload_bytes = 1000\n",
        )
        .expect("write");
        let p = path.display().to_string();
        let s = Settings::from_env(env(&[
            ("FERRY_CONFIG", &p),
            ("FERRY_LISTEN", "127.0.0.1:9001"),
        ]))
        .expect("layered");
        assert_eq!(s.listen.port(), 9001);
        assert_eq!(s.max_upload_bytes, 1000);
    }

    /// Values the `config` fuzz target found (fuzz/fuzz_targets/config.rs): they
    /// loaded, then overflowed where the server computes with them (session
    /// expiry in milliseconds, the upload precheck's margin, the note body limit).
    #[test]
    fn fuzz_regressions_out_of_range_values_are_refused() {
        for (key, value) in [
            ("FERRY_SESSION_TTL", "200000000000d"),
            ("FERRY_SESSION_TTL", "9223372036854776s"),
            ("FERRY_SESSION_TTL", "3651d"),
            ("FERRY_MAX_UPLOAD_BYTES", "18446744073709551615"),
            ("FERRY_MAX_UPLOAD_BYTES", "1125899906842625"),
            ("FERRY_MAX_NOTE_BYTES", "18446744073709551615"),
        ] {
            let err = Settings::from_env(env(&[(key, value)])).expect_err(value);
            assert_eq!(err.0.len(), 1, "{err}");
            assert!(err.0[0].starts_with(key), "{err}");
            assert!(err.0[0].contains("at most"), "{err}");
        }
        let s = Settings::from_env(env(&[
            ("FERRY_SESSION_TTL", "3650d"),
            ("FERRY_MAX_UPLOAD_BYTES", "1125899906842624"),
            ("FERRY_MAX_NOTE_BYTES", "1073741824"),
        ]))
        .expect("the largest values load");
        assert_eq!(s.session_ttl, MAX_SESSION_TTL);
    }

    #[test]
    fn durations_and_networks_parse() {
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1w"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(
            parse_nets("127.0.0.1, 10.0.0.0/8").map(|v| v.len()),
            Some(2)
        );
        assert!(parse_nets("10.0.0.0/33").is_none());
    }
}
