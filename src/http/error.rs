//! Every HTTP rendering of an error: the status for each kind, a JSON body for the
//! API, a page for people. Server errors are logged here with their details and
//! answered with a generic body.

use askama::Template;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde_json::json;

use super::pages::layout::{Layout, render};
use crate::error::AppError;

/// Seconds a client waits before retrying a resource that another request holds.
const LOCKED_RETRY_AFTER: u64 = 2;
/// Seconds a client waits before retrying while the database is away: about what
/// a PostgreSQL restart takes.
const DATABASE_RETRY_AFTER: u64 = 5;

pub fn status(e: &AppError) -> StatusCode {
    match e {
        AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
        AppError::Unauthorized => StatusCode::UNAUTHORIZED,
        AppError::Forbidden(_) => StatusCode::FORBIDDEN,
        AppError::NotFound => StatusCode::NOT_FOUND,
        AppError::Gone(_) => StatusCode::GONE,
        AppError::Conflict(_) => StatusCode::CONFLICT,
        AppError::Locked(_) => StatusCode::LOCKED,
        // tus's own status for a checksum mismatch; 460 is a valid status code.
        AppError::ChecksumMismatch => StatusCode::from_u16(460).unwrap_or(StatusCode::BAD_REQUEST),
        AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        AppError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
        AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
        AppError::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        AppError::Unavailable | AppError::DatabaseUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AppError::Database(sqlx::Error::RowNotFound) => StatusCode::NOT_FOUND,
        AppError::Database(_) | AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Log what the client is not told: failures of the server itself, and (as a
/// warning) each request the database was away for.
fn log(e: &AppError, status: StatusCode) {
    if let AppError::DatabaseUnavailable(cause) = e {
        tracing::warn!(error = %cause, "database unavailable");
    } else if status.is_server_error()
        && status != StatusCode::SERVICE_UNAVAILABLE
        && status != StatusCode::INSUFFICIENT_STORAGE
    {
        tracing::error!(error = ?e, "request failed");
    }
}

/// Headers an error answer carries whatever its body.
fn add_headers(e: &AppError, response: &mut Response) {
    let headers = response.headers_mut();
    match e {
        AppError::TooManyRequests { retry_after } => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        AppError::Locked(_) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(LOCKED_RETRY_AFTER));
        }
        AppError::DatabaseUnavailable(_) => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(DATABASE_RETRY_AFTER));
        }
        AppError::RangeNotSatisfiable { len } => {
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
        }
        _ => {}
    }
}

/// The API's answer: `{"error": code, "message": text}`.
impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = status(&self);
        log(&self, status);
        let mut response = (
            status,
            Json(json!({ "error": self.code(), "message": self.public_message() })),
        )
            .into_response();
        add_headers(&self, &mut response);
        if let AppError::Unauthorized = self {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ferry\""),
            );
        }
        response
    }
}

/// Errors on pages render as HTML; a missing sign-in sends the browser to /login.
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

pub type PageResult<T = Response> = Result<T, PageError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    title: String,
    message: String,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let e = self.0;
        if let AppError::Unauthorized = e {
            return Redirect::to("/login").into_response();
        }
        let status = status(&e);
        log(&e, status);
        // Only a fault's page hides its message; "try again" and "no space" are
        // for the reader.
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return (status, Html("<!doctype html><title>Error</title><h1>Something went wrong</h1><p>The error was logged.</p>"))
                .into_response();
        }
        let page = ErrorPage {
            layout: Layout::anonymous(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            message: e.public_message(),
        };
        let mut response = render(status, &page);
        add_headers(&e, &mut response);
        response
    }
}
