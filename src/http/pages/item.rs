//! One item's page: its card and its share links, with forms to create and revoke
//! them.

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use super::layout::{ExpiryOption, ItemCard, Layout, expiry_options, render};
use super::qr::QrSvg;
use crate::app::shares::{self, NewShare, Status};
use crate::app::{App, Share, SignedIn};
use crate::domain::{Expiry, now_ms, rfc3339};
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{CheckedForm, CurrentUser, NoFields, origin};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/items/{id}", get(item_page))
        .route("/items/{id}/shares", post(create_share))
        .route("/shares/{id}/revoke", post(revoke_share))
}

#[derive(Template)]
#[template(path = "item.html")]
struct ItemPage {
    layout: Layout,
    item: ItemCard,
    shares: Vec<ShareRow>,
    new_link: Option<NewLink>,
    expiry_options: Vec<ExpiryOption>,
}

/// A share link just created: absolute when Ferry knows where it is reached (then
/// with a QR code too), else a path the page's script completes.
struct NewLink {
    url: String,
    qr: Option<QrSvg>,
}

struct ShareRow {
    id: String,
    created_at: String,
    state: &'static str,
    /// When an active link expires, for the page to show in local time.
    until: Option<String>,
    downloads: i64,
    max_downloads: Option<i64>,
    has_password: bool,
    active: bool,
}

impl ShareRow {
    fn new(share: Share, now: i64) -> Self {
        let status = Status::of(&share, now);
        let active = status == Status::Active;
        Self {
            active,
            until: share.expires_at.filter(|_| active).map(rfc3339),
            id: share.id,
            created_at: rfc3339(share.created_at),
            state: status.label(),
            downloads: share.downloads,
            max_downloads: share.max_downloads,
            has_password: share.password_hash.is_some(),
        }
    }
}

async fn item_page(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> PageResult {
    render_item_page(&app, &user, &id, None).await
}

async fn render_item_page(
    app: &App,
    user: &SignedIn,
    id: &str,
    new_link: Option<NewLink>,
) -> PageResult {
    let (item, links) = shares::of_item(app, id).await?;
    let now = now_ms();
    let page = ItemPage {
        layout: Layout::for_user(user),
        item: ItemCard::new(&item, user),
        shares: links.into_iter().map(|s| ShareRow::new(s, now)).collect(),
        new_link,
        expiry_options: expiry_options(Expiry::Week),
    };
    Ok(render(StatusCode::OK, &page))
}

#[derive(Deserialize)]
struct ShareForm {
    expires: Option<String>,
    max_downloads: Option<String>,
    password: Option<String>,
}

async fn create_share(
    State(app): State<App>,
    Path(id): Path<String>,
    headers: HeaderMap,
    posted: CheckedForm<ShareForm>,
) -> PageResult {
    let CheckedForm { user, form } = posted;
    let new = NewShare {
        expires: form.expires,
        max_downloads: form.max_downloads,
        password: form.password,
    };
    let (share, token) = shares::create(&app, &user, &id, new).await?;
    let link = match app.absolute_base(origin(&headers)) {
        Some(base) => NewLink {
            url: shares::url_from(&base, &token),
            qr: QrSvg::of(&shares::url_from(&base, &token)),
        },
        None => NewLink {
            url: shares::url(&app, &token),
            qr: None,
        },
    };
    render_item_page(&app, &user, &share.item_id, Some(link)).await
}

async fn revoke_share(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    let item_id = shares::revoke(&app, &posted.user, &id).await?;
    Ok(Redirect::to(&format!("/items/{item_id}")).into_response())
}
