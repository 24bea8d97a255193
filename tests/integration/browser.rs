//! Long because it carries its own small WebDriver client beside the scenario.
//!
//! The feed in a real browser: Debian's Chromium, driven through chromedriver's
//! WebDriver HTTP protocol. Two browsers sign in through the login form; what one
//! uploads or posts appears live in the other, which never reloads. A large file
//! goes through tus and carries on after a reload and across a network drop. The
//! web app's manifest and share target, as Chromium reads and posts them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::both_backends;
use crate::helpers::{Backend, TestApp, free_port};

const INSTALL: &str = "apt-get install -y chromium chromium-driver";
/// How long a live update may take to show in the other browser.
const LIVE: Duration = Duration::from_secs(10);
/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const PASSWORD: &str = "browser-password";

both_backends!(
    uploads_and_notes_appear_live_in_another_browser,
    a_phone_signs_in_by_scanning_the_qr_code_of_a_signed_in_browser,
    chromium_reads_the_manifest_and_its_share_posts_are_judged_by_origin,
);

/// One browser test at a time: each runs two Chromiums.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn uploads_and_notes_appear_live_in_another_browser(backend: Backend) {
    let Some((chromium, chromedriver)) = skip_browser() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn(backend).await;
    let ada = app.add_user("ada", PASSWORD, false).await;
    let driver = Driver::start(&chromedriver).await;
    let desktop = driver.session(&chromium, (1280, 900)).await;
    let phone = driver.session(&chromium, (390, 844)).await;

    for browser in [&desktop, &phone] {
        sign_in(browser, &app, "ada").await;
    }
    // The phone's page must stay the same document from here on: a reload would
    // lose this mark.
    phone
        .exec("window.ferryMark = 'no reload';", json!([]))
        .await;
    // Both pages hold their live-update stream before anything is posted.
    wait_for_streams(&app, 2).await;

    // Upload two files through the page: the hidden file input, then the XHR with
    // its progress bar; picked together, they are one item.
    let files = TempDir::new().expect("temp dir");
    let text_file = files.path().join("packing-list.txt");
    std::fs::write(&text_file, "tent\nstove\nmap\n".repeat(2000)).expect("write file");
    let image_file = files.path().join("first-look.png");
    std::fs::write(&image_file, desktop.screenshot_png().await).expect("write image");
    let input = desktop.find("#file-input").await;
    desktop
        .send_keys(
            &input,
            &format!("{}\n{}", text_file.display(), image_file.display()),
        )
        .await;
    desktop
        .wait_until(
            "the upload row with a full progress bar and a check mark",
            "return Array.from(document.querySelectorAll('#uploads li')).some(li => \
             li.textContent.includes('2 files ✓') && li.querySelector('progress').value === 100);",
        )
        .await;
    for name in ["packing-list.txt", "first-look.png"] {
        phone
            .wait_for_feed_item(name, &format!("the uploaded {name} in the other browser"))
            .await;
    }
    phone
        .wait_until(
            "the live image preview to load",
            "const img = document.querySelector('#feed img.preview'); \
             return !!img && img.complete && img.naturalWidth > 0;",
        )
        .await;

    resume_a_large_upload(&app, &ada, &desktop, &phone, files.path()).await;

    // A note through the form; markup in it must stay text.
    let note = "Bring the <b>ladder</b> & the café key";
    desktop.exec("window.ferryPosting = true;", json!([])).await;
    desktop.type_into("#note-text", note).await;
    desktop.click(".note-form button[type=submit]").await;
    desktop
        .wait_until(
            "the feed to load again after posting",
            "return window.ferryPosting === undefined && document.readyState === 'complete' \
             && !!document.getElementById('feed');",
        )
        .await;
    phone
        .wait_for_feed_item(note, "the posted note in the other browser")
        .await;
    let shown = phone
        .exec(
            "const pre = document.querySelector('#feed li pre.note'); \
             return [pre.textContent, document.querySelectorAll('#feed b').length];",
            json!([]),
        )
        .await;
    assert_eq!(
        shown,
        json!([note, 0]),
        "the note must be shown as plain text"
    );
    // The form post brought the desktop back to the feed, now rendered by the server.
    desktop
        .wait_for_feed_item(note, "the note on the poster's own feed")
        .await;

    // Delete the note on the desktop (confirming the dialog): it leaves the phone.
    desktop
        .click("#feed li:first-child form.delete button[type=submit]")
        .await;
    desktop.accept_alert().await;
    phone
        .wait_until(
            "the deleted note to leave the other browser",
            "return !document.querySelector('#feed pre.note');",
        )
        .await;

    // Pasting on the feed (outside the note field): text becomes a note, a copied
    // image an upload named after the moment. The event carries what a Ctrl+V
    // would; the browser's own clipboard is not reachable headless.
    let paste = |what: &str| {
        format!(
            "const data = new DataTransfer(); {what} \
             return document.body.dispatchEvent(new ClipboardEvent('paste', \
             {{ clipboardData: data, bubbles: true, cancelable: true }}));"
        )
    };
    let taken = desktop
        .exec(
            &paste("data.setData('text/plain', 'Pasted: gate code 4711');"),
            json!([]),
        )
        .await;
    assert_eq!(
        taken,
        json!(false),
        "the feed takes a paste outside a field"
    );
    phone
        .wait_for_feed_item(
            "Pasted: gate code 4711",
            "the pasted note in the other browser",
        )
        .await;
    desktop
        .exec(
            &paste(
                "data.items.add(new File([new Uint8Array([137, 80, 78, 71])], 'image.png', \
                 { type: 'image/png' }));",
            ),
            json!([]),
        )
        .await;
    phone
        .wait_until(
            "the pasted image in the other browser",
            "return Array.from(document.querySelectorAll('#feed li .file a')).some(a => \
             /^pasted-\\d{4}-\\d\\d-\\d\\d-\\d\\d-\\d\\d-\\d\\d\\.png$/.test(a.textContent));",
        )
        .await;
    drop_three_files(&app, &desktop, &phone).await;

    // Pasted into the note field, text stays an ordinary paste: the handler lets
    // the event through (`dispatchEvent` is true when nothing cancelled it).
    let ordinary = desktop
        .exec(
            "const data = new DataTransfer(); data.setData('text/plain', 'typed'); \
             return document.getElementById('note-text').dispatchEvent(new ClipboardEvent('paste', \
             { clipboardData: data, bubbles: true, cancelable: true }));",
            json!([]),
        )
        .await;
    assert_eq!(
        ordinary,
        json!(true),
        "a paste into the note field was taken over"
    );

    // One more note, to be seen in the pictures below.
    let note = "Ferry leaves at 6 from the north pier.\nBring coffee.";
    desktop.type_into("#note-text", note).await;
    desktop.click(".note-form button[type=submit]").await;
    phone
        .wait_for_feed_item("Bring coffee.", "the second note in the other browser")
        .await;

    let mark = phone.exec("return window.ferryMark;", json!([])).await;
    assert_eq!(mark, "no reload", "the phone's page was reloaded");
    for browser in [&desktop, &phone] {
        let errors = browser.console_errors().await;
        assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    }

    // Pictures of the result, for a person to look at.
    desktop.goto(&app.url("/")).await;
    desktop
        .wait_for_feed_item("first-look.png", "the feed")
        .await;
    let target = target_dir();
    desktop
        .save_screenshot(&target.join("browser-feed.png"))
        .await;
    phone
        .save_screenshot(&target.join("browser-feed-phone.png"))
        .await;
    drop((desktop, phone));
    driver.quit().await;
    drop(driver);
    app.stop().await;
}

/// Three files dropped on the feed at once (the drop event carries what a drag
/// from a file manager would) arrive in the other browser, live, as one card
/// with the three files and "Download all", and are one item with three files.
async fn drop_three_files(app: &TestApp, desktop: &Session<'_>, phone: &Session<'_>) {
    desktop
        .exec(
            "const data = new DataTransfer(); \
             for (const [name, text] of [['deck plan.txt', 'upper deck'], ['crew.csv', 'a,b'], ['route.gpx', '<gpx/>']]) \
               data.items.add(new File([text], name, { type: 'text/plain' })); \
             document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', \
               { dataTransfer: data, bubbles: true, cancelable: true }));",
            json!([]),
        )
        .await;
    phone
        .wait_until(
            "one live card holding the three dropped files",
            "return Array.from(document.querySelectorAll('#feed li.card')).some(li => \
             li.querySelectorAll('.files .file').length === 3 \
             && ['deck plan.txt', 'crew.csv', 'route.gpx'].every(n => li.textContent.includes(n)) \
             && li.querySelector('.download-all a') !== null);",
        )
        .await;
    let items = app.state.store.list_items(None, 20).await.expect("items");
    let dropped: Vec<_> = items
        .iter()
        .filter(|i| i.files.iter().any(|f| f.name == "crew.csv"))
        .collect();
    assert_eq!(dropped.len(), 1, "one item for the three dropped files");
    let names: Vec<_> = dropped[0].files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["deck plan.txt", "crew.csv", "route.gpx"]);
}

async fn sign_in(browser: &Session<'_>, app: &TestApp, name: &str) {
    browser.goto(&app.url("/login")).await;
    browser.type_into("input[name=name]", name).await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_until(
            "the feed after signing in",
            "return !!document.getElementById('feed');",
        )
        .await;
}

/// "Add a device" on the desktop; the phone opens what the QR code says (read by
/// an independent decoder, as its camera would) and presses the button.
async fn a_phone_signs_in_by_scanning_the_qr_code_of_a_signed_in_browser(backend: Backend) {
    let Some((chromium, chromedriver)) = skip_browser() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn(backend).await;
    app.add_user("ada", PASSWORD, false).await;
    let driver = Driver::start(&chromedriver).await;
    let desktop = driver.session(&chromium, (1280, 900)).await;
    let phone = driver.session(&chromium, (390, 844)).await;
    sign_in(&desktop, &app, "ada").await;

    desktop.goto(&app.url("/account")).await;
    desktop
        .click("form[action='/account/devices/link'] button")
        .await;
    desktop.find("figure.qr svg").await;
    let shown = desktop
        .exec(
            "return [document.querySelector('figure.qr svg').outerHTML, \
             document.querySelector('input[aria-label=\"Sign-in link\"]').value];",
            json!([]),
        )
        .await;
    let svg = shown[0].as_str().expect("svg");
    let link = crate::devices::decode_qr(svg);
    assert_eq!(link, shown[1], "the QR code holds the link the page shows");
    assert!(link.starts_with(&app.url("/link/")), "{link}");
    let target = target_dir();
    desktop
        .save_screenshot(&target.join("browser-add-device.png"))
        .await;

    phone.goto(&link).await;
    phone.find("form[action^='/link/'] button").await;
    phone
        .save_screenshot(&target.join("browser-add-device-phone.png"))
        .await;
    phone.click("form[action^='/link/'] button").await;
    phone
        .wait_until(
            "the phone's feed, signed in as ada",
            "return !!document.getElementById('feed') \
             && document.querySelector('header nav a').textContent === 'ada';",
        )
        .await;

    // The desktop lists both of ada's devices; the link is dead.
    desktop.goto(&app.url("/account")).await;
    let devices = desktop
        .exec(
            "return Array.from(document.querySelectorAll('ul.devices li strong')).length;",
            json!([]),
        )
        .await;
    assert_eq!(devices, 2);
    for browser in [&desktop, &phone] {
        let errors = browser.console_errors().await;
        assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    }
    phone.goto(&link).await;
    phone
        .wait_until(
            "the used link's page",
            "return document.body.innerText.includes('already used');",
        )
        .await;
    drop((desktop, phone));
    driver.quit().await;
    drop(driver);
    app.stop().await;
}

/// Chromium itself parses the web app manifest (through the page's policy) and
/// posts to the share target: from Ferry's own page the share becomes items; from
/// a page elsewhere (a data: URL, as an attacker's site would) it is refused.
async fn chromium_reads_the_manifest_and_its_share_posts_are_judged_by_origin(backend: Backend) {
    let Some((chromium, chromedriver)) = skip_browser() else {
        return;
    };
    let _turn = ONE_AT_A_TIME.lock().await;
    let app = TestApp::spawn(backend).await;
    app.add_user("ada", PASSWORD, false).await;
    let driver = Driver::start(&chromedriver).await;
    let phone = driver.session(&chromium, (390, 844)).await;
    sign_in(&phone, &app, "ada").await;

    // Chromium's own view of the manifest (DevTools' Application panel).
    let manifest = phone
        .cmd(
            Method::POST,
            "/goog/cdp/execute",
            json!({ "cmd": "Page.getAppManifest", "params": {} }),
        )
        .await;
    assert_eq!(manifest["url"], app.url("/manifest.webmanifest"));
    assert_eq!(manifest["errors"], json!([]), "{manifest:#}");
    assert!(
        manifest["data"]
            .as_str()
            .is_some_and(|d| d.contains("share_target"))
    );

    // A share posted from Ferry's own page, as the share sheet's form would be.
    phone
        .exec(
            "const form = document.createElement('form'); \
             form.method = 'post'; form.action = '/share-target'; \
             form.enctype = 'multipart/form-data'; \
             for (const [name, value] of [['title', 'Harbour'], ['text', 'shared from chromium']]) { \
               const input = document.createElement('input'); \
               input.name = name; input.value = value; form.append(input); } \
             const file = document.createElement('input'); \
             file.type = 'file'; file.name = 'files'; file.multiple = true; \
             const picked = new DataTransfer(); \
             picked.items.add(new File(['one'], 'one.txt')); \
             picked.items.add(new File(['two'], 'two.txt')); \
             file.files = picked.files; form.append(file); \
             document.body.append(form); form.submit();",
            json!([]),
        )
        .await;
    phone
        .wait_for_feed_item("shared from chromium", "the shared note on the feed")
        .await;
    phone
        .wait_for_feed_item("two.txt", "a shared file on the feed")
        .await;
    let items = app.state.store.list_items(None, 100).await.expect("items");
    assert_eq!(items.len(), 1, "one item: two files and a note");
    assert_eq!(items[0].files.len(), 2);

    // The same post from a page that is not Ferry's.
    let action = app.url("/share-target");
    let foreign = format!(
        "data:text/html,<form method=post enctype=multipart/form-data action='{action}'>\
         <input name=text value=forged></form><script>document.forms[0].submit()</script>"
    );
    phone.goto(&foreign).await;
    phone
        .wait_until(
            "the refusal of a cross-site share",
            "return location.href.endsWith('/share-target') \
             && document.body.innerText.includes('must come from');",
        )
        .await;
    let items = app.state.store.list_items(None, 100).await.expect("items");
    assert_eq!(items.len(), 1, "the forged share created nothing");
    assert!(crate::helpers::files_under(&app.data_dir.join("pending-shares")).is_empty());
    drop(phone);
    driver.quit().await;
    drop(driver);
    app.stop().await;
}

/// A file above the page's tus threshold goes in resumable pieces. It was begun
/// before (through the API, as by this page before a reload), and the page's
/// localStorage holds its URL: choosing the same file continues that upload.
async fn resume_a_large_upload(
    app: &TestApp,
    user_id: &str,
    desktop: &Session<'_>,
    phone: &Session<'_>,
    dir: &Path,
) {
    let name = "holiday-video.bin";
    let path = dir.join(name);
    let body: Vec<u8> = (0..12 * 1024 * 1024 + 5)
        .map(|i| (i * 31 % 253) as u8)
        .collect();
    std::fs::write(&path, &body).expect("write the large file");
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime")
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let token = ferry::auth::random_token();
    app.state
        .store
        .create_api_token(user_id, "resume", &ferry::auth::token_hash(&token))
        .await
        .expect("token");
    let client = reqwest::Client::new();
    let created = client
        .post(app.url("/api/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", body.len().to_string())
        .header("upload-metadata", "filename aG9saWRheS12aWRlby5iaW4=")
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let first = client
        .patch(app.url(&location))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("content-type", "application/offset+octet-stream")
        .header("upload-offset", "0")
        .body(body[..5 * 1024 * 1024].to_vec())
        .send()
        .await
        .expect("first piece");
    assert_eq!(first.status(), 204);
    let key = format!("ferry-tus:{name}:{}:{modified}", body.len());
    desktop
        .exec(
            "localStorage.setItem(arguments[0], arguments[1]);",
            json!([key, location]),
        )
        .await;
    let input = desktop.find("#file-input").await;
    desktop.send_keys(&input, &path.display().to_string()).await;
    desktop
        .wait_until(
            "the large upload's row with a full progress bar and a check mark",
            "return Array.from(document.querySelectorAll('#uploads li')).some(li => \
             li.textContent.includes('holiday-video.bin ✓') && li.querySelector('progress').value === 100);",
        )
        .await;
    phone
        .wait_for_feed_item(name, "the large upload in the other browser")
        .await;
    let items = app.state.store.list_items(None, 10).await.expect("items");
    let item = items
        .iter()
        .find(|i| i.name.as_deref() == Some(name))
        .expect("the large file's item");
    assert!(
        location.ends_with(&item.id),
        "the page continued the upload it had begun, not a new one"
    );
    let sha: String = sha2::Digest::finalize(sha2::Digest::chain_update(
        <sha2::Sha256 as sha2::Digest>::new(),
        &body,
    ))
    .iter()
    .map(|b| format!("{b:02x}"))
    .collect();
    assert_eq!(item.sha256, sha);
    let stored = desktop
        .exec("return localStorage.getItem(arguments[0]);", json!([key]))
        .await;
    assert_eq!(stored, Value::Null, "a finished upload is forgotten");

    // The network drops in the middle of a slow upload and comes back: the same
    // upload carries on by itself, with the same progress bar.
    let name = "drop-test.bin";
    let path = dir.join(name);
    std::fs::write(&path, &body).expect("write the second large file");
    let network = |offline: bool| {
        json!({ "network_conditions": {
            "offline": offline, "latency": 5,
            "download_throughput": 50_000_000, "upload_throughput": 3_000_000,
        } })
    };
    desktop
        .cmd(Method::POST, "/chromium/network_conditions", network(false))
        .await;
    desktop.send_keys(&input, &path.display().to_string()).await;
    let row = "Array.from(document.querySelectorAll('#uploads li')).find(li => li.textContent.includes('drop-test.bin'))";
    desktop
        .wait_until(
            "the slow upload to be under way",
            &format!("const li = {row}; return !!li && li.querySelector('progress').value >= 15;"),
        )
        .await;
    desktop
        .cmd(Method::POST, "/chromium/network_conditions", network(true))
        .await;
    desktop
        .wait_until(
            "the page to notice the drop and wait to retry",
            &format!("const li = {row}; return !!li && li.textContent.includes('retrying');"),
        )
        .await;
    desktop
        .cmd(Method::POST, "/chromium/network_conditions", network(false))
        .await;
    desktop
        .wait_until(
            "the upload to finish after the network came back",
            &format!(
                "const li = {row}; return !!li && li.textContent.includes('drop-test.bin ✓');"
            ),
        )
        .await;
    desktop
        .cmd(Method::DELETE, "/chromium/network_conditions", json!({}))
        .await;
    // The browser logs the requests the drop cut off; nothing else may be there.
    let errors = desktop.console_errors().await;
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e.contains("/api/uploads/") && e.contains("ERR_INTERNET_DISCONNECTED")),
        "the page logged other errors: {errors:#?}"
    );
    let items = app.state.store.list_items(None, 10).await.expect("items");
    let dropped: Vec<_> = items
        .iter()
        .filter(|i| i.name.as_deref() == Some(name))
        .collect();
    assert_eq!(dropped.len(), 1, "one item for the interrupted upload");
    assert_eq!(dropped[0].sha256, sha);
    let upload = app
        .state
        .store
        .upload(&dropped[0].id)
        .await
        .expect("upload row");
    assert!(
        upload.is_some_and(|u| u.completed_at.is_some()),
        "the item is the upload that was interrupted, completed"
    );
    assert_eq!(
        app.state
            .store
            .count_unfinished_uploads(user_id)
            .await
            .expect("count"),
        0,
        "no second upload was started"
    );
}

/// Chromium and chromedriver, or None (with a message) in the Nix sandbox, where
/// there is no browser. Anywhere else a missing browser fails the test.
fn skip_browser() -> Option<(PathBuf, PathBuf)> {
    match (on_path("chromium"), on_path("chromedriver")) {
        (Some(chromium), Some(driver)) => Some((chromium, driver)),
        _ if std::env::var("FERRY_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1") => {
            eprintln!("FERRY_TEST_SQLITE_ONLY=1 and no Chromium: skipping the browser test");
            None
        }
        _ => panic!(
            "the browser test needs Chromium and chromedriver on PATH: run `{INSTALL}` as root"
        ),
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Where the screenshots go: the target directory, beside the test binaries.
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ferry"));
    bin.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir)
}

async fn wait_for_streams(app: &TestApp, count: i64) {
    let deadline = Instant::now() + LIVE;
    while app.state.metrics.sse_streams.load(Ordering::Relaxed) < count {
        assert!(
            Instant::now() < deadline,
            "the pages did not open their live-update streams"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- chromedriver ------------------------------------------------------------

/// A chromedriver process in its own process group, and the browser sessions it
/// runs. Dropping it closes the sessions (which ends their Chromiums) and kills
/// the whole group, also when the test fails.
struct Driver {
    child: Child,
    port: u16,
    http: reqwest::Client,
    sessions: Mutex<Vec<String>>,
    dir: TempDir,
}

impl Driver {
    async fn start(chromedriver: &Path) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("ferry-browser-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new(chromedriver);
        cmd.arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        // If the test process dies without unwinding, chromedriver goes too.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = cmd.spawn().expect("start chromedriver");
        let driver = Self {
            child,
            port,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
            sessions: Mutex::new(Vec::new()),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = driver
                .http
                .get(format!("http://127.0.0.1:{port}/status"))
                .send()
                .await;
            if let Ok(res) = status {
                let body: Value = res.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not start; its log:\n{}",
                driver.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }

    /// A new browser with its own fresh profile and the given window size.
    async fn session(&self, chromium: &Path, (width, height): (u32, u32)) -> Session<'_> {
        let n = self.sessions.lock().expect("sessions").len();
        let profile = self.dir.path().join(format!("profile-{n}"));
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([
            format!("--user-data-dir={}", profile.display()),
            format!("--window-size={width},{height}"),
        ])
        .collect::<Vec<_>>();
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": chromium, "args": args },
                "goog:loggingPrefs": { "browser": "ALL" },
            }}
        });
        let res = self
            .http
            .post(format!("http://127.0.0.1:{}/session", self.port))
            .json(&caps)
            .send()
            .await
            .expect("new session");
        let body: Value = res.json().await.expect("session json");
        let Some(id) = body["value"]["sessionId"].as_str() else {
            panic!(
                "chromedriver could not start Chromium: {}\nits log:\n{}",
                body["value"],
                self.log()
            );
        };
        self.sessions.lock().expect("sessions").push(id.to_string());
        let session = Session {
            http: &self.http,
            base: format!("http://127.0.0.1:{}/session/{id}", self.port),
        };
        session
            .cmd(
                Method::POST,
                "/window/rect",
                json!({ "width": width, "height": height }),
            )
            .await;
        session
    }

    /// DELETE /session/{id} with a plain blocking request: Drop cannot await.
    fn close_session(&self, id: &str) {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = write!(
            stream,
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        // chromedriver keeps the connection open: read one whole answer.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while !http_answer_complete(&answer) {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Close every browser, waiting for each to go.
    async fn quit(&self) {
        let sessions = std::mem::take(&mut *self.sessions.lock().expect("sessions"));
        for id in sessions {
            let res = self
                .http
                .delete(format!("http://127.0.0.1:{}/session/{id}", self.port))
                .send()
                .await
                .expect("close session");
            assert!(res.status().is_success(), "closing a session failed");
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let sessions =
            std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in sessions {
            self.close_session(&id);
        }
        // chromedriver and anything left of its browsers share its process group.
        if let Some(pgid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether `answer` holds a whole HTTP response with a Content-Length body.
fn http_answer_complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    answer.len() >= end + 4 + length
}

/// One browser window.
struct Session<'a> {
    http: &'a reqwest::Client,
    base: String,
}

impl Session<'_> {
    /// Send a WebDriver command and return its `value`; a WebDriver error fails.
    async fn cmd(&self, method: Method, path: &str, body: Value) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != Method::GET {
            req = req.json(&body);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = res.status();
        let body: Value = res.json().await.expect("WebDriver answers JSON");
        assert!(
            status.is_success(),
            "WebDriver {method} {path} failed with {status}: {}",
            body["value"]
        );
        body["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", json!({ "url": url })).await;
    }

    async fn exec(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Poll a script until it returns a truthy value, for at most `LIVE`.
    async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + LIVE;
        loop {
            let value = self.exec(script, json!([])).await;
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return;
            }
            if Instant::now() > deadline {
                let feed = self
                    .exec(
                        "const f = document.getElementById('feed'); \
                         return location.href + '\\n' + (f ? f.innerText : document.body.innerText);",
                        json!([]),
                    )
                    .await;
                panic!(
                    "timed out after {LIVE:?} waiting for {what}; the page shows:\n{}",
                    feed.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait for an element `#feed li` whose text contains `text`.
    async fn wait_for_feed_item(&self, text: &str, what: &str) {
        let script = format!(
            "return Array.from(document.querySelectorAll('#feed li')).some(li => li.textContent.includes({}));",
            json!(text)
        );
        self.wait_until(what, &script).await;
    }

    /// The element matching a CSS selector, waiting for it to exist.
    async fn find(&self, css: &str) -> String {
        let script = format!("return !!document.querySelector({});", json!(css));
        self.wait_until(&format!("an element {css}"), &script).await;
        let found = self
            .cmd(
                Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
            .to_string()
    }

    async fn send_keys(&self, element: &str, text: &str) {
        self.cmd(
            Method::POST,
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        self.send_keys(&element, text).await;
    }

    async fn click(&self, css: &str) {
        let element = self.find(css).await;
        self.cmd(
            Method::POST,
            &format!("/element/{element}/click"),
            json!({}),
        )
        .await;
    }

    async fn accept_alert(&self) {
        let deadline = Instant::now() + LIVE;
        let url = format!("{}/alert/accept", self.base);
        loop {
            let res = self
                .http
                .post(&url)
                .json(&json!({}))
                .send()
                .await
                .expect("accept alert");
            if res.status().is_success() {
                return;
            }
            assert!(Instant::now() < deadline, "no confirmation dialog appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Messages of level SEVERE in the browser console (script errors, CSP
    /// violations, failed requests).
    async fn console_errors(&self) -> Vec<String> {
        let log = self
            .cmd(Method::POST, "/se/log", json!({ "type": "browser" }))
            .await;
        log.as_array()
            .into_iter()
            .flatten()
            .filter(|entry| entry["level"] == "SEVERE")
            .map(|entry| entry["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    async fn screenshot_png(&self) -> Vec<u8> {
        let encoded = self.cmd(Method::GET, "/screenshot", Value::Null).await;
        base64_decode(encoded.as_str().expect("base64 screenshot"))
    }

    async fn save_screenshot(&self, path: &Path) {
        let png = self.screenshot_png().await;
        std::fs::write(path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
    }
}

/// Standard base64 (the WebDriver screenshot encoding), without a crate for it.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= value(*c) << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("RmVycnk="), b"Ferry");
    assert_eq!(base64_decode("RmVycnkh"), b"Ferry!");
    assert_eq!(base64_decode("RmVy\ncnkhIQ=="), b"Ferry!!");
}
