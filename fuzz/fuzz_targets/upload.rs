//! Uploads through the real router: multipart bodies on the API and on the page
//! form, raw bodies with any name, and bodies with any Content-Type, against a
//! SQLite instance in a temporary directory. Whatever arrives, the answer is a
//! client error or a success (never a 500 or a panic), no temporary file is left
//! behind, and every stored item has a clean name and its blob.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, header};
use ferry::auth::{random_token, token_hash};
use ferry::config::Settings;
use ferry::startup::Application;
use ferry::http::AppState;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

/// Boundary of the multipart routes; the seed corpus uses it.
const BOUNDARY: &str = "ferryfuzz";
/// The session's CSRF token, fixed so that seeds can carry it.
const CSRF: &str = "fuzzcsrf";

struct Fixture {
    rt: tokio::runtime::Runtime,
    router: Router,
    state: AppState,
    api_token: String,
    session: String,
    data_dir: PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        // tmpfs when there is one: every stored upload is fsynced. libFuzzer ends
        // the process without running destructors, so each run names its
        // directory by pid and removes those of runs that have ended.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let prefix = "ferry-fuzz-upload-";
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("data directory");
        let mut settings = Settings::for_data_dir(dir.join("data"));
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        settings.max_upload_bytes = 4096;
        settings.max_note_bytes = 1024;
        settings.min_free_bytes = 0;
        let data_dir = settings.data_dir.clone();
        let (state, api_token, session) = rt.block_on(async {
            let app = Application::build(settings).await.expect("build app");
            let state = app.state().clone();
            let hash = ferry::auth::hash_password("fuzz-password".into())
                .await
                .expect("hash");
            let user = state
                .app
                .store()
                .create_user("fuzz", &hash, false)
                .await
                .expect("user")
                .expect("new user");
            let api_token = random_token();
            state
                .app
                .store()
                .create_api_token(&user.id, "fuzz", &token_hash(&api_token))
                .await
                .expect("token");
            let session = random_token();
            state
                .app
                .store()
                .create_session(
                    &token_hash(&session),
                    &user.id,
                    CSRF,
                    ferry::store::now_ms() + 86_400_000,
                )
                .await
                .expect("session");
            (state, api_token, session)
        });
        let router = ferry::http::router(state.clone());
        Fixture {
            rt,
            router,
            state,
            api_token,
            session,
            data_dir,
        }
    })
}

/// FERRY_FUZZ_TRACE=1 prints each answer (to check what the seeds reach).
fn trace() -> bool {
    static TRACE: OnceLock<bool> = OnceLock::new();
    *TRACE.get_or_init(|| std::env::var_os("FERRY_FUZZ_TRACE").is_some())
}

fn leftovers(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(leftovers(&path));
            } else if path.extension().is_none_or(|e| e != "lock") {
                out.push(path);
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    // The first line of the rest is a header value or a name for some routes.
    let split = |rest: &[u8]| -> (Vec<u8>, Vec<u8>) {
        match rest.iter().position(|b| *b == b'\n') {
            Some(i) => (rest[..i].to_vec(), rest[i + 1..].to_vec()),
            None => (rest.to_vec(), Vec::new()),
        }
    };
    let api = |method: Method, uri: String, content_type: Option<HeaderValue>, body: Vec<u8>| {
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", f.api_token));
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        req.header(header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
            .expect("request")
    };
    let request = match selector % 4 {
        // The API's multipart upload.
        0 => api(
            Method::POST,
            "/api/items".into(),
            Some(HeaderValue::from_str(&multipart).expect("ct")),
            rest.to_vec(),
        ),
        // The page's no-JavaScript form: session cookie, CSRF field first.
        1 => Request::builder()
            .method(Method::POST)
            .uri("/items")
            .header(header::COOKIE, format!("ferry_session={}", f.session))
            .header(header::CONTENT_TYPE, &multipart)
            .body(Body::from(rest.to_vec()))
            .expect("request"),
        // Any Content-Type on POST /api/items (JSON notes, other boundaries, raw).
        2 => {
            let (ct, body) = split(rest);
            let Ok(ct) = HeaderValue::from_bytes(&ct) else {
                return;
            };
            api(
                Method::POST,
                "/api/items?name=raw.bin".into(),
                Some(ct),
                body,
            )
        }
        // A raw PUT with any name.
        _ => {
            let (name, body) = split(rest);
            let name: String = url_encode(&name);
            api(Method::PUT, format!("/api/items?name={name}"), None, body)
        }
    };

    f.rt.block_on(async {
        let response = f.router.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("response body");
        if trace() {
            eprintln!(
                "route {} -> {status} {}",
                selector % 4,
                String::from_utf8_lossy(&body)
            );
        }
        assert!(
            !status.is_server_error(),
            "{status} for {:?}: {}",
            selector % 4,
            String::from_utf8_lossy(&body)
        );
        let left = leftovers(&f.data_dir.join("tmp"));
        assert!(
            left.is_empty(),
            "temporary files left after {status}: {left:?}"
        );
        if status.is_success() && !body.is_empty() && body[0] == b'{' {
            let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
            let items = match json.get("items") {
                Some(serde_json::Value::Array(items)) => items.clone(),
                _ => vec![json],
            };
            for item in items {
                let id = item["id"].as_str().expect("item id");
                uuid::Uuid::parse_str(id).expect("uuid");
                if item["kind"] == "file" {
                    let name = item["name"].as_str().expect("name");
                    assert_eq!(ferry::domain::DisplayName::clean(name).as_str(), name);
                    // Every file of the item: a clean name and its blob, of its size.
                    let stored = f.state.app.store().item(id).await.expect("read").expect("item");
                    assert!(!stored.files.is_empty(), "a file item without files");
                    for file in &stored.files {
                        assert_eq!(ferry::domain::DisplayName::clean(&file.name).as_str(), file.name);
                        let blob = f.data_dir.join("blobs").join(&file.id);
                        let size = std::fs::metadata(&blob).expect("blob exists").len();
                        assert_eq!(size as i64, file.size);
                        assert!(size <= f.state.app.settings().max_upload_bytes);
                    }
                }
            }
        }
        if status.is_success() || status.is_redirection() {
            // Keep the instance small: remove what was stored.
            let store = f.state.app.store();
            for item in store.list_items(None, 100).await.expect("list").iter() {
                if let Some((gone, _)) = store.delete_item(&item.id, "{}").await.expect("delete") {
                    for file in &gone.files {
                        let _ = std::fs::remove_file(f.data_dir.join("blobs").join(&file.id));
                    }
                }
            }
        }
    });
});

fn url_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(b) {
                (*b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
