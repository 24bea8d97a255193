//! Passwords, tokens, sessions and the login rate limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::{HeaderMap, Method, header, request::Parts};
use ipnet::IpNet;
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::blobs::{hex, sha256_hex};
use crate::error::AppError;
use crate::state::AppState;
use crate::store::SessionUser;

pub const SESSION_COOKIE: &str = "ferry_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
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

/// Create an API token for a user; returns the secret, which is shown once and
/// stored only as its hash.
pub async fn issue_api_token(
    store: &crate::store::Store,
    user_id: &str,
    name: &str,
) -> sqlx::Result<String> {
    let secret = random_token();
    store
        .create_api_token(user_id, name, &token_hash(&secret))
        .await?;
    Ok(secret)
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn session_cookie(token: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_session_cookie(secure: bool) -> String {
    session_cookie("", Duration::ZERO, secure)
}

/// How the current request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Session,
    ApiToken,
}

/// The signed-in user. Rejects with 401 when there is none.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub user: SessionUser,
    pub credential: Credential,
    /// Hash of the session token, to end this session on logout.
    pub session_hash: Option<String>,
}

impl CurrentUser {
    /// Check the CSRF token of a cookie-authenticated state change. Bearer tokens
    /// are not sent by browsers on their own, so they need none.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<(), AppError> {
        if self.credential == Credential::ApiToken {
            return Ok(());
        }
        match presented {
            Some(t) if !t.is_empty() && constant_time_eq(t, &self.user.csrf_token) => Ok(()),
            _ => Err(AppError::Forbidden(
                "missing or invalid CSRF token; reload the page and try again",
            )),
        }
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let found = authenticate(&parts.headers, state).await?;
        let user = found.ok_or(AppError::Unauthorized)?;
        // Cookie-authenticated API writes must carry the CSRF header.
        if user.credential == Credential::Session
            && parts.uri.path().starts_with("/api/")
            && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        {
            user.check_csrf(parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
        }
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// The signed-in user, if any.
pub struct MaybeUser(pub Option<CurrentUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match CurrentUser::from_request_parts(parts, state).await {
            Ok(user) => Ok(Self(Some(user))),
            Err(AppError::Unauthorized) => Ok(Self(None)),
            Err(e) => Err(e),
        }
    }
}

async fn authenticate(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<CurrentUser>, AppError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(AppError::Unauthorized)?;
        let user = state.store.api_token_user(&token_hash(token)).await?;
        return Ok(user.map(|user| CurrentUser {
            user,
            credential: Credential::ApiToken,
            session_hash: None,
        }));
    }
    let Some(token) = cookie_value(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let hash = token_hash(token);
    let user = state.store.session(&hash).await?;
    Ok(user.map(|user| CurrentUser {
        user,
        credential: Credential::Session,
        session_hash: Some(hash),
    }))
}

/// The client address: the TCP peer, or the address a trusted proxy reports.
/// X-Forwarded-For is read right to left, skipping trusted proxies, so a client
/// cannot choose its address by sending the header itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut ip = peer;
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                ip = addr;
                if !trusted.iter().any(|n| n.contains(&addr)) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip
}

/// The client's address as `client_ip` decides it, for rate limits and logs.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.settings.trusted_proxies,
        )))
    }
}

/// Failed-login counter per client IP and per account, in this process. With
/// several replicas each counts on its own: the limit is per replica.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    pub const MAX_PER_ACCOUNT: usize = 5;
    pub const MAX_PER_IP: usize = 20;

    fn keys(ip: IpAddr, account: &str) -> [(String, usize); 2] {
        [
            (format!("ip:{ip}"), Self::MAX_PER_IP),
            (
                format!("user:{}", account.to_lowercase()),
                Self::MAX_PER_ACCOUNT,
            ),
        ]
    }

    /// `Err(seconds)` when this IP or account must wait before trying again.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        for (key, max) in Self::keys(ip, account) {
            if let Some(times) = map.get_mut(&key) {
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
            }
        }
        Ok(())
    }

    pub fn failed(&self, ip: IpAddr, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory under a spray of distinct names: forget everything if huge.
        if map.len() > 100_000 {
            map.clear();
        }
        for (key, _) in Self::keys(ip, account) {
            map.entry(key).or_default().push_back(Instant::now());
        }
    }

    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("user:{}", account.to_lowercase()));
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
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 6.6.6.6, 10.0.0.7".parse().expect("hv"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "5.5.5.5".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "6.6.6.6".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
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
    fn cookies_parse() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; ferry_session=abc; b=2".parse().expect("hv"),
        );
        assert_eq!(cookie_value(&headers, SESSION_COOKIE), Some("abc"));
        assert!(session_cookie("t", Duration::from_secs(60), true).contains("; Secure"));
        assert!(
            session_cookie("t", Duration::from_secs(60), false).contains("HttpOnly; SameSite=Lax")
        );
    }
}
