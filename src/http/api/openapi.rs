//! GET /api/openapi.json: the API's OpenAPI 3.1 description, for client generators
//! and `schemathesis` (the `contract` nox session).
//!
//! The description is written by hand in docs/openapi.json and served byte for byte:
//! one source of truth, no YAML converter and no annotation framework. Hand-written
//! can drift, so tests/integration/openapi.rs fails when a route under /api/ and the
//! description disagree. It needs no authentication: it is the same on every Ferry
//! and says nothing about this instance or its users.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::http::AppState;

const OPENAPI_JSON: &str = include_str!("../../../docs/openapi.json");

pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(openapi))
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
