//! Passwords, tokens and the login rate limit: the rules and the cryptography,
//! with no web types.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::blobs::{hex, sha256_hex};

pub const MIN_PASSWORD_CHARS: usize = 8;

fn argon2() -> Argon2<'static> {
    // argon2id with the RFC 9106 "second recommended" memory-constrained parameters
    // (19 MiB, 2 passes): safe on a Raspberry Pi.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hash a password off the async threads; argon2 takes tens of milliseconds.
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
        argon2()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
    })
    .await?
}

/// Verify a password. With `None` (unknown user) a dummy hash is checked anyway, so
/// the answer takes the same time as for a wrong password.
pub async fn verify_password(hash: Option<String>, password: String) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| {
            DUMMY
                .get_or_init(|| {
                    let salt = SaltString::encode_b64(b"ferry-dummy-salt")
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    SaltString::from_b64(&salt)
                        .ok()
                        .and_then(|salt| {
                            argon2()
                                .hash_password(random_token().as_bytes(), &salt)
                                .ok()
                                .map(|h| h.to_string())
                        })
                        .unwrap_or_default()
                })
                .clone()
        });
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        argon2()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && known
    })
    .await
    .unwrap_or(false)
}

pub fn check_password_rules(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > 1024 {
        return Err("the password is too long".into());
    }
    Ok(())
}

pub fn check_user_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
    if ok {
        Ok(())
    } else {
        Err("user names are 1-64 characters: letters, digits, - _ . @".into())
    }
}

/// 256 random bits, hex-encoded. Used for sessions, API tokens, share links, CSRF.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

/// Tokens are stored only as their SHA-256; a database leak reveals no usable token.
pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// Failed-login counter per client IP and per account, in this process. With
/// several replicas each counts on its own: the limit is per replica. Other
/// attempts worth limiting (device links, share passwords) count under keys of
/// their own through `check_key`, `record` and `take`.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

type Counts = HashMap<String, VecDeque<Instant>>;

impl LoginLimiter {
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    pub const MAX_PER_ACCOUNT: usize = 5;
    pub const MAX_PER_IP: usize = 20;

    /// The key failed attempts of any kind from one client are counted under.
    pub fn ip_key(ip: IpAddr) -> String {
        format!("ip:{ip}")
    }

    fn keys(ip: IpAddr, account: &str) -> [(String, usize); 2] {
        [
            (Self::ip_key(ip), Self::MAX_PER_IP),
            (
                format!("user:{}", account.to_lowercase()),
                Self::MAX_PER_ACCOUNT,
            ),
        ]
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_in(map: &mut Counts, key: &str, max: usize, now: Instant) -> Result<(), u64> {
        let Some(times) = map.get_mut(key) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > Self::WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= max {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = Self::WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        Ok(())
    }

    fn record_in(map: &mut Counts, key: &str, now: Instant) {
        // Bound memory under a spray of distinct names: forget everything if huge.
        if map.len() > 100_000 {
            map.clear();
        }
        map.entry(key.to_string()).or_default().push_back(now);
    }

    /// `Err(seconds)` when this IP or account must wait before trying again.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.counts();
        for (key, max) in Self::keys(ip, account) {
            Self::check_in(&mut map, &key, max, now)?;
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        let now = Instant::now();
        let mut map = self.counts();
        for (key, _) in Self::keys(ip, account) {
            Self::record_in(&mut map, &key, now);
        }
    }

    pub fn succeeded(&self, account: &str) {
        self.counts()
            .remove(&format!("user:{}", account.to_lowercase()));
    }

    /// `Err(seconds)` when `key` has `max` attempts in the window already.
    pub fn check_key(&self, key: &str, max: usize) -> Result<(), u64> {
        Self::check_in(&mut self.counts(), key, max, Instant::now())
    }

    /// Count one attempt under `key`.
    pub fn record(&self, key: &str) {
        Self::record_in(&mut self.counts(), key, Instant::now());
    }

    /// Check and count in one step, for actions limited whether or not they
    /// succeed (creating a sign-in link).
    pub fn take(&self, key: &str, max: usize) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.counts();
        Self::check_in(&mut map, key, max, now)?;
        Self::record_in(&mut map, key, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_and_unknown_users_fail() {
        let hash = hash_password("correct horse".into()).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(Some(hash.clone()), "correct horse".into()).await);
        assert!(!verify_password(Some(hash), "wrong horse".into()).await);
        assert!(!verify_password(None, "anything".into()).await);
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = random_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_token());
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn limiter_blocks_after_repeated_failures() {
        let limiter = LoginLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        for _ in 0..LoginLimiter::MAX_PER_ACCOUNT {
            assert!(limiter.check(ip, "alice").is_ok());
            limiter.failed(ip, "alice");
        }
        assert!(limiter.check(ip, "Alice").is_err());
        assert!(limiter.check(ip, "bob").is_ok());
    }

    #[test]
    fn keys_are_counted_apart() {
        let limiter = LoginLimiter::default();
        for _ in 0..3 {
            assert!(limiter.take("links:1", 3).is_ok());
        }
        assert!(limiter.take("links:1", 3).is_err());
        assert!(limiter.check_key("links:1", 3).is_err());
        assert!(limiter.take("links:2", 3).is_ok());
        let ip: IpAddr = "192.0.2.2".parse().expect("ip");
        assert!(limiter.check(ip, "alice").is_ok(), "other keys untouched");
        for _ in 0..LoginLimiter::MAX_PER_IP {
            limiter.record(&LoginLimiter::ip_key(ip));
        }
        assert!(limiter.check(ip, "alice").is_err(), "one count per client");
    }
}
