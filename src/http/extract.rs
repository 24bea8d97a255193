//! Every extractor: who is signed in, the client's address, cookies, and bodies
//! whose rejections use Ferry's error format (JSON for the API, a page for forms)
//! instead of axum's plain-text defaults.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use axum::{Form, Json};
use ipnet::IpNet;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::PageError;
use crate::app::SignedIn;
use crate::app::accounts::{self, Credential, Presented};
use crate::error::AppError;

pub const SESSION_COOKIE: &str = "ferry_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

// ---- cookies ---------------------------------------------------------------------

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub fn session_cookie(token: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The id of a share kept while its sender signs in; short-lived like the share.
pub const PENDING_SHARE_COOKIE: &str = "ferry_pending_share";

pub fn pending_share_cookie(id: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{PENDING_SHARE_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_session_cookie(secure: bool) -> String {
    session_cookie("", Duration::ZERO, secure)
}

// ---- the signed-in user ----------------------------------------------------------

/// The signed-in user. Rejects with 401 when there is none.
#[derive(Clone, Debug)]
pub struct CurrentUser(pub SignedIn);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(user) = parts.extensions.get::<CurrentUser>() {
            return Ok(user.clone());
        }
        let user = authenticate(&parts.headers, state)
            .await?
            .ok_or(AppError::Unauthorized)?;
        // Cookie-authenticated API writes must carry the CSRF header.
        if user.credential == Credential::Session
            && parts.uri.path().starts_with("/api/")
            && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        {
            user.check_csrf(parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()))?;
        }
        let user = Self(user);
        parts.extensions.insert(user.clone());
        Ok(user)
    }
}

/// A Bearer token if the request has an Authorization header, else the session
/// cookie.
async fn authenticate(headers: &HeaderMap, state: &AppState) -> Result<Option<SignedIn>, AppError> {
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(AppError::Unauthorized)?;
        return accounts::authenticate(&state.app, Presented::ApiToken(token)).await;
    }
    match cookie_value(headers, SESSION_COOKIE).filter(|t| !t.is_empty()) {
        Some(token) => accounts::authenticate(&state.app, Presented::SessionToken(token)).await,
        None => Ok(None),
    }
}

/// The signed-in user, if any. Pages use it, so what fails (the database away)
/// is answered as a page.
pub struct MaybeUser(pub Option<SignedIn>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = PageError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match CurrentUser::from_request_parts(parts, state).await {
            Ok(CurrentUser(user)) => Ok(Self(Some(user))),
            Err(AppError::Unauthorized) => Ok(Self(None)),
            Err(e) => Err(PageError(e)),
        }
    }
}

/// A form posted by a signed-in user, its `csrf` field checked against the
/// session. Every state-changing page form comes through here.
pub struct CheckedForm<T> {
    pub user: SignedIn,
    pub form: T,
}

#[derive(Deserialize)]
struct WithCsrf<T> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    fields: T,
}

impl<T: DeserializeOwned> FromRequest<AppState> for CheckedForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        let CurrentUser(user) = CurrentUser::from_request_parts(&mut parts, state).await?;
        let HtmlForm(WithCsrf { csrf, fields }) =
            HtmlForm::<WithCsrf<T>>::from_request(Request::from_parts(parts, body), state).await?;
        user.check_csrf(Some(&csrf))?;
        Ok(Self { user, form: fields })
    }
}

/// A form with no fields but the CSRF token.
#[derive(Deserialize)]
pub struct NoFields {}

// ---- what the browser says of itself ---------------------------------------------

/// The User-Agent, which names the device on the account page.
pub fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

/// The `Origin` a browser sends with a form it posts: the address it reached
/// Ferry at, scheme included.
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::ORIGIN).and_then(|v| v.to_str().ok())
}

// ---- the client's address --------------------------------------------------------

/// The client address: the TCP peer, or the address a trusted proxy reports.
/// X-Forwarded-For is read right to left, skipping trusted proxies, so a client
/// cannot choose its address by sending the header itself.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !trusted.iter().any(|n| n.contains(&peer)) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut ip = peer;
    for hop in forwarded.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(addr) => {
                ip = addr;
                if !trusted.iter().any(|n| n.contains(&addr)) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    ip
}

/// The client's address as `client_ip` decides it, for rate limits and logs.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        Ok(Self(client_ip(
            peer,
            &parts.headers,
            &state.app.settings().trusted_proxies,
        )))
    }
}

// ---- bodies ----------------------------------------------------------------------

pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Json::<T>::from_request(req, state)
            .await
            .map(|Json(v)| Self(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

/// A path parameter; one that does not decode (`/api/items/%FF`) is a JSON 400
/// like every other API error, not axum's plain-text rejection.
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|e| AppError::BadRequest(e.body_text()))
    }
}

pub struct HtmlForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for HtmlForm<T> {
    type Rejection = PageError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Form::<T>::from_request(req, state)
            .await
            .map(|Form(v)| Self(v))
            .map_err(|e| {
                AppError::BadRequest(format!(
                    "the form is incomplete or malformed: {}",
                    e.body_text()
                ))
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "1.2.3.4, 6.6.6.6, 10.0.0.7".parse().expect("hv"),
        );
        let proxy: IpAddr = "10.0.0.1".parse().expect("ip");
        let stranger: IpAddr = "5.5.5.5".parse().expect("ip");
        assert_eq!(
            client_ip(proxy, &headers, &trusted),
            "6.6.6.6".parse::<IpAddr>().expect("ip")
        );
        assert_eq!(client_ip(stranger, &headers, &trusted), stranger);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &trusted), proxy);
    }

    #[test]
    fn cookies_parse() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; ferry_session=abc; b=2".parse().expect("hv"),
        );
        assert_eq!(cookie_value(&headers, SESSION_COOKIE), Some("abc"));
        assert!(session_cookie("t", Duration::from_secs(60), true).contains("; Secure"));
        assert!(
            session_cookie("t", Duration::from_secs(60), false).contains("HttpOnly; SameSite=Lax")
        );
    }

    async fn form<T: DeserializeOwned>(body: &'static str) -> Result<T, PageError> {
        let req = Request::builder()
            .method(Method::POST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .expect("request");
        HtmlForm::<T>::from_request(req, &())
            .await
            .map(|HtmlForm(v)| v)
    }

    #[tokio::test]
    async fn a_checked_form_reads_its_fields_beside_the_token() {
        #[derive(Deserialize)]
        struct Share {
            expires: Option<String>,
            max_downloads: Option<String>,
        }
        let Ok(parsed) = form::<WithCsrf<Share>>("csrf=abc&expires=day&max_downloads=").await
        else {
            panic!("the form did not parse");
        };
        assert_eq!(parsed.csrf, "abc");
        assert_eq!(parsed.fields.expires.as_deref(), Some("day"));
        assert_eq!(parsed.fields.max_downloads.as_deref(), Some(""));
        let Ok(empty) = form::<WithCsrf<NoFields>>("").await else {
            panic!("an empty form did not parse");
        };
        assert!(empty.csrf.is_empty());
    }
}
