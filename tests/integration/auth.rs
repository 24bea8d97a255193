use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, csrf_from, execute};

both_backends!(
    login_sets_a_fresh_hardened_session,
    wrong_passwords_are_indistinguishable_and_rate_limited,
    forms_need_the_csrf_token,
    logout_and_password_change_end_sessions,
    expired_sessions_are_refused,
    setup_link_creates_the_first_admin_once,
    api_tokens_from_the_account_page,
);

async fn login_sets_a_fresh_hardened_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("amy", "password123", false).await;
    let client = app.browser();
    let res = client
        .post(app.url("/login"))
        .header("cookie", "ferry_session=planted-by-attacker")
        .form(&[("name", "amy"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(cookie.starts_with("ferry_session="), "{cookie}");
    assert!(
        !cookie.contains("planted-by-attacker"),
        "a new session id at login"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http without a public https URL"
    );
    let token = cookie
        .trim_start_matches("ferry_session=")
        .split(';')
        .next()
        .expect("value");
    assert_eq!(token.len(), 64, "256-bit session token");
    let page = client
        .get(app.url("/"))
        .send()
        .await
        .expect("feed")
        .text()
        .await
        .expect("page");
    assert!(page.contains("amy"));
    app.stop().await;

    let app = TestApp::spawn_with(backend, |s| {
        s.public_url = Some("https://ferry.example.org".parse().expect("url"))
    })
    .await;
    app.add_user("amy", "password123", false).await;
    let res = app
        .browser()
        .post(app.url("/login"))
        .form(&[("name", "amy"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("; Secure")
    );
    app.stop().await;
}

async fn wrong_passwords_are_indistinguishable_and_rate_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ben", "password123", false).await;
    let client = app.browser();
    let attempt = |name: &'static str, password: &'static str| {
        client
            .post(app.url("/login"))
            .form(&[("name", name), ("password", password)])
            .send()
    };
    let unknown = attempt("nobody", "whatever1").await.expect("login");
    let unknown_status = unknown.status();
    let unknown_body = unknown
        .text()
        .await
        .expect("body")
        .replace("nobody", "NAME");
    let wrong = attempt("ben", "whatever1").await.expect("login");
    assert_eq!(wrong.status(), unknown_status);
    assert_eq!(
        wrong.text().await.expect("body").replace("ben", "NAME"),
        unknown_body,
        "same answer for unknown user and wrong password"
    );
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);

    for _ in 0..10 {
        let res = attempt("ben", "guess-guess").await.expect("login");
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            // Even the right password is refused while limited.
            assert_eq!(
                attempt("ben", "password123").await.expect("login").status(),
                StatusCode::TOO_MANY_REQUESTS
            );
            app.stop().await;
            return;
        }
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    panic!("repeated wrong passwords were never rate limited");
}

async fn forms_need_the_csrf_token(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("cat", "password123", false).await;
    let (client, csrf) = app.login("cat", "password123").await;
    let res = client
        .post(app.url("/notes"))
        .form(&[("text", "no token")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client
        .post(app.url("/notes"))
        .form(&[("text", "wrong token"), ("csrf", "0000")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client
        .post(app.url("/notes"))
        .form(&[("text", "with token"), ("csrf", csrf.as_str())])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // Cookie-authenticated API writes need the header.
    let res = client
        .post(app.url("/api/items"))
        .json(&serde_json::json!({"text": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = client
        .post(app.url("/api/items"))
        .header("x-csrf-token", &csrf)
        .json(&serde_json::json!({"text": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::CREATED);
    // The no-JavaScript upload form: the token must precede the file.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
    );
    let res = client
        .post(app.url("/items"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("x.txt"),
        );
    let res = client
        .post(app.url("/items"))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(app.temp_files().is_empty());
    assert_eq!(app.state.store.count_items().await.expect("count"), 3);
    app.stop().await;
}

async fn logout_and_password_change_end_sessions(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("dan", "password123", false).await;
    let (laptop, csrf) = app.login("dan", "password123").await;
    let (phone, _) = app.login("dan", "password123").await;
    let res = laptop
        .post(app.url("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("logout");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .expect("cookie")
            .contains("Max-Age=0")
    );
    assert_eq!(
        app.state
            .store
            .delete_expired_sessions()
            .await
            .expect("sweep"),
        0
    );
    assert_eq!(
        phone
            .get(app.url("/api/items"))
            .send()
            .await
            .expect("list")
            .status(),
        200,
        "other sessions live on"
    );

    let (laptop, csrf) = app.login("dan", "password123").await;
    let res = laptop
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "password123"),
            ("password", "new-password-1"),
            ("password2", "new-password-1"),
        ])
        .send()
        .await
        .expect("change");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        phone
            .get(app.url("/api/items"))
            .send()
            .await
            .expect("list")
            .status(),
        401,
        "password change ends other sessions"
    );
    assert_eq!(
        laptop
            .get(app.url("/api/items"))
            .send()
            .await
            .expect("list")
            .status(),
        200,
        "this browser gets a new session"
    );
    app.login("dan", "new-password-1").await;
    app.stop().await;
}

async fn expired_sessions_are_refused(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("eve", "password123", false).await;
    let (client, _) = app.login("eve", "password123").await;
    assert_eq!(
        client
            .get(app.url("/api/items"))
            .send()
            .await
            .expect("list")
            .status(),
        200
    );
    execute(&app.state.store, "update sessions set expires_at = 0 where user_id in (select id from users where name = $1)", "eve").await;
    assert_eq!(
        client
            .get(app.url("/api/items"))
            .send()
            .await
            .expect("list")
            .status(),
        401
    );
    let res = client.get(app.url("/")).send().await.expect("feed");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    app.stop().await;
}

async fn setup_link_creates_the_first_admin_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = ferry::auth::random_token();
    app.state
        .store
        .add_setup_token(&ferry::auth::token_hash(&token))
        .await
        .expect("token");
    let client = app.browser();
    assert_eq!(
        client
            .get(app.url("/setup?token=wrong"))
            .send()
            .await
            .expect("setup")
            .status(),
        404
    );
    assert_eq!(
        client
            .get(app.url(&format!("/setup?token={token}")))
            .send()
            .await
            .expect("setup")
            .status(),
        200
    );
    let res = client
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("name", "admin"),
            ("password", "short"),
            ("password2", "short"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), 400, "weak password refused, token kept");
    let res = client
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("name", "admin"),
            ("password", "long-enough-1"),
            ("password2", "long-enough-1"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let users = app.state.store.list_users().await.expect("users");
    assert_eq!(users.len(), 1);
    assert!(users[0].is_admin);
    let res = app
        .browser()
        .post(app.url("/setup"))
        .form(&[
            ("token", token.as_str()),
            ("name", "second"),
            ("password", "long-enough-1"),
            ("password2", "long-enough-1"),
        ])
        .send()
        .await
        .expect("setup");
    assert_eq!(res.status(), 404, "the link works once");
    assert_eq!(app.state.store.count_users().await.expect("count"), 1);
    app.stop().await;
}

async fn api_tokens_from_the_account_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("fay", "password123", false).await;
    let (client, csrf) = app.login("fay", "password123").await;
    let page = client
        .post(app.url("/account/tokens"))
        .form(&[("csrf", csrf.as_str()), ("name", "laptop")])
        .send()
        .await
        .expect("create")
        .text()
        .await
        .expect("page");
    let marker = "aria-label=\"New API token\"";
    let input = page
        .split("<input")
        .find(|s| s.contains(marker))
        .expect("token shown once");
    let token = input
        .split("value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("token value")
        .to_string();
    assert_eq!(token.len(), 64);
    let api = reqwest::Client::new();
    let res = api
        .get(app.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list");
    assert_eq!(res.status(), 200);
    let listing: Value = res.json().await.expect("json");
    assert!(listing["items"].is_array());
    let page = client
        .get(app.url("/account"))
        .send()
        .await
        .expect("account")
        .text()
        .await
        .expect("page");
    assert!(
        page.contains("laptop") && !page.contains(&token),
        "the token is not shown again"
    );
    let tokens = app
        .state
        .store
        .list_api_tokens(
            &app.state
                .store
                .user_by_name("fay")
                .await
                .expect("u")
                .expect("u")
                .id,
        )
        .await
        .expect("tokens");
    let res = client
        .post(app.url(&format!("/account/tokens/{}/revoke", tokens[0].id)))
        .form(&[("csrf", csrf_from(&page).as_str())])
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        api.get(app.url("/api/items"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("list")
            .status(),
        401
    );
    app.stop().await;
}
