//! Devices: signing another device in with a one-time link (the "add a device" QR
//! code on the account page), and the signed-in devices (sessions) a user sees and
//! signs out. Creating and using links is rate limited and logged: user, client
//! address and outcome, never the token.

use std::net::IpAddr;
use std::time::Duration;

use super::App;
use super::accounts::{Credential, SignedIn};
use crate::auth::{LoginLimiter, constant_time_eq, random_token, token_hash};
use crate::error::{AppError, Result};
use crate::store::{DeviceLink, LinkedSession, SessionRow, now_ms};

/// How long a sign-in link works: long enough to fetch a phone and scan, short
/// enough that a photo of the screen is soon worthless.
pub const LINK_TTL: Duration = Duration::from_secs(5 * 60);
/// Links one user may create per `LoginLimiter::WINDOW`.
pub const MAX_LINKS_PER_WINDOW: usize = 10;
/// What is kept of a User-Agent: enough to name the device.
const MAX_USER_AGENT_CHARS: usize = 256;

/// A link just created: its secret, shown once, and when it stops working.
pub struct NewLink {
    pub token: String,
    pub expires_at: i64,
}

/// The path that redeems a link; the page makes it absolute for the QR code.
pub fn link_path(token: &str) -> String {
    format!("/link/{token}")
}

/// Create a sign-in link for the signed-in user. Only a browser session may: an
/// API token is for scripts and does not become a browser session.
pub async fn create_link(app: &App, user: &SignedIn, ip: IpAddr) -> Result<NewLink> {
    if user.credential != Credential::Session {
        return Err(AppError::Forbidden(
            "sign in with a browser to add a device",
        ));
    }
    let key = format!("device-link:{}", user.id);
    if let Err(retry_after) = app.limiter().take(&key, MAX_LINKS_PER_WINDOW) {
        tracing::warn!(user = %user.name, %ip, outcome = "rate limited", "device link not created");
        return Err(AppError::TooManyRequests { retry_after });
    }
    let token = random_token();
    let expires_at = now_ms() + LINK_TTL.as_millis() as i64;
    app.store()
        .create_device_link(&token_hash(&token), &user.id, expires_at)
        .await?;
    tracing::info!(user = %user.name, %ip, outcome = "created", "device link created");
    Ok(NewLink { token, expires_at })
}

/// Whose account a link signs in to, for the page that asks the visitor to
/// confirm. Looking is limited like using: an unknown token counts as a failure.
pub async fn link_owner(app: &App, token: &str, ip: IpAddr) -> Result<String> {
    let link = usable_link(app, token, ip).await?;
    tracing::info!(user = %link.user_name, %ip, outcome = "opened", "device link opened");
    Ok(link.user_name)
}

/// Use a link: the visiting device gets a new session of the link's owner (its
/// token is returned) and the link is dead. `replaced` is the session the device
/// had before, if any, which ends.
pub async fn redeem_link(
    app: &App,
    token: &str,
    ip: IpAddr,
    user_agent: Option<&str>,
    replaced: Option<&str>,
) -> Result<String> {
    let link = usable_link(app, token, ip).await?;
    let session_token = random_token();
    let session_hash = token_hash(&session_token);
    let csrf_token = random_token();
    let session = LinkedSession {
        token_hash: &session_hash,
        csrf_token: &csrf_token,
        expires_at: now_ms() + app.settings().session_ttl.as_millis() as i64,
        user_agent: user_agent.map(clip_user_agent),
    };
    if app
        .store()
        .redeem_device_link(&token_hash(token), session)
        .await?
        .is_none()
    {
        // Another device used it (or it expired) since `usable_link` looked.
        return Err(refuse(app, &link.user_name, ip, "already used", USED));
    }
    if let Some(old) = replaced {
        app.store().delete_session(&token_hash(old)).await?;
    }
    let device = device_name(user_agent);
    tracing::info!(user = %link.user_name, %ip, %device, outcome = "redeemed", "device signed in with a link");
    Ok(session_token)
}

const USED: AppError =
    AppError::Gone("this sign-in link was already used; make a new one on a signed-in device");
const EXPIRED: AppError =
    AppError::Gone("this sign-in link has expired; make a new one on a signed-in device");

/// The link a token names if it can still be used; failures count against the
/// client as failed sign-ins do.
async fn usable_link(app: &App, token: &str, ip: IpAddr) -> Result<DeviceLink> {
    let limiter = app.limiter();
    let ip_key = LoginLimiter::ip_key(ip);
    if let Err(retry_after) = limiter.check_key(&ip_key, LoginLimiter::MAX_PER_IP) {
        tracing::warn!(%ip, outcome = "rate limited", "device link refused");
        return Err(AppError::TooManyRequests { retry_after });
    }
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    let link = match well_formed {
        true => app.store().device_link(&token_hash(token)).await?,
        false => None,
    };
    let Some(link) = link else {
        return Err(refuse(app, "-", ip, "unknown", AppError::NotFound));
    };
    if link.used_at.is_some() {
        return Err(refuse(app, &link.user_name, ip, "already used", USED));
    }
    if link.expires_at <= now_ms() {
        return Err(refuse(app, &link.user_name, ip, "expired", EXPIRED));
    }
    Ok(link)
}

fn refuse(app: &App, user: &str, ip: IpAddr, outcome: &str, error: AppError) -> AppError {
    app.limiter().record(&LoginLimiter::ip_key(ip));
    tracing::info!(user, %ip, outcome, "device link refused");
    error
}

// ---- signed-in devices -----------------------------------------------------------

/// A signed-in device as the account page lists it.
#[derive(Clone, Debug)]
pub struct Device {
    /// Names the session without revealing anything that signs in (see `device_id`).
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    /// The device asking.
    pub current: bool,
}

/// A session's public id: derived from its token's hash, so nothing more is stored
/// and the hash itself, the key the server looks sessions up by, never leaves it.
fn device_id(session_hash: &str) -> String {
    token_hash(&format!("device:{session_hash}"))[..32].to_string()
}

/// The user's signed-in devices, the most recently seen first.
pub async fn list(app: &App, user: &SignedIn) -> Result<Vec<Device>> {
    let rows = app.store().sessions_of_user(&user.id).await?;
    Ok(rows
        .into_iter()
        .map(|row: SessionRow| Device {
            id: device_id(&row.token_hash),
            name: device_name(row.user_agent.as_deref()),
            created_at: row.created_at,
            last_seen_at: row.last_seen_at,
            current: is_current(user, &row.token_hash),
        })
        .collect())
}

/// Sign one of the user's own devices out. `Ok(true)` when it was the device
/// asking. Another user's device, or one already gone, is `NotFound`.
pub async fn sign_out(app: &App, user: &SignedIn, device: &str) -> Result<bool> {
    let rows = app.store().sessions_of_user(&user.id).await?;
    let Some(row) = rows
        .into_iter()
        .find(|r| constant_time_eq(&device_id(&r.token_hash), device))
    else {
        return Err(AppError::NotFound);
    };
    if !app
        .store()
        .delete_user_session(&user.id, &row.token_hash)
        .await?
    {
        return Err(AppError::NotFound);
    }
    let name = device_name(row.user_agent.as_deref());
    tracing::info!(user = %user.name, device = %name, "device signed out from the account page");
    Ok(is_current(user, &row.token_hash))
}

/// Whether a session is the one `user` is asking with.
fn is_current(user: &SignedIn, session_hash: &str) -> bool {
    user.session_hash
        .as_deref()
        .is_some_and(|h| constant_time_eq(h, session_hash))
}

/// A User-Agent cut to what is worth keeping, on a character boundary.
pub fn clip_user_agent(user_agent: &str) -> &str {
    match user_agent.char_indices().nth(MAX_USER_AGENT_CHARS) {
        Some((end, _)) => &user_agent[..end],
        None => user_agent,
    }
}

/// A short name for the device a User-Agent describes, such as "Firefox on
/// Android" or "Safari on iPhone". Browsers mention their relatives ("like Gecko",
/// "Safari" in Chrome's), so the most specific marks are tried first.
pub fn device_name(user_agent: Option<&str>) -> String {
    let ua = user_agent.unwrap_or_default();
    const BROWSERS: &[(&str, &str)] = &[
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("FxiOS/", "Firefox"),
        ("Firefox/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Version/", "Safari"),
        ("curl/", "curl"),
    ];
    const SYSTEMS: &[(&str, &str)] = &[
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(mark, _)| ua.contains(mark))
            .map(|(_, name)| *name)
    };
    // "Version/" marks Safari only beside "Safari/"; other WebKit shells have it too.
    let browser = find(BROWSERS).filter(|b| *b != "Safari" || ua.contains("Safari/"));
    match (browser, find(SYSTEMS)) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("A browser on {s}"),
        (None, None) => "Unknown device".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agents_name_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0",
                "Firefox on Android",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iPhone",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
                "Chrome on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
                "Samsung Internet on Android",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on ChromeOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("curl/8.5.0", "curl"),
            (
                "Mozilla/5.0 (Linux; Android 14) SomeShell/1.0",
                "A browser on Android",
            ),
            ("", "Unknown device"),
        ];
        for (ua, expected) in cases {
            assert_eq!(device_name(Some(ua)), expected, "{ua}");
        }
        assert_eq!(device_name(None), "Unknown device");
    }

    #[test]
    fn long_user_agents_are_clipped_on_a_character_boundary() {
        let long = "é".repeat(MAX_USER_AGENT_CHARS + 10);
        let clipped = clip_user_agent(&long);
        assert_eq!(clipped.chars().count(), MAX_USER_AGENT_CHARS);
        assert_eq!(clip_user_agent("Firefox/1"), "Firefox/1");
    }

    #[test]
    fn device_ids_are_stable_and_not_the_hash() {
        let hash = token_hash("a session token");
        assert_eq!(device_id(&hash), device_id(&hash));
        assert_eq!(device_id(&hash).len(), 32);
        assert!(!hash.contains(&device_id(&hash)));
        assert_ne!(device_id(&hash), device_id(&token_hash("another")));
    }
}
