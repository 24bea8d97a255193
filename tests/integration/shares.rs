use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_backends;
use crate::helpers::{Backend, TestApp, execute};

both_backends!(
    share_links_serve_the_public,
    share_link_limits_and_revocation,
    password_protected_shares
);

async fn share(app: &TestApp, token: &str, item: &Value, body: Value) -> Value {
    let res = reqwest::Client::new()
        .post(app.url(&format!(
            "/api/items/{}/shares",
            item["id"].as_str().expect("id")
        )))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("share");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("json")
}

async fn share_links_serve_the_public(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("gil", false).await;
    let file: Value = app
        .upload(&token, "report.pdf", b"%PDF-1.7 test".to_vec())
        .await
        .json()
        .await
        .expect("json");
    let link = share(&app, &token, &file, json!({})).await;
    let secret = link["token"].as_str().expect("token");
    assert_eq!(secret.len(), 64, "256-bit share token");
    let public = reqwest::Client::new();
    let page = public
        .get(app.url(&format!("/s/{secret}")))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("html");
    assert!(html.contains("report.pdf"));
    assert!(
        !html.contains("gil") && !html.contains("/account"),
        "nothing else of the instance"
    );
    let res = public
        .get(app.url(&format!("/s/{secret}/content")))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .expect("csp")
            .starts_with("sandbox")
    );
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"%PDF-1.7 test");

    let note = app.post_note(&token, "<img src=x onerror=alert(1)>").await;
    let link = share(&app, &token, &note, json!({ "expires": "1d" })).await;
    let html = public
        .get(app.url(&format!("/s/{}", link["token"].as_str().expect("t"))))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        html.contains("&#60;img src=x onerror=alert(1)&#62;") && !html.contains("<img src=x"),
        "note text is escaped"
    );
    assert_eq!(
        public
            .get(app.url(&format!("/s/{}", "a".repeat(64))))
            .send()
            .await
            .expect("page")
            .status(),
        404
    );
    assert_eq!(
        public
            .get(app.url("/s/short"))
            .send()
            .await
            .expect("page")
            .status(),
        404
    );
    let listed: Value = reqwest::Client::new()
        .get(app.url(&format!(
            "/api/items/{}/shares",
            note["id"].as_str().expect("id")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["shares"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["shares"][0]["downloads"], 1);
    app.stop().await;
}

async fn share_link_limits_and_revocation(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("hal", false).await;
    let file: Value = app
        .upload(&token, "a.bin", vec![1; 100])
        .await
        .json()
        .await
        .expect("json");
    let public = reqwest::Client::new();

    // JSON has one number type: 2.0 is the integer 2.
    let limited = share(&app, &token, &file, json!({ "max_downloads": 2.0 })).await;
    assert_eq!(limited["max_downloads"], 2);
    let url = app.url(&format!(
        "/s/{}/content",
        limited["token"].as_str().expect("t")
    ));
    assert_eq!(public.get(&url).send().await.expect("1").status(), 200);
    assert_eq!(public.get(&url).send().await.expect("2").status(), 200);
    assert_eq!(
        public.get(&url).send().await.expect("3").status(),
        StatusCode::GONE,
        "past the download limit"
    );

    let revoked = share(&app, &token, &file, json!({})).await;
    let res = reqwest::Client::new()
        .delete(app.url(&format!(
            "/api/shares/{}",
            revoked["id"].as_str().expect("id")
        )))
        .bearer_auth(&token)
        .send()
        .await
        .expect("revoke");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = public
        .get(app.url(&format!("/s/{}", revoked["token"].as_str().expect("t"))))
        .send()
        .await
        .expect("page");
    assert_eq!(res.status(), StatusCode::GONE);

    let expiring = share(&app, &token, &file, json!({ "expires": "1h" })).await;
    execute(
        &app.state.store,
        "update shares set expires_at = 1 where id = $1",
        expiring["id"].as_str().expect("id"),
    )
    .await;
    let res = public
        .get(app.url(&format!(
            "/s/{}/content",
            expiring["token"].as_str().expect("t")
        )))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), StatusCode::GONE);

    for bad in [
        json!({ "max_downloads": 0 }),
        json!({ "expires": "forever" }),
        json!({ "max_downloads": "lots" }),
        // Other JSON types were once dropped silently, making an unlimited link.
        json!({ "max_downloads": true }),
        json!({ "password": ["a"] }),
        json!([{ "max_downloads": 1 }]),
    ] {
        let res = reqwest::Client::new()
            .post(app.url(&format!(
                "/api/items/{}/shares",
                file["id"].as_str().expect("id")
            )))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .expect("share");
        assert_eq!(res.status(), 400, "{bad}");
    }
    app.stop().await;
}

async fn password_protected_shares(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let token = app.user_with_token("ida", false).await;
    let file: Value = app
        .upload(&token, "secret.txt", b"top secret".to_vec())
        .await
        .json()
        .await
        .expect("json");
    let link = share(&app, &token, &file, json!({ "password": "open sesame" })).await;
    assert_eq!(link["has_password"], true);
    let t = link["token"].as_str().expect("t");
    let public = reqwest::Client::new();
    let page = public
        .get(app.url(&format!("/s/{t}")))
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("html");
    assert!(
        page.contains("protected") && !page.contains("secret.txt"),
        "nothing shown before the password"
    );
    assert_eq!(
        public
            .get(app.url(&format!("/s/{t}/content")))
            .send()
            .await
            .expect("get")
            .status(),
        StatusCode::FORBIDDEN
    );
    let res = public
        .post(app.url(&format!("/s/{t}/content")))
        .form(&[("password", "wrong")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let res = public
        .post(app.url(&format!("/s/{t}")))
        .form(&[("password", "open sesame")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert!(res.text().await.expect("html").contains("secret.txt"));
    let res = public
        .post(app.url(&format!("/s/{t}/content")))
        .form(&[("password", "open sesame")])
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), b"top secret");
    app.stop().await;
}
