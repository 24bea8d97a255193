//! The phone path: the web app manifest and its icons, and the share target a
//! phone's share sheet posts to: accepted from Ferry's own origin or the browser
//! itself, refused cross-site, and kept for a signed-out sender until sign-in.

use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, csrf_from, files_under};

both_backends!(
    the_manifest_makes_ferry_installable,
    a_same_origin_share_creates_items_and_shows_the_feed,
    a_cross_site_share_is_refused_and_creates_nothing,
    a_signed_out_share_is_finished_after_sign_in,
    a_signed_out_share_expires_and_is_swept,
);

fn share_form() -> Form {
    Form::new()
        .text("title", "Ferry timetable")
        .text("text", "The last boat leaves at nine")
        .text("url", "https://harbour.example/timetable")
        .part(
            "files",
            Part::bytes(b"first photo".to_vec()).file_name("photo 1.jpg"),
        )
        .part(
            "files",
            Part::bytes(b"second photo".to_vec()).file_name("photo 2.jpg"),
        )
}

async fn items(app: &TestApp) -> Vec<ferry::store::Item> {
    app.state
        .store
        .list_items(None, 100)
        .await
        .expect("list")
        .to_vec()
}

/// A PNG's width and height, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be =
        |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    (be(16), be(20))
}

async fn the_manifest_makes_ferry_installable(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = reqwest::Client::new();
    let res = client
        .get(app.url("/manifest.webmanifest"))
        .send()
        .await
        .expect("manifest");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/manifest+json",
        "browsers want the manifest's own type"
    );
    let manifest: Value = res.json().await.expect("the manifest is JSON");
    assert_eq!(manifest["name"], "Ferry");
    assert_eq!(manifest["start_url"], "/");
    assert_eq!(manifest["display"], "standalone");
    assert!(
        manifest["theme_color"]
            .as_str()
            .is_some_and(|c| c.starts_with('#'))
    );

    let target = &manifest["share_target"];
    assert_eq!(target["action"], "/share-target");
    assert_eq!(target["method"], "POST");
    assert_eq!(target["enctype"], "multipart/form-data");
    for field in ["title", "text", "url"] {
        assert_eq!(target["params"][field], field);
    }
    assert_eq!(target["params"]["files"][0]["name"], "files");

    let icons = manifest["icons"].as_array().expect("icons");
    let mut sizes = Vec::new();
    for icon in icons {
        let src = icon["src"].as_str().expect("src");
        let res = client.get(app.url(src)).send().await.expect("icon");
        assert_eq!(res.status(), 200, "{src}");
        assert_eq!(
            res.headers()["content-type"],
            icon["type"].as_str().expect("type")
        );
        let body = res.bytes().await.expect("icon bytes");
        match icon["type"].as_str() {
            Some("image/png") => {
                let (w, h) = png_size(&body);
                assert_eq!(format!("{w}x{h}"), icon["sizes"], "{src}");
                sizes.push(w);
            }
            Some("image/svg+xml") => assert!(body.starts_with(b"<svg"), "{src}"),
            other => panic!("unexpected icon type {other:?}"),
        }
    }
    sizes.sort_unstable();
    assert_eq!(sizes, [192, 512], "Chrome needs 192 and 512 pixel icons");
    assert!(icons.iter().any(|i| i["type"] == "image/svg+xml"));

    // Every page links the manifest, and its policy lets the browser load it.
    let res = client
        .get(app.url("/login"))
        .send()
        .await
        .expect("login page");
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("manifest-src 'self'"), "{csp}");
    let page = res.text().await.expect("page");
    assert!(page.contains(r#"<link rel="manifest" href="/manifest.webmanifest">"#));
    assert!(page.contains(r#"<meta name="theme-color""#));
}

async fn a_same_origin_share_creates_items_and_shows_the_feed(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("sam", "password123", false).await;
    let (browser, _csrf) = app.login("sam", "password123").await;

    // What a browser sends for a post from Ferry's own page.
    let res = browser
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "same-origin")
        .multipart(share_form())
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let shared = items(&app).await;
    assert_eq!(shared.len(), 1, "one item: two files and a note");
    let names: Vec<_> = shared[0].files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["photo 1.jpg", "photo 2.jpg"]);
    let note = shared[0].note.clone().expect("a note");
    assert_eq!(
        note,
        "Ferry timetable\nThe last boat leaves at nine\nhttps://harbour.example/timetable"
    );
    assert!(
        shared
            .iter()
            .all(|i| i.author_name.as_deref() == Some("sam"))
    );

    // The feed it lands on shows them.
    let feed = browser.get(app.url("/")).send().await.expect("feed");
    let feed = feed.text().await.expect("feed page");
    assert!(feed.contains("photo 2.jpg") && feed.contains("The last boat leaves at nine"));

    // A browser's share sheet (`none`), and a browser without Sec-Fetch-Site whose
    // Origin is this server's, are accepted too.
    let res = browser
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "none")
        .multipart(Form::new().text("text", "from the share sheet"))
        .send()
        .await
        .expect("share sheet");
    assert_eq!(res.status(), 303);
    let res = browser
        .post(app.url("/share-target"))
        .header("origin", app.base.as_str())
        .multipart(Form::new().text("url", "https://harbour.example/"))
        .send()
        .await
        .expect("same origin");
    assert_eq!(res.status(), 303);
    assert_eq!(items(&app).await.len(), 3);

    // An empty share is a clear error.
    let res = browser
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "same-origin")
        .multipart(Form::new().text("title", " "))
        .send()
        .await
        .expect("empty share");
    assert_eq!(res.status(), 400);
    assert_eq!(items(&app).await.len(), 3);
}

async fn a_cross_site_share_is_refused_and_creates_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("sam", "password123", false).await;
    let (browser, _csrf) = app.login("sam", "password123").await;
    let anonymous = app.browser();
    let foreign = "https://evil.example";
    let cases: [(&str, &[(&str, &str)]); 7] = [
        ("cross-site", &[("sec-fetch-site", "cross-site")]),
        ("a sibling subdomain", &[("sec-fetch-site", "same-site")]),
        // Sec-Fetch-Site decides over a matching Origin.
        (
            "cross-site, own Origin",
            &[
                ("sec-fetch-site", "cross-site"),
                ("origin", app.base.as_str()),
            ],
        ),
        ("a foreign Origin", &[("origin", foreign)]),
        ("an opaque Origin", &[("origin", "null")]),
        (
            "a look-alike Origin",
            &[("origin", "http://127.0.0.1.evil.example")],
        ),
        ("no Origin nor Sec-Fetch-Site", &[]),
    ];
    for (what, headers) in cases {
        for (who, client) in [("signed in", &browser), ("signed out", &anonymous)] {
            let mut req = client
                .post(app.url("/share-target"))
                .multipart(share_form());
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            let res = req.send().await.expect("share");
            assert_eq!(res.status(), 403, "{what}, {who}");
            let body = res.text().await.expect("body");
            assert!(
                body.contains("/api/items"),
                "{what}: the refusal says what to use"
            );
        }
    }
    assert!(items(&app).await.is_empty());
    assert!(app.blob_files().is_empty(), "{:?}", app.blob_files());
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
    assert!(files_under(&app.data_dir.join("pending-shares")).is_empty());
}

async fn a_signed_out_share_is_finished_after_sign_in(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("sam", "password123", false).await;
    let phone = app.browser();
    let res = phone
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "none")
        .multipart(share_form())
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/share-target/pending");
    assert!(
        items(&app).await.is_empty(),
        "nothing is recorded before sign-in"
    );
    assert_eq!(app.blob_files().len(), 2, "the files are kept");

    let page = phone
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let page = page.text().await.expect("page");
    assert!(page.contains("photo 1.jpg") && page.contains("Sign in to add it"));

    // Signing in leads back to the share.
    let res = phone
        .post(app.url("/login"))
        .form(&[("name", "sam"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/share-target/pending");
    let page = phone
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    let page = page.text().await.expect("page");
    assert!(page.contains("Add to Ferry") && page.contains("The last boat leaves at nine"));
    let csrf = csrf_from(&page);

    // Finishing is a form of the signed-in user's, so it needs their token.
    let res = phone
        .post(app.url("/share-target/pending"))
        .form(&[("csrf", "wrong")])
        .send()
        .await
        .expect("finish without token");
    assert_eq!(res.status(), 403);
    assert!(items(&app).await.is_empty());

    let res = phone
        .post(app.url("/share-target/pending"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("finish");
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let cookie = res.headers()["set-cookie"].to_str().expect("cookie");
    assert!(cookie.starts_with("ferry_pending_share=;") && cookie.contains("Max-Age=0"));
    let shared = items(&app).await;
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].files.len(), 2);
    assert!(
        shared
            .iter()
            .all(|i| i.author_name.as_deref() == Some("sam"))
    );
    assert!(files_under(&app.data_dir.join("pending-shares")).is_empty());

    // It is finished once: the page now says nothing is waiting.
    let page = phone
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 404);

    // A second signed-out share, discarded after sign-in, leaves no file behind.
    let other = app.browser();
    let res = other
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "none")
        .multipart(Form::new().part("files", Part::bytes(b"x".to_vec()).file_name("x.bin")))
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 303);
    assert_eq!(app.blob_files().len(), 3);
    other
        .post(app.url("/login"))
        .form(&[("name", "sam"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    let page = other
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    let csrf = csrf_from(&page.text().await.expect("page"));
    let res = other
        .post(app.url("/share-target/pending/discard"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("discard");
    assert_eq!(res.status(), 303);
    assert_eq!(items(&app).await.len(), 1);
    assert_eq!(
        app.blob_files().len(),
        2,
        "only the finished share's files stay"
    );
}

async fn a_signed_out_share_expires_and_is_swept(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.add_user("sam", "password123", false).await;
    let phone = app.browser();
    let res = phone
        .post(app.url("/share-target"))
        .header("sec-fetch-site", "none")
        .multipart(share_form())
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), 303);
    let records = files_under(&app.data_dir.join("pending-shares"));
    assert_eq!(records.len(), 1);

    // A fresh share survives a sweep.
    ferry::app::sweeper::sweep_once(&app.state.app)
        .await
        .expect("sweep");
    assert_eq!(app.blob_files().len(), 2);

    // Eleven minutes later (the record's clock turned back) it has expired.
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&records[0]).expect("read")).expect("json");
    let created = record["created_at"].as_i64().expect("created_at");
    record["created_at"] = Value::from(created - 11 * 60 * 1000);
    std::fs::write(&records[0], serde_json::to_vec(&record).expect("json")).expect("write");

    let page = phone
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 404, "an expired share is not offered");
    assert!(page.text().await.expect("page").contains("Share it again"));

    ferry::app::sweeper::sweep_once(&app.state.app)
        .await
        .expect("sweep");
    assert!(files_under(&app.data_dir.join("pending-shares")).is_empty());
    assert!(app.blob_files().is_empty(), "the sweeper removed its files");

    // Signing in afterwards finds nothing to finish and records nothing.
    phone
        .post(app.url("/login"))
        .form(&[("name", "sam"), ("password", "password123")])
        .send()
        .await
        .expect("login");
    let page = phone
        .get(app.url("/share-target/pending"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 404);
    assert!(items(&app).await.is_empty());
}
