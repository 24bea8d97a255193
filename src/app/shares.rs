//! Share links: public, revocable links to one item for people without an account.
//! The token is shown once and stored hashed; a link may carry an expiry, a
//! download limit and a password.

use std::net::IpAddr;

use super::{App, SignedIn, items};
use crate::auth::{hash_password, random_token, token_hash, verify_password};
use crate::domain::Expiry;
use crate::error::{AppError, Result};
use crate::store::{Item, Share, now_ms};

const MAX_DOWNLOADS: i64 = 1_000_000;
const MAX_PASSWORD_BYTES: usize = 1024;

/// A new link's options as a person or a script typed them.
#[derive(Default)]
pub struct NewShare {
    pub expires: Option<String>,
    pub max_downloads: Option<String>,
    pub password: Option<String>,
}

/// Create a share link; returns the share and its secret token.
pub async fn create(
    app: &App,
    user: &SignedIn,
    item_id: &str,
    new: NewShare,
) -> Result<(Share, String)> {
    let item = items::find(app, item_id).await?;
    let expiry =
        Expiry::parse(new.expires.as_deref().unwrap_or("never")).map_err(AppError::BadRequest)?;
    let max_downloads = match new
        .max_downloads
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_DOWNLOADS).contains(n))
                .ok_or_else(|| {
                    AppError::BadRequest(format!(
                        "max_downloads must be a number from 1 to {MAX_DOWNLOADS}"
                    ))
                })?,
        ),
    };
    let password_hash = match new.password.filter(|p| !p.is_empty()) {
        Some(p) if p.len() > MAX_PASSWORD_BYTES => {
            return Err(AppError::BadRequest("the password is too long".into()));
        }
        Some(p) => Some(hash_password(p).await?),
        None => None,
    };
    let now = now_ms();
    let share = Share {
        id: uuid::Uuid::now_v7().to_string(),
        item_id: item.id,
        created_by: Some(user.id.clone()),
        created_at: now,
        expires_at: expiry.expires_at(now),
        max_downloads,
        downloads: 0,
        password_hash,
        revoked_at: None,
    };
    let token = random_token();
    // Deleted between the look-up above and this insert: as if never found.
    if !app
        .store()
        .create_share(&share, &token_hash(&token))
        .await?
    {
        return Err(AppError::NotFound);
    }
    Ok((share, token))
}

/// The link to give out. Without FERRY_PUBLIC_URL it is relative; the page's
/// script makes it absolute.
pub fn url(app: &App, token: &str) -> String {
    url_from(&app.absolute_base(None).unwrap_or_default(), token)
}

/// The link under `base` (see `App::absolute_base`).
pub fn url_from(base: &str, token: &str) -> String {
    format!("{base}/s/{token}")
}

/// The links of an item, newest first.
pub async fn of_item(app: &App, item_id: &str) -> Result<(Item, Vec<Share>)> {
    let item = items::find(app, item_id).await?;
    let shares = app.store().shares_of_item(&item.id).await?;
    Ok((item, shares))
}

/// Revoke a share; returns its item's id. Any member may revoke: shares are
/// instance-wide like the items themselves.
pub async fn revoke(app: &App, _user: &SignedIn, share_id: &str) -> Result<String> {
    uuid::Uuid::parse_str(share_id).map_err(|_| AppError::NotFound)?;
    app.store()
        .revoke_share(share_id)
        .await?
        .ok_or(AppError::NotFound)
}

/// Where a link stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Revoked,
    Expired,
    UsedUp,
}

impl Status {
    pub fn of(share: &Share, now: i64) -> Self {
        if share.revoked_at.is_some() {
            Self::Revoked
        } else if share.expires_at.is_some_and(|t| t <= now) {
            Self::Expired
        } else if share.max_downloads.is_some_and(|m| share.downloads >= m) {
            Self::UsedUp
        } else {
            Self::Active
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::UsedUp => "used up",
        }
    }

    fn refusal(self) -> Option<AppError> {
        match self {
            Self::Active => None,
            Self::Revoked => Some(AppError::Gone("this link was revoked")),
            Self::Expired => Some(AppError::Gone("this link has expired")),
            Self::UsedUp => Some(USED_UP),
        }
    }
}

const USED_UP: AppError = AppError::Gone("this link reached its download limit");

/// The share a token opens and its item, or why it opens nothing.
pub async fn resolve(app: &App, token: &str) -> Result<(Share, Item)> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::NotFound);
    }
    let share = app
        .store()
        .share_by_token(&token_hash(token))
        .await?
        .ok_or(AppError::NotFound)?;
    if let Some(refusal) = Status::of(&share, now_ms()).refusal() {
        return Err(refusal);
    }
    let item = app
        .store()
        .item(&share.item_id)
        .await?
        .ok_or(AppError::Gone("the shared item no longer exists"))?;
    Ok((share, item))
}

/// A visitor's password attempt and where it came from.
pub struct Attempt {
    pub ip: IpAddr,
    pub password: String,
}

/// Check a share's password, rate limited per client and per share. `Ok(None)`
/// for a link without one; `Unauthorized` when one is needed but none was given.
pub async fn check_password(
    app: &App,
    share: &Share,
    attempt: Option<Attempt>,
) -> Result<Option<String>> {
    let Some(hash) = &share.password_hash else {
        return Ok(None);
    };
    let Some(Attempt { ip, password }) = attempt else {
        return Err(AppError::Unauthorized);
    };
    let key = format!("share:{}", share.id);
    let limiter = app.limiter();
    limiter
        .check(ip, &key)
        .map_err(|retry_after| AppError::TooManyRequests { retry_after })?;
    if verify_password(Some(hash.clone()), password.clone()).await {
        Ok(Some(password))
    } else {
        limiter.failed(ip, &key);
        Err(AppError::Forbidden("wrong password"))
    }
}

/// Count one use of a link (reading a shared note, or starting a download).
pub async fn count_use(app: &App, share: &Share) -> Result<()> {
    if !app.store().count_share_download(&share.id).await? {
        return Err(USED_UP);
    }
    Ok(())
}

/// Open a shared item for download: the link is usable, the password right, and
/// the download counted unless it `continues` one already counted (a resumed or
/// seeking request).
pub async fn authorize_download(
    app: &App,
    token: &str,
    attempt: Option<Attempt>,
    continues: bool,
) -> Result<Item> {
    let (share, item) = resolve(app, token).await?;
    check_password(app, &share, attempt)
        .await
        .map_err(|e| match e {
            AppError::Unauthorized => AppError::Forbidden("this link needs its password"),
            other => other,
        })?;
    if !continues {
        count_use(app, &share).await?;
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share() -> Share {
        Share {
            id: "s".into(),
            item_id: "i".into(),
            created_by: None,
            created_at: 0,
            expires_at: None,
            max_downloads: None,
            downloads: 0,
            password_hash: None,
            revoked_at: None,
        }
    }

    #[test]
    fn a_link_is_active_until_revoked_expired_or_used_up() {
        assert_eq!(Status::of(&share(), 10), Status::Active);
        let revoked = Share {
            revoked_at: Some(5),
            expires_at: Some(1),
            ..share()
        };
        assert_eq!(Status::of(&revoked, 10), Status::Revoked);
        let expiring = Share {
            expires_at: Some(10),
            ..share()
        };
        assert_eq!(Status::of(&expiring, 9), Status::Active);
        assert_eq!(Status::of(&expiring, 10), Status::Expired);
        let limited = Share {
            max_downloads: Some(2),
            downloads: 2,
            ..share()
        };
        assert_eq!(Status::of(&limited, 0), Status::UsedUp);
        assert_eq!(Status::UsedUp.label(), "used up");
    }
}
