//! CSS, JavaScript, icons and the web app manifest, embedded in the binary so the
//! image needs no asset files. Pages link CSS and scripts with `?v=VERSION`, so
//! everything under /static/ can be cached for a year (the icons are named by the
//! manifest, which cannot carry the version: a new drawing gets a new name). The
//! manifest keeps its address, so it is cached for an hour only.

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::error::AppError;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const AN_HOUR: &str = "public, max-age=3600";

/// Served under /static/: name, content type, bytes.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../../static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/app.js"),
    ),
    (
        "tus.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../static/tus.js"),
    ),
    (
        "icons/ferry.svg",
        "image/svg+xml",
        include_bytes!("../../static/icons/ferry.svg"),
    ),
    (
        "icons/ferry-192.png",
        "image/png",
        include_bytes!("../../static/icons/ferry-192.png"),
    ),
    (
        "icons/ferry-512.png",
        "image/png",
        include_bytes!("../../static/icons/ferry-512.png"),
    ),
];

const MANIFEST: &[u8] = include_bytes!("../../static/manifest.webmanifest");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{*name}", get(asset))
        .route("/manifest.webmanifest", get(manifest))
}

async fn asset(Path(name): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(AppError::NotFound)?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, IMMUTABLE),
        ],
        *body,
    )
        .into_response())
}

/// The web app manifest: what makes Ferry installable, and its share target.
async fn manifest() -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/manifest+json"),
            (header::CACHE_CONTROL, AN_HOUR),
        ],
        MANIFEST,
    )
        .into_response()
}
