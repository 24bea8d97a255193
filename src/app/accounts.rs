//! Accounts: the first admin's setup, users and their passwords, sign-in and
//! sessions, API tokens. The command line and the pages both come here, so a user
//! name, password or token name is judged by the same rules wherever it is typed.

use std::net::IpAddr;

use super::{App, devices};
use crate::auth::{
    check_password_rules, check_user_name, constant_time_eq, hash_password, random_token,
    token_hash, verify_password,
};
use crate::error::{AppError, Result};
use crate::store::{ApiToken, NewSession, SessionUser, User, now_ms};

/// How the current request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Credential {
    Session,
    ApiToken,
}

/// The user a request acts for, as the use cases see them.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub id: String,
    pub name: String,
    pub is_admin: bool,
    /// The session's CSRF token; empty for API tokens.
    pub csrf_token: String,
    pub credential: Credential,
    /// Hash of the session token, to end this session on sign-out.
    pub session_hash: Option<String>,
}

impl SignedIn {
    fn new(user: SessionUser, credential: Credential, session_hash: Option<String>) -> Self {
        Self {
            id: user.id,
            name: user.name,
            is_admin: user.is_admin,
            csrf_token: user.csrf_token,
            credential,
            session_hash,
        }
    }

    /// Check the CSRF token of a cookie-authenticated state change. Bearer tokens
    /// are not sent by browsers on their own, so they need none.
    pub fn check_csrf(&self, presented: Option<&str>) -> Result<()> {
        if self.credential == Credential::ApiToken {
            return Ok(());
        }
        match presented {
            Some(t) if !t.is_empty() && constant_time_eq(t, &self.csrf_token) => Ok(()),
            _ => Err(AppError::Forbidden(
                "missing or invalid CSRF token; reload the page and try again",
            )),
        }
    }

    /// Authors act on their own items; admins on any.
    pub fn may_modify(&self, author_id: Option<&str>) -> bool {
        self.is_admin || author_id == Some(self.id.as_str())
    }
}

/// A credential as a request presents it.
pub enum Presented<'a> {
    ApiToken(&'a str),
    SessionToken(&'a str),
}

/// Who a credential belongs to, if anyone.
pub async fn authenticate(app: &App, presented: Presented<'_>) -> Result<Option<SignedIn>> {
    Ok(match presented {
        Presented::ApiToken(token) => app
            .store()
            .api_token_user(&token_hash(token))
            .await?
            .map(|u| SignedIn::new(u, Credential::ApiToken, None)),
        Presented::SessionToken(token) => {
            let hash = token_hash(token);
            app.store()
                .session(&hash)
                .await?
                .map(|u| SignedIn::new(u, Credential::Session, Some(hash)))
        }
    })
}

/// Check a name and password, rate limited per client and per account. `Ok(None)`
/// is a wrong name or password (the answer takes as long either way).
pub async fn sign_in(app: &App, ip: IpAddr, name: &str, password: String) -> Result<Option<User>> {
    let limiter = app.limiter();
    limiter
        .check(ip, name)
        .map_err(|retry_after| AppError::TooManyRequests { retry_after })?;
    let user = app.store().user_by_name(name).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    if !verify_password(hash, password).await {
        limiter.failed(ip, name);
        tracing::info!(%ip, "failed sign-in");
        return Ok(None);
    }
    limiter.succeeded(name);
    Ok(user)
}

/// Start a session and return its token. A fresh token at every sign-in, so a
/// planted cookie is never promoted; the session the browser presented, if any, is
/// ended. The User-Agent names the device on the account page.
pub async fn start_session(
    app: &App,
    user_id: &str,
    replaced: Option<&str>,
    user_agent: Option<&str>,
) -> Result<String> {
    if let Some(old) = replaced {
        app.store().delete_session(&token_hash(old)).await?;
    }
    let token = random_token();
    let ttl = app.settings().session_ttl;
    app.store()
        .insert_session(&NewSession {
            token_hash: &token_hash(&token),
            user_id,
            csrf_token: &random_token(),
            expires_at: now_ms() + ttl.as_millis() as i64,
            user_agent: user_agent.map(devices::clip_user_agent),
        })
        .await?;
    Ok(token)
}

pub async fn end_session(app: &App, user: &SignedIn) -> Result<()> {
    if let Some(hash) = &user.session_hash {
        app.store().delete_session(hash).await?;
    }
    Ok(())
}

// ---- the first admin -------------------------------------------------------------

/// With no users yet, a one-time setup token that lets the first visitor become the
/// admin; `None` once anyone exists.
pub async fn issue_setup_token(app: &App) -> Result<Option<String>> {
    if app.store().count_users().await? > 0 {
        return Ok(None);
    }
    let token = random_token();
    app.store().add_setup_token(&token_hash(&token)).await?;
    Ok(Some(token))
}

pub async fn setup_token_valid(app: &App, token: &str) -> Result<bool> {
    if token.is_empty() {
        return Ok(false);
    }
    Ok(app.store().setup_token_valid(&token_hash(token)).await?)
}

pub async fn any_users(app: &App) -> Result<bool> {
    Ok(app.store().count_users().await? > 0)
}

/// Create the first admin with a setup token; the token is used up. A rule broken
/// is `BadRequest` with the reason; an unknown or used token is `NotFound`.
pub async fn complete_setup(
    app: &App,
    token: &str,
    name: &str,
    password: String,
    repeated: &str,
) -> Result<User> {
    if !setup_token_valid(app, token).await? {
        return Err(AppError::NotFound);
    }
    check_new_password(name, &password, repeated)?;
    let password_hash = hash_password(password).await?;
    let user = app
        .store()
        .complete_setup(&token_hash(token), name, &password_hash)
        .await?
        .ok_or(AppError::NotFound)?;
    tracing::info!(user = %user.name, "first admin created through the setup link");
    Ok(user)
}

fn check_new_password(name: &str, password: &str, repeated: &str) -> Result<()> {
    check_user_name(name)
        .and_then(|_| check_password_rules(password))
        .map_err(AppError::BadRequest)?;
    if !constant_time_eq(password, repeated) {
        return Err(AppError::BadRequest("the passwords do not match".into()));
    }
    Ok(())
}

// ---- users -----------------------------------------------------------------------

pub async fn create_user(app: &App, name: &str, password: String, is_admin: bool) -> Result<User> {
    check_user_name(name).map_err(AppError::BadRequest)?;
    check_password_rules(&password).map_err(AppError::BadRequest)?;
    let hash = hash_password(password).await?;
    app.store()
        .create_user(name, &hash, is_admin)
        .await?
        .ok_or_else(|| AppError::BadRequest(format!("a user named {name} already exists")))
}

pub async fn list_users(app: &App) -> Result<Vec<User>> {
    Ok(app.store().list_users().await?)
}

pub async fn find_user(app: &App, name: &str) -> Result<User> {
    app.store()
        .user_by_name(name)
        .await?
        .ok_or_else(|| AppError::BadRequest(format!("no user named {name}")))
}

/// Set a user's password; every session of theirs ends.
pub async fn set_password(app: &App, name: &str, password: String) -> Result<()> {
    let user = find_user(app, name).await?;
    check_password_rules(&password).map_err(AppError::BadRequest)?;
    let hash = hash_password(password).await?;
    app.store().set_password(&user.id, &hash).await?;
    Ok(())
}

/// A signed-in user changes their own password, proving the current one. Every
/// session of theirs ends; the caller starts a new one for this device.
pub async fn change_password(
    app: &App,
    user: &SignedIn,
    current: String,
    password: String,
    repeated: &str,
) -> Result<()> {
    let stored = app
        .store()
        .user_by_name(&user.name)
        .await?
        .ok_or(AppError::Unauthorized)?;
    if !verify_password(Some(stored.password_hash), current).await {
        return Err(AppError::BadRequest(
            "The current password is wrong.".into(),
        ));
    }
    check_password_rules(&password).map_err(AppError::BadRequest)?;
    if !constant_time_eq(&password, repeated) {
        return Err(AppError::BadRequest(
            "The new passwords do not match.".into(),
        ));
    }
    let hash = hash_password(password).await?;
    app.store().set_password(&stored.id, &hash).await?;
    Ok(())
}

/// Delete a user; their items stay, without an author.
pub async fn delete_user(app: &App, name: &str) -> Result<()> {
    if !app.store().delete_user(name).await? {
        return Err(AppError::BadRequest(format!("no user named {name}")));
    }
    Ok(())
}

// ---- API tokens ------------------------------------------------------------------

pub const MAX_TOKEN_NAME_CHARS: usize = 64;

/// A token's name, trimmed: 1 to 64 characters.
pub fn token_name(raw: &str) -> Result<&str> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME_CHARS {
        return Err(AppError::BadRequest(format!(
            "token names are 1 to {MAX_TOKEN_NAME_CHARS} characters"
        )));
    }
    Ok(name)
}

/// Create an API token for a user; returns the secret, which is shown once and
/// stored only as its hash.
pub async fn create_token(app: &App, user_id: &str, name: &str) -> Result<String> {
    let name = token_name(name)?;
    let secret = random_token();
    app.store()
        .create_api_token(user_id, name, &token_hash(&secret))
        .await?;
    Ok(secret)
}

pub async fn list_tokens(app: &App, user_id: &str) -> Result<Vec<ApiToken>> {
    Ok(app.store().list_api_tokens(user_id).await?)
}

/// Revoke one of a user's tokens, named by its id or its name.
pub async fn revoke_token(app: &App, user_id: &str, id_or_name: &str) -> Result<()> {
    if app.store().revoke_api_token(user_id, id_or_name).await? == 0 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_names_are_one_to_sixty_four_characters() {
        let long = "x".repeat(MAX_TOKEN_NAME_CHARS);
        let too_long = "é".repeat(MAX_TOKEN_NAME_CHARS + 1);
        let cases: [(&str, Option<&str>); 5] = [
            ("laptop", Some("laptop")),
            ("  backup script  ", Some("backup script")),
            (long.as_str(), Some(long.as_str())),
            ("   ", None),
            (too_long.as_str(), None),
        ];
        for (raw, expected) in cases {
            assert_eq!(token_name(raw).ok(), expected, "{raw:?}");
        }
    }

    fn user(id: &str, name: &str, is_admin: bool) -> SignedIn {
        SignedIn {
            id: id.into(),
            name: name.into(),
            is_admin,
            csrf_token: "c".repeat(64),
            credential: Credential::Session,
            session_hash: None,
        }
    }

    #[test]
    fn csrf_is_required_of_sessions_only() {
        let session = user("1", "ann", false);
        assert!(session.check_csrf(Some(&"c".repeat(64))).is_ok());
        assert!(session.check_csrf(Some("wrong")).is_err());
        assert!(session.check_csrf(Some("")).is_err());
        assert!(session.check_csrf(None).is_err());
        let token = SignedIn {
            credential: Credential::ApiToken,
            ..user("1", "ann", false)
        };
        assert!(token.check_csrf(None).is_ok());
    }

    #[test]
    fn authors_and_admins_modify_items() {
        assert!(user("1", "ann", false).may_modify(Some("1")));
        assert!(!user("2", "ann", false).may_modify(Some("1")));
        assert!(!user("2", "bob", false).may_modify(None));
        assert!(user("3", "root", true).may_modify(Some("1")));
        assert!(user("3", "root", true).may_modify(None));
    }
}
