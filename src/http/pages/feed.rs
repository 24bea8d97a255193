//! The feed: items newest first, the note form and the upload form, deleting, and
//! one card rendered alone for the page's live updates.

use askama::Template;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use serde::Deserialize;

use super::layout::{ExpiryOption, ItemCard, Layout, expiry_options, render};
use crate::app::{App, items};
use crate::error::AppError;
use crate::http::AppState;
use crate::http::error::PageResult;
use crate::http::extract::{CheckedForm, CurrentUser, MaybeUser, NoFields};
use crate::http::upload::{self, FormCsrf};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(feed))
        .route("/notes", post(post_note))
        .route(
            "/items",
            post(upload_form).layer(DefaultBodyLimit::disable()),
        )
        .route("/items/{id}/delete", post(delete_item))
        .route("/items/{id}/card", get(card))
}

#[derive(Template)]
#[template(path = "feed.html")]
struct FeedPage {
    layout: Layout,
    /// The stream resumes after this event, so nothing is missed between the
    /// page load and the live connection.
    last_event_id: i64,
    items: Vec<ItemCard>,
    next_cursor: Option<String>,
    expiry_options: Vec<ExpiryOption>,
    max_note_bytes: usize,
}

#[derive(Deserialize)]
struct FeedQuery {
    before: Option<String>,
}

async fn feed(
    State(app): State<App>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<FeedQuery>,
) -> PageResult {
    let Some(user) = user else {
        return Ok(Redirect::to("/login").into_response());
    };
    let (page, last_event_id) = items::feed(&app, q.before.as_deref()).await?;
    let page = FeedPage {
        last_event_id,
        layout: Layout::for_user(&user),
        items: page
            .items()
            .iter()
            .map(|i| ItemCard::new(i, &user))
            .collect(),
        next_cursor: page.next_cursor.clone(),
        expiry_options: expiry_options(app.settings().default_expiry),
        max_note_bytes: app.settings().max_note_bytes,
    };
    Ok(render(StatusCode::OK, &page))
}

/// One card as the feed draws it, for the page's script to insert when the item
/// arrives live.
#[derive(Template)]
#[template(path = "item_card.html")]
struct CardFragment {
    layout: Layout,
    item: ItemCard,
}

async fn card(
    State(app): State<App>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> PageResult {
    let item = items::find(&app, &id).await?;
    let fragment = CardFragment {
        layout: Layout::for_user(&user),
        item: ItemCard::new(&item, &user),
    };
    Ok(render(StatusCode::OK, &fragment))
}

#[derive(Deserialize)]
struct NoteForm {
    text: String,
    expires: Option<String>,
}

async fn post_note(State(app): State<App>, posted: CheckedForm<NoteForm>) -> PageResult {
    let CheckedForm { user, form } = posted;
    let expiry = items::expiry(&app, form.expires.as_deref())?;
    items::create_note(&app, &user, &form.text, expiry).await?;
    Ok(Redirect::to("/").into_response())
}

/// The no-JavaScript upload: a plain multipart form post.
async fn upload_form(
    State(state): State<AppState>,
    CurrentUser(user): CurrentUser,
    req: Request,
) -> PageResult {
    let form = Multipart::from_request(req, &state)
        .await
        .map_err(|e| AppError::BadRequest(e.body_text()))?;
    let app = &state.app;
    let expiry = app.settings().default_expiry;
    upload::multipart(app, &user, form, expiry, FormCsrf::FieldFirst).await?;
    Ok(Redirect::to("/").into_response())
}

async fn delete_item(
    State(app): State<App>,
    Path(id): Path<String>,
    posted: CheckedForm<NoFields>,
) -> PageResult {
    items::delete(&app, &posted.user, &id).await?;
    Ok(Redirect::to("/").into_response())
}
