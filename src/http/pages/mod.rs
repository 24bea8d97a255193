//! Server-rendered pages, one module per screen. Everything here works without
//! JavaScript; app.js adds live updates, drag-and-drop and upload progress on top.

mod account;
mod feed;
mod item;
pub mod layout;
mod link;
mod qr;
mod session;
mod share;
mod share_target;

use axum::Router;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .merge(session::router())
        .merge(feed::router())
        .merge(item::router())
        .merge(account::router())
        .merge(link::router())
        .merge(share::router())
        .merge(share_target::router())
}
