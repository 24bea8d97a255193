//! CSS and JavaScript, embedded in the binary so the image needs no asset files.
//! Pages link them with `?v=VERSION`, so they can be cached for a year.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::AppError;

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/app.js"),
    ),
    (
        "tus.js",
        "text/javascript; charset=utf-8",
        include_str!("../../static/tus.js"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{name}", get(asset))
}

async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        *body,
    )
        .into_response())
}
