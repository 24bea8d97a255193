//! The HTTP adapter: the JSON API, the pages, live events and file downloads, each
//! a thin layer over `app`, merged here with the shared layers.

mod api;
mod assets;
mod content;
mod error;
mod events;
pub mod extract;
mod health;
mod pages;
mod server;
mod upload;

pub use server::serve;

use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::LatencyUnit;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};

use tokio_util::sync::CancellationToken;

use crate::app::App;

/// What handlers are given: the use cases, and the signal that the server is
/// stopping (it ends live streams and fails readiness).
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub shutdown: CancellationToken,
}

impl FromRef<AppState> for App {
    fn from_ref(state: &AppState) -> Self {
        state.app.clone()
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Content-Security-Policy for Ferry's own pages: only its own scripts and styles.
pub const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     media-src 'self'; connect-src 'self'; manifest-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn router(state: AppState) -> Router {
    let cors = cors_layer(&state.app.settings().cors_origins);
    Router::new()
        .merge(health::router())
        .merge(api::router())
        .merge(content::router())
        .merge(events::router())
        .merge(pages::router())
        .merge(assets::router())
        .layer(middleware::from_fn_with_state(state.clone(), record_metrics))
        // Inside the header defaults, so preflight answers carry them too.
        .layer(cors)
        // Defaults for every response; handlers that need others (downloads) set their own.
        .layer(SetResponseHeaderLayer::if_not_present(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        // Pages and API answers carry personal data (and a share page may carry its
        // password); nothing may keep them. Assets and downloads set their own.
        .layer(SetResponseHeaderLayer::if_not_present(header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .layer(SetResponseHeaderLayer::if_not_present(header::REFERRER_POLICY, HeaderValue::from_static("same-origin")))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
                    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
                    let request_id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), route = route.as_deref().unwrap_or("-"), path = logged_path(route.as_deref(), req.uri().path()), request_id)
                }).on_response(DefaultOnResponse::new().level(tracing::Level::INFO).latency_unit(LatencyUnit::Micros)))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// The path a request is logged with: its route where the path holds a secret
/// (share and sign-in links carry their token), so a log never holds a usable link.
fn logged_path<'a>(route: Option<&'a str>, path: &'a str) -> &'a str {
    match route {
        Some(route) if route.contains("{token}") => route,
        _ => path,
    }
}

/// Cross-origin API access only for configured origins; none by default, so
/// browsers keep other sites from reading Ferry's answers.
fn cors_layer(origins: &[String]) -> tower::util::Either<CorsLayer, tower::layer::util::Identity> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return tower::util::Either::Right(tower::layer::util::Identity::new());
    }
    tower::util::Either::Left(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::HEAD,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers(
                [header::AUTHORIZATION, header::CONTENT_TYPE]
                    .into_iter()
                    .chain(api::TUS_REQUEST_HEADERS.map(HeaderName::from_static))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(
                [header::LOCATION]
                    .into_iter()
                    .chain(api::TUS_RESPONSE_HEADERS.map(HeaderName::from_static))
                    .collect::<Vec<_>>(),
            )
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// The separate metrics listener serves nothing else.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .with_state(state)
}

async fn record_metrics(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let metrics = state.app.metrics();
    metrics
        .in_flight
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let response = next.run(req).await;
    metrics
        .in_flight
        .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    metrics.record(&method, &route, response.status().as_u16(), start.elapsed());
    response
}
