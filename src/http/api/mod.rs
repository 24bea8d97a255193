//! The JSON API under /api/: the same use cases as the pages, for scripts and for
//! the page's own script.

mod items;
mod openapi;
mod shares;
mod uploads;

use axum::Router;

use super::AppState;
pub use uploads::{TUS_REQUEST_HEADERS, TUS_RESPONSE_HEADERS};

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(items::router())
        .merge(shares::router())
        .merge(openapi::router())
        .merge(uploads::router())
}
