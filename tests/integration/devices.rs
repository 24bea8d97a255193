//! Long because it carries its own QR reader and page-scraping helpers beside the
//! scenarios.
//!
//! Signing a phone in with the "add a device" QR code, the account's device list,
//! and QR codes of share links. QR codes are read back with an independent decoder
//! (rqrr), as a phone's camera would.

use std::sync::{Mutex, OnceLock};

use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, csrf_from, execute};
use ferry::auth::token_hash;

both_backends!(
    a_scanned_link_signs_the_phone_in_once,
    the_confirm_button_works_only_from_its_page,
    two_devices_racing_for_one_link_get_one_session,
    expired_links_are_refused_and_swept,
    devices_are_listed_and_signed_out,
    last_seen_is_kept_to_the_minute,
    link_creation_and_use_are_rate_limited,
    share_links_get_a_qr_code_when_the_address_is_known,
    link_creation_and_use_are_logged_without_the_token,
    a_new_password_ends_links_not_yet_used,
);

const LAPTOP: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const PHONE: &str = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0";

/// A browser-like client that names itself with `user_agent` and keeps cookies.
fn device(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .build()
        .expect("client")
}

/// Sign `client` in by name and password; returns the session's CSRF token.
async fn sign_in(app: &TestApp, client: &reqwest::Client, name: &str) -> String {
    let res = client
        .post(app.url("/login"))
        .form(&[("name", name), ("password", "password123")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "sign-in as {name}");
    csrf_from(&page(app, client, "/account").await)
}

async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    let res = client.get(app.url(path)).send().await.expect("get");
    assert_eq!(res.status(), StatusCode::OK, "GET {path}");
    res.text().await.expect("body")
}

/// The text between `start` and the next `end` after it.
fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// The value of the read-only input labelled `label` (the link the page shows).
fn input_value(html: &str, label: &str) -> Option<String> {
    let at = html.find(&format!("\" aria-label=\"{label}\""))?;
    let from = html[..at].rfind("value=\"")? + "value=\"".len();
    Some(html[from..at].to_string())
}

/// "Add a device" as the form posts it (with the Origin a browser sends); returns
/// the response.
async fn add_device(app: &TestApp, client: &reqwest::Client, csrf: &str) -> reqwest::Response {
    client
        .post(app.url("/account/devices/link"))
        .header("origin", &app.base)
        .form(&[("csrf", csrf)])
        .send()
        .await
        .expect("add a device")
}

/// The sign-in link a new "add a device" page shows, checked against its QR code.
async fn new_link(app: &TestApp, client: &reqwest::Client, csrf: &str) -> String {
    let res = add_device(app, client, csrf).await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.expect("page");
    let link = input_value(&html, "Sign-in link").expect("the page shows the link");
    let svg = between(&html, "<figure class=\"qr\"", "</figure>").expect("a QR code");
    assert_eq!(decode_qr(svg), link, "the QR code holds the link");
    assert!(link.starts_with(&format!("{}/link/", app.base)), "{link}");
    link
}

/// Read a QR code drawn by Ferry's SVG renderer: one `M x y h w v h H x V y` square
/// per dark module, in a viewBox of whole pixels.
pub fn decode_qr(svg: &str) -> String {
    let size = between(svg, "viewBox=\"0 0 ", "\"").expect("viewBox");
    let (width, height) = size.split_once(' ').expect("two numbers");
    let (width, height): (usize, usize) = (
        width.parse().expect("width"),
        height.parse().expect("height"),
    );
    let path = between(svg, "<path fill=\"#000\" d=\"", "\"").expect("path");
    let mut dark = vec![false; width * height];
    for square in path.split('M').filter(|s| !s.is_empty()) {
        let numbers: Vec<usize> = square
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|n| n.parse().expect("number"))
            .collect();
        let [x, y, w, h, ..] = numbers[..] else {
            panic!("unexpected path segment {square:?}");
        };
        for row in y..y + h {
            for col in x..x + w {
                dark[row * width + col] = true;
            }
        }
    }
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        if dark[y * width + x] { 0 } else { 255 }
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("a readable QR code").1
}

/// Open a link on `client` (the confirm page) and press its button.
async fn redeem(client: &reqwest::Client, link: &str) -> reqwest::Response {
    let res = client.get(link).send().await.expect("open the link");
    assert_eq!(res.status(), StatusCode::OK, "the confirm page");
    let html = res.text().await.expect("page");
    let confirm = between(&html, "name=\"confirm\" value=\"", "\"").expect("confirm field");
    client
        .post(link)
        .form(&[("confirm", confirm)])
        .send()
        .await
        .expect("press the button")
}

async fn a_scanned_link_signs_the_phone_in_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let link = new_link(&app, &laptop, &csrf).await;

    // Opening the link (as a link preview would) changes nothing.
    let preview = reqwest::Client::new();
    let res = preview.get(&link).send().await.expect("preview");
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers().get("set-cookie").is_some_and(|c| {
        let c = c.to_str().unwrap_or("");
        c.starts_with("ferry_link_confirm=") && c.contains("SameSite=Strict")
    }));
    let html = res.text().await.expect("page");
    assert!(html.contains("Sign in as ann"), "names the account");

    let phone = device(PHONE);
    let res = redeem(&phone, &link).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/");
    let feed = page(&app, &phone, "/").await;
    assert!(
        feed.contains("href=\"/account\">ann<"),
        "the phone is ann now"
    );

    // The link is dead: for the phone, the preview and anyone else.
    for client in [&phone, &preview, &device(LAPTOP)] {
        let res = client.get(&link).send().await.expect("again");
        assert_eq!(res.status(), StatusCode::GONE);
        assert!(res.text().await.expect("page").contains("already used"));
    }
    let confirm = "0".repeat(64);
    let res = phone
        .post(&link)
        .header("cookie", format!("ferry_link_confirm={confirm}"))
        .form(&[("confirm", confirm.as_str())])
        .send()
        .await
        .expect("post again");
    assert_eq!(res.status(), StatusCode::GONE);

    // A new session, not the laptop's: both stay signed in, apart.
    let account = page(&app, &laptop, "/account").await;
    assert!(account.contains("Chrome on Windows</strong> (this device)"));
    assert!(account.contains("Firefox on Android</strong> ·"));
    let phone_account = page(&app, &phone, "/account").await;
    assert!(phone_account.contains("Firefox on Android</strong> (this device)"));
    assert_ne!(csrf_from(&phone_account), csrf);

    // An API token is for scripts: it does not make sign-in links.
    let token = app.user_with_token("bot", false).await;
    let res = reqwest::Client::new()
        .post(app.url("/account/devices/link"))
        .bearer_auth(&token)
        .form(&[("csrf", "")])
        .send()
        .await
        .expect("as a script");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

async fn the_confirm_button_works_only_from_its_page(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let link = new_link(&app, &laptop, &csrf).await;

    // Another site's form posting a browser into ann's account: no cookie, refused.
    let victim = device(PHONE);
    let res = victim
        .post(&link)
        .form(&[("confirm", "anything")])
        .send()
        .await
        .expect("cross-site post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get("set-cookie").is_none(), "no session");
    // A confirm value that is not the page's: refused too.
    let other = device(PHONE);
    other.get(&link).send().await.expect("page");
    let res = other
        .post(&link)
        .form(&[("confirm", "0".repeat(64))])
        .send()
        .await
        .expect("wrong nonce");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // The link still works for the page's own button.
    let res = redeem(&other, &link).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);

    // Malformed and unknown tokens are not found.
    for path in ["/link/short", &format!("/link/{}", "f".repeat(64))] {
        let res = reqwest::get(app.url(path)).await.expect("get");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
    }
}

async fn two_devices_racing_for_one_link_get_one_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let link = new_link(&app, &laptop, &csrf).await;
    // Four phones open the link, then all press at once.
    let mut opened = Vec::new();
    for _ in 0..4 {
        let phone = device(PHONE);
        let html = phone.get(&link).send().await.expect("open").text().await;
        let confirm = between(&html.expect("page"), "name=\"confirm\" value=\"", "\"")
            .expect("field")
            .to_string();
        opened.push((phone, confirm));
    }
    let presses: Vec<_> = opened
        .into_iter()
        .map(|(phone, confirm)| {
            let link = link.clone();
            tokio::spawn(async move {
                let res = phone.post(&link).form(&[("confirm", confirm)]).send().await;
                res.expect("press").status()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for press in presses {
        statuses.push(press.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(
        statuses,
        [
            StatusCode::SEE_OTHER,
            StatusCode::GONE,
            StatusCode::GONE,
            StatusCode::GONE
        ]
    );
    let ann = app.state.store.user_by_name("ann").await.expect("read");
    let sessions = app
        .state
        .store
        .sessions_of_user(&ann.expect("ann").id)
        .await;
    assert_eq!(
        sessions.expect("sessions").len(),
        2,
        "the laptop's and one phone's"
    );
}

async fn expired_links_are_refused_and_swept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let html = add_device(&app, &laptop, &csrf)
        .await
        .text()
        .await
        .expect("page");
    assert!(html.contains("It works once, for 5 minutes"));
    let link = input_value(&html, "Sign-in link").expect("link");
    let token = link.rsplit('/').next().expect("token");
    let phone = device(PHONE);
    let html = phone.get(&link).send().await.expect("open").text().await;
    let confirm = between(&html.expect("page"), "name=\"confirm\" value=\"", "\"")
        .expect("field")
        .to_string();

    // Five minutes pass before the button is pressed.
    let aged = execute(
        &app.state.store,
        "update device_links set expires_at = 1 where token_hash = $1",
        &token_hash(token),
    )
    .await;
    assert_eq!(aged, 1);
    let res = phone
        .post(&link)
        .form(&[("confirm", confirm.as_str())])
        .send()
        .await
        .expect("press");
    assert_eq!(res.status(), StatusCode::GONE);
    assert!(res.text().await.expect("page").contains("expired"));
    let res = phone.get(&link).send().await.expect("open");
    assert_eq!(res.status(), StatusCode::GONE);
    let res = phone.get(app.url("/")).send().await.expect("feed");
    assert_eq!(res.headers()["location"], "/login", "not signed in");

    // The sweeper forgets it.
    let store = &app.state.store;
    assert!(
        store
            .device_link(&token_hash(token))
            .await
            .expect("read")
            .is_some()
    );
    ferry::app::sweeper::sweep_once(&app.state.app)
        .await
        .expect("sweep");
    assert!(
        store
            .device_link(&token_hash(token))
            .await
            .expect("read")
            .is_none()
    );
}

/// The device list's rows: (name, sign-out path), in page order.
fn devices_on(account: &str) -> Vec<(String, String)> {
    let list = between(account, "<ul class=\"devices\">", "</ul>").expect("device list");
    list.split("<li>")
        .skip(1)
        .map(|row| {
            let name = between(row, "<strong>", "</strong>").expect("name");
            let action = between(row, "action=\"", "\"").expect("form");
            (name.to_string(), action.to_string())
        })
        .collect()
}

async fn devices_are_listed_and_signed_out(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    app.add_user("bob", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let phone = device(PHONE);
    sign_in(&app, &phone, "ann").await;
    let bob = device(LAPTOP);
    let bob_csrf = sign_in(&app, &bob, "bob").await;

    let rows = devices_on(&page(&app, &laptop, "/account").await);
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.len(), 2, "ann's two devices, not bob's: {names:?}");
    assert!(names.contains(&"Chrome on Windows") && names.contains(&"Firefox on Android"));
    let (_, phone_out) = rows
        .iter()
        .find(|(n, _)| n == "Firefox on Android")
        .expect("phone row")
        .clone();
    // The page names sessions without their token hashes.
    let ann = app.state.store.user_by_name("ann").await.expect("read");
    let sessions = app
        .state
        .store
        .sessions_of_user(&ann.expect("ann").id)
        .await
        .expect("sessions");
    assert_eq!(sessions.len(), 2);
    for (_, action) in &rows {
        assert!(
            sessions.iter().all(|s| !action.contains(&s.token_hash)),
            "{action}"
        );
    }

    // Bob cannot sign ann's phone out, even knowing its id.
    let res = bob
        .post(app.url(&phone_out))
        .form(&[("csrf", bob_csrf.as_str())])
        .send()
        .await
        .expect("bob tries");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Nor can a form without ann's CSRF token.
    let res = laptop
        .post(app.url(&phone_out))
        .form(&[("csrf", "forged")])
        .send()
        .await
        .expect("forged");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    page(&app, &phone, "/account").await;

    // Ann signs her phone out from the laptop: that session ends, the laptop's not.
    let res = laptop
        .post(app.url(&phone_out))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sign the phone out");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/account");
    let res = phone.get(app.url("/")).send().await.expect("phone");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    let rows = devices_on(&page(&app, &laptop, "/account").await);
    assert_eq!(rows.len(), 1);
    let res = laptop
        .post(app.url(&phone_out))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("again");
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "already gone");

    // Signing out this device is signing out.
    let res = laptop
        .post(app.url(&rows[0].1))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("sign this one out");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()["location"], "/login");
    let res = laptop.get(app.url("/")).send().await.expect("after");
    assert_eq!(res.headers()["location"], "/login");
    page(&app, &bob, "/account").await;
}

async fn last_seen_is_kept_to_the_minute(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let id = app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    sign_in(&app, &laptop, "ann").await;
    let last_seen = || async {
        let sessions = app.state.store.sessions_of_user(&id).await.expect("read");
        assert_eq!(sessions.len(), 1);
        sessions[0].last_seen_at
    };
    let first = last_seen().await;
    assert!(first > 0);
    // Seen again within the minute: no write.
    page(&app, &laptop, "/").await;
    app.state.store.cache().forget_all();
    page(&app, &laptop, "/").await;
    assert_eq!(last_seen().await, first);
    // Last seen long ago: the next request records it.
    execute(
        &app.state.store,
        "update sessions set last_seen_at = 1000 where user_id = $1",
        &id,
    )
    .await;
    page(&app, &laptop, "/").await;
    assert!(last_seen().await >= first);
}

async fn link_creation_and_use_are_rate_limited(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    app.add_user("bob", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    for _ in 0..ferry::app::devices::MAX_LINKS_PER_WINDOW {
        assert_eq!(add_device(&app, &laptop, &csrf).await.status(), 200);
    }
    let res = add_device(&app, &laptop, &csrf).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    // Per user: bob still may.
    let bob = device(LAPTOP);
    let bob_csrf = sign_in(&app, &bob, "bob").await;
    let link = new_link(&app, &bob, &bob_csrf).await;

    // Guessing tokens from one address: refused after the sign-in failure limit,
    // good links included.
    let guesser = device(PHONE);
    for i in 0..ferry::auth::LoginLimiter::MAX_PER_IP {
        let guess = format!("/link/{:064x}", i);
        let res = guesser.get(app.url(&guess)).send().await.expect("guess");
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    let res = guesser.get(&link).send().await.expect("real link");
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let res = guesser
        .post(app.url("/login"))
        .form(&[("name", "bob"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one count per client"
    );
}

/// Create a share link on the item page's form; returns the page.
async fn share_on_page(
    app: &TestApp,
    client: &reqwest::Client,
    csrf: &str,
    item: &Value,
    origin: Option<&str>,
) -> String {
    let id = item["id"].as_str().expect("id");
    let mut req = client
        .post(app.url(&format!("/items/{id}/shares")))
        .form(&[("csrf", csrf), ("expires", "1d")]);
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    let res = req.send().await.expect("create share");
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.expect("page")
}

async fn share_links_get_a_qr_code_when_the_address_is_known(backend: Backend) {
    let public = "https://ferry.example.org";
    let configured = TestApp::spawn_with(backend, |s| {
        s.public_url = Some(url::Url::parse(public).expect("url"));
    })
    .await;
    let plain = TestApp::spawn(backend).await;
    for (app, configured) in [(&configured, true), (&plain, false)] {
        let token = app.user_with_token("ann", false).await;
        let item = app.post_note(&token, "hello").await;
        let client = device(LAPTOP);
        let csrf = sign_in(app, &client, "ann").await;
        let with_origin = share_on_page(app, &client, &csrf, &item, Some(&app.base)).await;
        let without = share_on_page(app, &client, &csrf, &item, None).await;
        let link = |html: &str| input_value(html, "New share link").expect("link");
        let qr = |html: &str| between(html, "<figure class=\"qr\"", "</figure>").map(decode_qr);
        if configured {
            // FERRY_PUBLIC_URL wins over whatever the browser reports.
            for html in [&with_origin, &without] {
                assert!(link(html).starts_with(&format!("{public}/s/")));
                assert_eq!(qr(html), Some(link(html)));
            }
        } else {
            assert!(link(&with_origin).starts_with(&format!("{}/s/", app.base)));
            assert_eq!(qr(&with_origin), Some(link(&with_origin)));
            // No address known: a relative link for the script, and no QR code.
            assert!(link(&without).starts_with("/s/"));
            assert_eq!(qr(&without), None);
            assert!(without.contains("Set <code>FERRY_PUBLIC_URL</code> to show one"));
        }
    }
}

/// Every log line of this test process from the first call on, as production
/// writes them (JSON, with the request span's fields). No other test installs a
/// subscriber; the server does only in `ferry serve`.
fn captured_logs() -> String {
    static LOGS: OnceLock<&'static Mutex<Vec<u8>>> = OnceLock::new();
    struct Capture(&'static Mutex<Vec<u8>>);
    impl std::io::Write for Capture {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
            logs.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = LOGS.get_or_init(|| {
        let logs: &'static Mutex<Vec<u8>> = Box::leak(Box::default());
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_writer(move || Capture(logs))
            .try_init()
            .expect("the only log subscriber of the test process");
        logs
    });
    let bytes = logs.lock().unwrap_or_else(|e| e.into_inner());
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn link_creation_and_use_are_logged_without_the_token(backend: Backend) {
    captured_logs();
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let link = new_link(&app, &laptop, &csrf).await;
    let token = link.rsplit('/').next().expect("token").to_string();
    let phone = device(PHONE);
    assert_eq!(redeem(&phone, &link).await.status(), StatusCode::SEE_OTHER);
    assert_eq!(phone.get(&link).send().await.expect("again").status(), 410);

    let logs = captured_logs();
    let lines: Vec<Value> = logs
        .lines()
        .filter(|l| l.contains("device link") || l.contains("with a link"))
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|l: &Value| l["ip"] == "127.0.0.1" && l["user"] == "ann")
        .collect();
    let outcomes: Vec<&str> = lines.iter().filter_map(|l| l["outcome"].as_str()).collect();
    for outcome in ["created", "opened", "redeemed", "already used"] {
        assert!(outcomes.contains(&outcome), "{outcome} in {outcomes:?}");
    }
    let redeemed = lines
        .iter()
        .find(|l| l["outcome"] == "redeemed")
        .expect("redeemed");
    assert_eq!(redeemed["device"], "Firefox on Android");
    // Neither the audit lines nor the request log (its path) hold the token.
    assert!(
        logs.contains("\"route\":\"/link/{token}\""),
        "requests are logged"
    );
    assert!(!logs.contains(&token), "a log line holds the sign-in token");
}

async fn a_new_password_ends_links_not_yet_used(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("ann", "password123", false).await;
    let laptop = device(LAPTOP);
    let csrf = sign_in(&app, &laptop, "ann").await;
    let link = new_link(&app, &laptop, &csrf).await;
    let res = laptop
        .post(app.url("/account/password"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("current", "password123"),
            ("password", "another-password"),
            ("password2", "another-password"),
        ])
        .send()
        .await
        .expect("change the password");
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = device(PHONE).get(&link).send().await.expect("open");
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "the link went with the old password"
    );
}
