//! Turning raw setting strings into values and values back into the text
//! `ferry config check` prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{LogFormat, Secret, env_name};
use crate::domain::Expiry;

/// A secret printed as REDACTED whatever it looks like (the database URL's
/// `Secret` shows everything but the password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted(pub Secret);

/// Where uploaded files are kept (`FERRY_BLOB_STORE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobStoreKind {
    Local,
    S3,
}

/// S3's rules for bucket names, the part that matters for a URL and a path.
pub(super) fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// Reads settings from the merged raw values, collecting every problem.
pub(super) struct Parser<'a> {
    pub raw: &'a BTreeMap<String, String>,
    pub errors: &'a mut Vec<String>,
}

impl Parser<'_> {
    /// Parse a setting, or its default when unset. On failure, record the problem
    /// and fall back to the default so that later settings are still checked.
    pub fn value<T>(
        &mut self,
        key: &str,
        secret: bool,
        default: &str,
        expected: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> T {
        if let Some(raw) = self.raw.get(key).map(|s| s.trim()) {
            if let Some(v) = parse(raw) {
                return v;
            }
            let shown = if secret {
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
}

/// A setting that may be left empty: empty is `None`, anything else must parse.
pub(super) fn optional<T>(parse: impl Fn(&str) -> Option<T>) -> impl Fn(&str) -> Option<Option<T>> {
    move |s| {
        if s.is_empty() {
            Some(None)
        } else {
            parse(s).map(Some)
        }
    }
}

pub(super) fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|p| !p.is_empty())
}

pub(super) fn parse_positive(s: &str) -> Option<u64> {
    s.parse().ok().filter(|n| *n > 0)
}

pub(super) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub(super) fn parse_nets(s: &str) -> Option<Vec<IpNet>> {
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

/// How a setting's value is printed by `ferry config check`; unset is empty.
pub(super) trait Listed {
    fn listed(&self) -> String;
}

macro_rules! listed_by_display {
    ($($ty:ty),*) => {
        $(impl Listed for $ty {
            fn listed(&self) -> String {
                self.to_string()
            }
        })*
    };
}

listed_by_display!(SocketAddr, IpNet, url::Url, String, u64, usize, u32, bool);

impl Listed for PathBuf {
    fn listed(&self) -> String {
        self.display().to_string()
    }
}

impl Listed for Duration {
    fn listed(&self) -> String {
        format!("{}s", self.as_secs())
    }
}

impl Listed for Expiry {
    fn listed(&self) -> String {
        self.as_str().to_string()
    }
}

impl Listed for LogFormat {
    fn listed(&self) -> String {
        match self {
            LogFormat::Pretty => "pretty".into(),
            LogFormat::Json => "json".into(),
        }
    }
}

impl Listed for BlobStoreKind {
    fn listed(&self) -> String {
        match self {
            BlobStoreKind::Local => "local".into(),
            BlobStoreKind::S3 => "s3".into(),
        }
    }
}

impl Listed for Redacted {
    fn listed(&self) -> String {
        "REDACTED".into()
    }
}

/// The database URL: everything but its password is shown.
impl Listed for Secret {
    fn listed(&self) -> String {
        redact_url(self.expose())
    }
}

impl<T: Listed> Listed for Option<T> {
    fn listed(&self) -> String {
        self.as_ref().map(T::listed).unwrap_or_default()
    }
}

impl<T: Listed> Listed for Vec<T> {
    fn listed(&self) -> String {
        self.iter().map(T::listed).collect::<Vec<_>>().join(",")
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
