//! Long because it is one checklist of web-security behaviour, kept together so
//! nothing is missed.
//!
//! Web-security behaviour: headers on every kind of response, session handling,
//! token strength and storage, error bodies and CORS. What tests/integration/auth.rs
//! already covers (cookie flags at login, CSRF on forms, rate limiting) is not
//! repeated here.

use std::collections::BTreeSet;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(
    security_headers_on_every_kind_of_response,
    session_cookies_keep_their_flags_when_replaced_or_cleared,
    login_never_keeps_a_presented_session,
    ended_sessions_are_refused_when_replayed,
    tokens_are_stored_only_as_hashes,
    unknown_user_and_wrong_password_answer_alike,
    share_and_api_tokens_carry_at_least_128_random_bits,
    error_bodies_reveal_no_internals,
    database_errors_answer_with_a_generic_body,
    cors_is_closed_by_default,
    cors_allows_only_configured_origins,
);

const OTHER_ORIGIN: &str = "https://evil.example";
const APP_ORIGIN: &str = "https://app.example.org";

/// The headers every response carries, whatever produced it.
fn assert_security_headers(what: &str, headers: &HeaderMap) {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(get("x-content-type-options"), "nosniff", "{what}: nosniff");
    let csp = get("content-security-policy");
    assert!(!csp.is_empty(), "{what}: a Content-Security-Policy");
    assert!(
        get("x-frame-options").eq_ignore_ascii_case("deny")
            || csp.contains("frame-ancestors 'none'"),
        "{what}: framing forbidden (X-Frame-Options or frame-ancestors), CSP {csp:?}"
    );
    let referrer = get("referrer-policy");
    assert!(
        matches!(
            referrer.as_str(),
            "no-referrer" | "same-origin" | "strict-origin" | "strict-origin-when-cross-origin"
        ),
        "{what}: Referrer-Policy {referrer:?} leaks paths to other sites"
    );
}

async fn share_link(app: &TestApp, token: &str, item_id: &str, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(app.url(&format!("/api/items/{item_id}/shares")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("json")
}

/// The raw value of the session cookie a response sets.
fn session_cookie(headers: &HeaderMap) -> String {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("ferry_session="))
        .unwrap_or_else(|| panic!("a ferry_session cookie in {headers:?}"))
        .to_string()
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .trim_start_matches("ferry_session=")
        .split(';')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Sign in with a plain client and return the session token from Set-Cookie.
async fn sign_in(app: &TestApp, name: &str, password: &str, presented: Option<&str>) -> String {
    let mut req = app
        .browser()
        .post(app.url("/login"))
        .form(&[("name", name), ("password", password)]);
    if let Some(token) = presented {
        req = req.header("cookie", format!("ferry_session={token}"));
    }
    let res = req.send().await.expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login as {name}");
    cookie_value(&session_cookie(res.headers()))
}

/// A request authenticated by nothing but the given session token.
async fn with_session(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(app.url(path))
        .header("cookie", format!("ferry_session={token}"))
        .send()
        .await
        .expect("request")
}

async fn security_headers_on_every_kind_of_response(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("hal", false).await;
    let (browser, csrf) = app.login("hal", "password123").await;
    let anonymous = app.browser();
    let api = reqwest::Client::new();

    let note = app.post_note(&token, "hello").await;
    let note_id = note["id"].as_str().expect("id").to_string();
    let file: Value = app
        .upload(&token, "page.html", b"<script>alert(1)</script>".to_vec())
        .await
        .json()
        .await
        .expect("json");
    let file_id = file["id"].as_str().expect("id").to_string();
    let share = share_link(&app, &token, &file_id, json!({})).await;
    let share_token = share["token"].as_str().expect("token").to_string();
    let locked = share_link(&app, &token, &note_id, json!({ "password": "open sesame" })).await;
    let locked_token = locked["token"].as_str().expect("token").to_string();

    let mut seen = BTreeSet::new();
    let mut check = |what: &str, res: reqwest::Response| {
        seen.insert(res.status().as_u16());
        assert_security_headers(&format!("{what} ({})", res.status()), res.headers());
    };
    let send = |req: reqwest::RequestBuilder| async move { req.send().await.expect("request") };

    // Pages.
    check("login page", send(anonymous.get(app.url("/login"))).await);
    check(
        "feed without a session (redirect)",
        send(anonymous.get(app.url("/"))).await,
    );
    check("feed", send(browser.get(app.url("/"))).await);
    check(
        "item page",
        send(browser.get(app.url(&format!("/items/{file_id}")))).await,
    );
    check("account page", send(browser.get(app.url("/account"))).await);
    check(
        "failed sign-in",
        send(
            anonymous
                .post(app.url("/login"))
                .form(&[("name", "hal"), ("password", "wrong-password")]),
        )
        .await,
    );
    check(
        "form without its CSRF token",
        send(browser.post(app.url("/notes")).form(&[("text", "x")])).await,
    );
    check(
        "page error",
        send(browser.get(app.url("/items/00000000-0000-0000-0000-000000000000"))).await,
    );
    check(
        "form post (redirect)",
        send(
            browser
                .post(app.url("/notes"))
                .form(&[("text", "from a form"), ("csrf", csrf.as_str())]),
        )
        .await,
    );
    check(
        "stylesheet",
        send(anonymous.get(app.url("/static/app.css"))).await,
    );
    check(
        "script",
        send(anonymous.get(app.url("/static/app.js"))).await,
    );

    // API.
    check(
        "API list",
        send(api.get(app.url("/api/items")).bearer_auth(&token)).await,
    );
    check(
        "API create",
        send(
            api.post(app.url("/api/items"))
                .bearer_auth(&token)
                .json(&json!({ "text": "x" })),
        )
        .await,
    );
    check(
        "API without credentials",
        send(api.get(app.url("/api/items"))).await,
    );
    check(
        "API bad request",
        send(api.get(app.url("/api/items?limit=0")).bearer_auth(&token)).await,
    );
    check(
        "API not found",
        send(api.get(app.url("/api/items/not-an-id")).bearer_auth(&token)).await,
    );
    check(
        "API upload too large",
        send(
            // Its own client: the server closes this connection without
            // reading the announced body, so it must not be reused.
            reqwest::Client::new()
                .put(app.url("/api/items?name=big.bin"))
                .bearer_auth(&token)
                .header("content-length", "999999999999")
                .body(""),
        )
        .await,
    );
    check(
        "API rejection of a malformed JSON body",
        send(
            api.post(app.url(&format!("/api/items/{file_id}/shares")))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await,
    );

    // Downloads.
    let res = send(
        api.get(app.url(&format!("/items/{file_id}/content")))
            .bearer_auth(&token),
    )
    .await;
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .contains("sandbox"),
        "downloads are sandboxed"
    );
    check("file download", res);
    check(
        "note download",
        send(
            api.get(app.url(&format!("/items/{note_id}/content")))
                .bearer_auth(&token),
        )
        .await,
    );
    check(
        "ranged download",
        send(
            api.get(app.url(&format!("/items/{file_id}/content")))
                .bearer_auth(&token)
                .header("range", "bytes=0-3"),
        )
        .await,
    );
    check(
        "unsatisfiable range",
        send(
            api.get(app.url(&format!("/items/{file_id}/content")))
                .bearer_auth(&token)
                .header("range", "bytes=9999-"),
        )
        .await,
    );
    let etag = send(
        api.get(app.url(&format!("/items/{file_id}/content")))
            .bearer_auth(&token),
    )
    .await
    .headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    check(
        "not modified",
        send(
            api.get(app.url(&format!("/items/{file_id}/content")))
                .bearer_auth(&token)
                .header("if-none-match", etag),
        )
        .await,
    );

    // Share links.
    check(
        "share page",
        send(anonymous.get(app.url(&format!("/s/{share_token}")))).await,
    );
    check(
        "share download",
        send(anonymous.get(app.url(&format!("/s/{share_token}/content")))).await,
    );
    check(
        "locked share page",
        send(anonymous.get(app.url(&format!("/s/{locked_token}")))).await,
    );
    check(
        "share with a wrong password",
        send(
            anonymous
                .post(app.url(&format!("/s/{locked_token}")))
                .form(&[("password", "nope")]),
        )
        .await,
    );
    check(
        "unknown share",
        send(anonymous.get(app.url(&format!("/s/{}", "0".repeat(64))))).await,
    );
    check(
        "malformed share token",
        send(anonymous.get(app.url("/s/x"))).await,
    );

    // Operations and the router's own answers.
    check("liveness", send(anonymous.get(app.url("/healthz"))).await);
    check("readiness", send(anonymous.get(app.url("/readyz"))).await);
    check(
        "metrics refused",
        send(anonymous.get(app.url("/metrics"))).await,
    );
    check(
        "unknown route",
        send(anonymous.get(app.url("/no/such/page"))).await,
    );
    check(
        "wrong method",
        send(anonymous.delete(app.url("/login"))).await,
    );
    let events = api
        .get(app.url("/events"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("events");
    check("live events", events);

    for status in [200, 201, 206, 303, 304, 400, 401, 403, 404, 405, 413, 416] {
        assert!(
            seen.contains(&status),
            "no response with status {status} was checked: {seen:?}"
        );
    }
    app.stop().await;
}

async fn session_cookies_keep_their_flags_when_replaced_or_cleared(backend: Backend) {
    let ttl = std::time::Duration::from_secs(2 * 3600);
    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://ferry.example.org".parse().expect("url"));
        s.session_ttl = ttl;
    })
    .await;
    app.add_user("ida", "password123", false).await;
    let hardened = |what: &str, cookie: &str, max_age: u64| {
        let attributes: BTreeSet<String> = cookie
            .split(';')
            .skip(1)
            .map(|a| a.trim().to_ascii_lowercase())
            .collect();
        for wanted in [
            "path=/".to_string(),
            "httponly".to_string(),
            "secure".to_string(),
            "samesite=lax".to_string(),
            format!("max-age={max_age}"),
        ] {
            assert!(
                attributes.contains(&wanted),
                "{what}: {wanted} missing in {cookie:?}"
            );
        }
        assert!(
            !attributes.iter().any(|a| a.starts_with("domain=")),
            "{what}: a host-only cookie, no Domain attribute: {cookie:?}"
        );
    };

    // A plain client: the cookie store would not send a Secure cookie over http.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let res = client
        .post(app.url("/login"))
        .form(&[("name", "ida"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    let cookie = session_cookie(res.headers());
    hardened("sign-in", &cookie, ttl.as_secs());
    let session = cookie_value(&cookie);
    let page = with_session(&app, &session, "/account")
        .await
        .text()
        .await
        .expect("page");
    let csrf = crate::helpers::csrf_from(&page);

    let res = client
        .post(app.url("/account/password"))
        .header("cookie", format!("ferry_session={session}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "password123"),
            ("password", "new-password-2"),
            ("password2", "new-password-2"),
        ])
        .send()
        .await
        .expect("change password");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(res.headers());
    hardened("after a password change", &cookie, ttl.as_secs());
    let session = cookie_value(&cookie);
    let csrf = crate::helpers::csrf_from(
        &with_session(&app, &session, "/account")
            .await
            .text()
            .await
            .expect("page"),
    );

    let res = client
        .post(app.url("/logout"))
        .header("cookie", format!("ferry_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = session_cookie(res.headers());
    hardened("sign-out", &cookie, 0);
    assert_eq!(cookie_value(&cookie), "", "the cookie is emptied");
    app.stop().await;
}

async fn login_never_keeps_a_presented_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("mallory", "password123", false).await;
    app.add_user("jon", "password123", false).await;
    // The attacker's own valid session, planted in the victim's browser.
    let planted = sign_in(&app, "mallory", "password123", None).await;
    assert_eq!(
        with_session(&app, &planted, "/api/items").await.status(),
        200
    );

    let fresh = sign_in(&app, "jon", "password123", Some(&planted)).await;
    assert_ne!(fresh, planted, "a new session id at sign-in");
    assert_eq!(
        with_session(&app, &planted, "/api/items").await.status(),
        401,
        "the presented session ends at sign-in"
    );
    let page = with_session(&app, &fresh, "/")
        .await
        .text()
        .await
        .expect("feed");
    assert!(page.contains("jon") && !page.contains("mallory"));

    // Signing in again gives another id and another CSRF token.
    let again = sign_in(&app, "jon", "password123", None).await;
    assert_ne!(again, fresh);
    let csrf = |token: String| {
        let app = &app;
        async move {
            crate::helpers::csrf_from(
                &with_session(app, &token, "/")
                    .await
                    .text()
                    .await
                    .expect("feed"),
            )
        }
    };
    assert_ne!(csrf(again.clone()).await, csrf(fresh.clone()).await);
    assert_ne!(
        csrf(again.clone()).await,
        again,
        "the CSRF token is not the session id"
    );
    app.stop().await;
}

async fn ended_sessions_are_refused_when_replayed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("kim", "password123", false).await;
    let csrf_of = |page: String| crate::helpers::csrf_from(&page);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    // Sign-out: the old cookie value, replayed by hand, is worthless.
    let session = sign_in(&app, "kim", "password123", None).await;
    let csrf = csrf_of(
        with_session(&app, &session, "/")
            .await
            .text()
            .await
            .expect("feed"),
    );
    let res = client
        .post(app.url("/logout"))
        .header("cookie", format!("ferry_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        with_session(&app, &session, "/api/items").await.status(),
        401
    );
    let res = with_session(&app, &session, "/").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");

    // Password change: every earlier session of the user ends, the one that made
    // the change included (its browser gets a new one).
    let laptop = sign_in(&app, "kim", "password123", None).await;
    let phone = sign_in(&app, "kim", "password123", None).await;
    let csrf = csrf_of(
        with_session(&app, &laptop, "/account")
            .await
            .text()
            .await
            .expect("page"),
    );
    let res = client
        .post(app.url("/account/password"))
        .header("cookie", format!("ferry_session={laptop}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "password123"),
            ("password", "new-password-3"),
            ("password2", "new-password-3"),
        ])
        .send()
        .await
        .expect("change");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let renewed = cookie_value(&session_cookie(res.headers()));
    assert_ne!(renewed, laptop);
    for (what, token) in [("laptop", &laptop), ("phone", &phone)] {
        assert_eq!(
            with_session(&app, token, "/api/items").await.status(),
            401,
            "{what}'s old session after the password change"
        );
    }
    assert_eq!(
        with_session(&app, &renewed, "/api/items").await.status(),
        200
    );
    app.stop().await;
}

/// Run one statement that returns rows of one text column, on either backend.
async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    use ferry::store::Store;
    match &app.state.store {
        Store::Sqlite { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await,
        Store::Postgres { pool, .. } => sqlx::query_scalar(sql).fetch_all(pool).await,
    }
    .expect("query")
}

/// Run statements with no parameters on either backend.
async fn run_sql(app: &TestApp, sql: &str) {
    use ferry::store::Store;
    match &app.state.store {
        Store::Sqlite { pool, .. } => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
        Store::Postgres { pool, .. } => sqlx::raw_sql(sql).execute(pool).await.map(|_| ()),
    }
    .expect("sql");
    app.state.store.cache().forget_all();
}

async fn tokens_are_stored_only_as_hashes(backend: Backend) {
    use ferry::auth::token_hash;
    let app = TestApp::spawn(backend).await;
    let api_token = app.user_with_token("lea", false).await;
    let session = sign_in(&app, "lea", "password123", None).await;
    let item = app.post_note(&api_token, "shared").await;
    let share = share_link(
        &app,
        &api_token,
        item["id"].as_str().expect("id"),
        json!({}),
    )
    .await;
    let share_token = share["token"].as_str().expect("token");

    for (table, secret) in [
        ("sessions", session.as_str()),
        ("api_tokens", api_token.as_str()),
        ("shares", share_token),
    ] {
        let stored = texts(&app, &format!("select token_hash from {table}")).await;
        assert!(
            stored.contains(&token_hash(secret)),
            "{table} holds the token's SHA-256"
        );
        assert!(
            !stored.iter().any(|s| s == secret),
            "{table} holds no raw token"
        );
    }
    // Nowhere else either: no column of any of these tables holds a raw secret.
    for table in ["sessions", "api_tokens", "shares", "users", "setup_tokens"] {
        let columns = match backend {
            Backend::Sqlite => texts(&app, &format!("select name from pragma_table_info('{table}')")).await,
            Backend::Postgres => {
                texts(
                    &app,
                    &format!("select column_name::text from information_schema.columns where table_name = '{table}'"),
                )
                .await
            }
        };
        for column in columns {
            let values = texts(
                &app,
                &format!("select cast({column} as text) from {table} where {column} is not null"),
            )
            .await;
            for secret in [session.as_str(), api_token.as_str(), share_token] {
                assert!(
                    !values.iter().any(|v| v.contains(secret)),
                    "{table}.{column} holds a raw token"
                );
            }
        }
    }
    app.stop().await;
}

async fn unknown_user_and_wrong_password_answer_alike(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("max", "password123", false).await;
    let attempt = |name: &'static str| {
        app.browser()
            .post(app.url("/login"))
            .form(&[("name", name), ("password", "not-the-password")])
            .send()
    };
    let header_names = |res: &reqwest::Response| -> BTreeSet<String> {
        res.headers()
            .keys()
            .map(|k| k.as_str().to_string())
            .filter(|k| k != "date" && k != "x-request-id" && k != "content-length")
            .collect()
    };
    let unknown = attempt("nobody").await.expect("login");
    let wrong = attempt("max").await.expect("login");
    assert_eq!(wrong.status(), unknown.status());
    assert_eq!(header_names(&wrong), header_names(&unknown));
    assert!(!wrong.headers().contains_key("set-cookie"));
    assert!(!unknown.headers().contains_key("set-cookie"));

    // The per-account limit counts unknown names like real ones, so the limiter
    // does not tell which accounts exist either.
    let mut limited_after = Vec::new();
    for name in ["nobody", "max"] {
        let mut n = 1;
        loop {
            let status = attempt(name).await.expect("login").status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                break;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            n += 1;
            assert!(n < 10, "{name} was never rate limited");
        }
        limited_after.push(n);
    }
    assert_eq!(limited_after[0], limited_after[1], "same limit for both");
    app.stop().await;
}

/// A token as issued: hex for at least 128 bits.
fn token_bytes(token: &str) -> Vec<u8> {
    assert!(
        token.len().is_multiple_of(2) && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "{token:?} is hex"
    );
    let bytes: Vec<u8> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).expect("hex"))
        .collect();
    assert!(bytes.len() >= 16, "{token:?} has fewer than 128 bits");
    bytes
}

/// Rough check that the bits come from a random source: about half of them set.
fn assert_random(what: &str, tokens: &[String]) {
    let unique: BTreeSet<&String> = tokens.iter().collect();
    assert_eq!(unique.len(), tokens.len(), "{what}: tokens repeat");
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| token_bytes(t)).collect();
    let bits = bytes.len() as f64 * 8.0;
    let ones: u32 = bytes.iter().map(|b| b.count_ones()).sum();
    let share = f64::from(ones) / bits;
    // 4096+ bits: a fair source stays well inside this band.
    assert!(
        (0.45..=0.55).contains(&share),
        "{what}: {share:.3} of the bits are set"
    );
    // No byte position is fixed across tokens (a counter or a padded value).
    let len = token_bytes(&tokens[0]).len();
    for pos in 0..len {
        let values: BTreeSet<u8> = tokens.iter().map(|t| token_bytes(t)[pos]).collect();
        assert!(values.len() > 1, "{what}: byte {pos} never changes");
    }
}

async fn share_and_api_tokens_carry_at_least_128_random_bits(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let api_token = app.user_with_token("ned", false).await;
    let item = app.post_note(&api_token, "to share").await;
    let item_id = item["id"].as_str().expect("id").to_string();

    let mut shares = Vec::new();
    for _ in 0..16 {
        let share = share_link(&app, &api_token, &item_id, json!({})).await;
        shares.push(share["token"].as_str().expect("token").to_string());
    }
    assert_random("share tokens", &shares);

    // API tokens as the account page issues them.
    let (browser, csrf) = app.login("ned", "password123").await;
    let mut api_tokens = Vec::new();
    for i in 0..16 {
        let page = browser
            .post(app.url("/account/tokens"))
            .form(&[("csrf", csrf.as_str()), ("name", &format!("t{i}"))])
            .send()
            .await
            .expect("create token")
            .text()
            .await
            .expect("page");
        let token = page
            .split("<input")
            .find(|s| s.contains("aria-label=\"New API token\""))
            .and_then(|s| s.split("value=\"").nth(1))
            .and_then(|s| s.split('"').next())
            .expect("new token on the page")
            .to_string();
        api_tokens.push(token);
    }
    assert_random("API tokens", &api_tokens);
    // And sessions, setup links and CSRF tokens, which share the generator.
    let generated: Vec<String> = (0..16).map(|_| ferry::auth::random_token()).collect();
    assert_random("random_token", &generated);
    app.stop().await;
}

/// Words that betray internals: SQL, driver names, source paths, panics.
fn assert_no_internals(what: &str, body: &str) {
    let lower = body.to_ascii_lowercase();
    for needle in [
        "select ",
        "insert ",
        "from items",
        "no such table",
        "does not exist",
        "relation ",
        "sqlx",
        "sqlite",
        "postgres",
        "database",
        "panicked",
        "backtrace",
        "stack",
        ".rs:",
        "src/",
        "/home/",
        "/root/",
        "/tmp/",
    ] {
        assert!(!lower.contains(needle), "{what}: {needle:?} in {body:?}");
    }
}

async fn error_bodies_reveal_no_internals(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ola", false).await;
    let item = app.post_note(&token, "x").await;
    let item_id = item["id"].as_str().expect("id").to_string();
    let api = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "malformed note JSON",
            api.post(app.url("/api/items"))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"text\": \"x\", select * from users"),
        ),
        (
            "malformed share JSON",
            api.post(app.url(&format!("/api/items/{item_id}/shares")))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("[1, 2"),
        ),
        (
            "share JSON of the wrong shape",
            api.post(app.url(&format!("/api/items/{item_id}/shares")))
                .bearer_auth(&token)
                .json(&json!({ "max_downloads": "' or 1=1 --" })),
        ),
        (
            "bad item id",
            api.get(app.url("/api/items/1%27%20or%20%271%27%3D%271"))
                .bearer_auth(&token),
        ),
        (
            "not UTF-8 in the path",
            api.get(app.url("/api/items/%FF%FE")).bearer_auth(&token),
        ),
        (
            "bad share id",
            api.delete(app.url("/api/shares/1;drop table shares"))
                .bearer_auth(&token),
        ),
        (
            "bad cursor",
            api.get(app.url("/api/items?cursor=%27%3B--"))
                .bearer_auth(&token),
        ),
        (
            "absurd limit",
            api.get(app.url("/api/items?limit=99999999999999999999999"))
                .bearer_auth(&token),
        ),
        (
            "malformed multipart",
            api.post(app.url("/api/items"))
                .bearer_auth(&token)
                .header("content-type", "multipart/form-data; boundary=zz")
                .body("--zz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nabc"),
        ),
        (
            "bad expiry",
            api.put(app.url("/api/items?name=a.txt&expires=forever"))
                .bearer_auth(&token)
                .body("x"),
        ),
        (
            "malformed login form",
            api.post(app.url("/login"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("name=%ZZ"),
        ),
        (
            "bad feed cursor",
            api.get(app.url("/?before=nope")).bearer_auth(&token),
        ),
        (
            "bad share token",
            api.get(app.url("/s/..%2F..%2Fetc%2Fpasswd")),
        ),
    ];
    for (what, req) in cases {
        let res = req.send().await.expect("request");
        let status = res.status();
        assert!(status.is_client_error(), "{what}: {status}");
        let body = res.text().await.expect("body");
        assert_no_internals(what, &body);
    }
    app.stop().await;
}

async fn database_errors_answer_with_a_generic_body(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("pia", false).await;
    let (browser, _) = app.login("pia", "password123").await;
    let item = app.post_note(&token, "soon gone").await;
    let share = share_link(&app, &token, item["id"].as_str().expect("id"), json!({})).await;
    let share_token = share["token"].as_str().expect("token").to_string();

    // Break the database under the running server.
    run_sql(
        &app,
        "drop table shares; drop table item_files; drop table items",
    )
    .await;

    let res = reqwest::Client::new()
        .get(app.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers("API 500", res.headers());
    let body: Value = res.json().await.expect("json");
    assert_eq!(
        body,
        json!({ "error": "internal", "message": "internal server error" })
    );

    let res = browser.get(app.url("/")).send().await.expect("feed");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers("page 500", res.headers());
    let body = res.text().await.expect("page");
    assert!(body.contains("Something went wrong"), "{body}");
    assert_no_internals("page 500", &body);

    let res = reqwest::Client::new()
        .get(app.url(&format!("/s/{share_token}")))
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_security_headers("share page 500", res.headers());
    let body = res.text().await.expect("page");
    assert_no_internals("share page 500", &body);

    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .json(&json!({ "text": "into the void" }))
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_no_internals("API write 500", &res.text().await.expect("body"));
    app.stop().await;
}

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(Method::OPTIONS, app.url("/api/items"))
        .header("origin", origin)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("preflight")
}

async fn cross_origin_get(app: &TestApp, token: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/api/items"))
        .bearer_auth(token)
        .header("origin", origin)
        .send()
        .await
        .expect("get")
}

async fn cors_is_closed_by_default(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("quinn", false).await;
    for origin in [OTHER_ORIGIN, APP_ORIGIN, "null"] {
        let res = preflight(&app, origin).await;
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "preflight from {origin}: {:?}",
            res.headers()
        );
        assert!(!res.headers().contains_key("access-control-allow-methods"));
        let res = cross_origin_get(&app, &token, origin).await;
        assert_eq!(res.status(), 200);
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "GET from {origin}"
        );
        assert!(
            !res.headers()
                .contains_key("access-control-allow-credentials")
        );
    }
    app.stop().await;
}

async fn cors_allows_only_configured_origins(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| s.cors_origins = vec![APP_ORIGIN.to_string()]).await;
    let token = app.user_with_token("rae", false).await;

    let res = preflight(&app, APP_ORIGIN).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_security_headers("allowed preflight", res.headers());
    assert_eq!(res.headers()["access-control-allow-origin"], APP_ORIGIN);
    let methods = res.headers()["access-control-allow-methods"]
        .to_str()
        .expect("methods")
        .to_ascii_uppercase();
    assert!(methods.contains("DELETE"), "{methods}");
    let allowed_headers = res.headers()["access-control-allow-headers"]
        .to_str()
        .expect("headers")
        .to_ascii_lowercase();
    assert!(
        allowed_headers.contains("authorization"),
        "{allowed_headers}"
    );
    assert!(
        !res.headers()
            .contains_key("access-control-allow-credentials"),
        "cookies never cross origins; scripts use bearer tokens"
    );
    let res = cross_origin_get(&app, &token, APP_ORIGIN).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["access-control-allow-origin"], APP_ORIGIN);

    for origin in [
        OTHER_ORIGIN,
        "https://app.example.org.evil.example",
        "http://app.example.org",
        "null",
    ] {
        let res = preflight(&app, origin).await;
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "preflight from {origin}: {:?}",
            res.headers()
        );
        assert_security_headers("refused preflight", res.headers());
        let res = cross_origin_get(&app, &token, origin).await;
        assert!(
            !res.headers().contains_key("access-control-allow-origin"),
            "GET from {origin}"
        );
    }
    app.stop().await;
}

#[test]
fn constant_time_comparison_is_a_plain_equality() {
    use ferry::auth::constant_time_eq;
    assert!(constant_time_eq("", ""));
    assert!(constant_time_eq("abc", "abc"));
    assert!(!constant_time_eq("abc", "abd"));
    assert!(!constant_time_eq("abc", "ab"));
    assert!(!constant_time_eq("", "a"));
    let token = ferry::auth::random_token();
    assert!(constant_time_eq(&token, &token.clone()));
    assert!(!constant_time_eq(
        &token,
        &token.to_uppercase().replace(char::is_numeric, "0")
    ));
}

/// Timing is not asserted; instead the source is held to the rules: the CSRF check
/// uses the constant-time comparison, credentials are looked up by their hash, and
/// no token is compared with `==` anywhere.
#[test]
fn secrets_are_compared_in_constant_time_or_by_hash() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    // Passwords and tokens in auth.rs, their use for sign-in in app/accounts.rs.
    let auth = std::fs::read_to_string(root.join("auth.rs")).expect("src/auth.rs")
        + &std::fs::read_to_string(root.join("app/accounts.rs")).expect("src/app/accounts.rs");
    let body_of = |name: &str| -> String {
        let start = auth
            .find(&format!("fn {name}("))
            .unwrap_or_else(|| panic!("fn {name} in src/auth.rs or src/app/accounts.rs"));
        auth[start..]
            .split("\n    }\n")
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let csrf = body_of("check_csrf");
    assert!(
        csrf.contains("constant_time_eq("),
        "check_csrf uses constant_time_eq: {csrf}"
    );
    let ct = body_of("constant_time_eq");
    assert!(ct.contains("ct_eq"), "constant_time_eq uses subtle: {ct}");
    let authenticate = auth
        .split("async fn authenticate(")
        .nth(1)
        .and_then(|s| s.split("\n}\n").next())
        .expect("fn authenticate");
    assert!(
        authenticate.contains("api_token_user(&token_hash(")
            && authenticate.contains("token_hash(token)"),
        "API tokens and sessions are looked up by hash"
    );

    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let compares = code.contains("==") || code.contains("!=");
            let secret = ["csrf", "token", "password", "secret"]
                .iter()
                .any(|w| code.to_ascii_lowercase().contains(w));
            // Lengths, counts, enum tags, a form's two new-password fields, and
            // the settings table's `secret` flag are not secrets being compared.
            let harmless = [".len()", "== 0", "Credential::", "password2", "d.secret"]
                .iter()
                .any(|w| code.contains(w));
            assert!(
                !(compares && secret && !harmless),
                "{}:{}: a secret compared with == or != : {line}",
                file.display(),
                n + 1
            );
        }
    }
}
