//! The free-space reserve on a real, small filesystem (a tmpfs mounted for the
//! test): small uploads are taken until the reserve itself is reached, large ones
//! are refused before it, announced or chunked, raw or in a form.

use std::path::{Path, PathBuf};
use std::process::Command;

use futures_util::stream;
use reqwest::StatusCode;
use serde_json::Value;

use crate::both_backends;
use crate::helpers::{Backend, TestApp};

both_backends!(small_uploads_fit_until_the_reserve);

const MIB: u64 = 1024 * 1024;

/// A tmpfs of its own, unmounted on drop. Mounting needs root: the nox session
/// (FERRY_TEST_REQUIRE_ALL=1) and CI run as root and must run this; elsewhere (the
/// Nix sandbox, a developer without root) the test says it is skipped.
struct SmallFilesystem {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFilesystem {
    fn mount(size: u64) -> Option<Self> {
        if !rustix::process::getuid().is_root() {
            assert!(
                std::env::var_os("FERRY_TEST_REQUIRE_ALL").is_none()
                    && std::env::var_os("CI").is_none(),
                "this run must mount a small tmpfs, which needs root"
            );
            eprintln!("not root: skipping a test that mounts a small tmpfs");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("small");
        std::fs::create_dir(&path).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size},mode=0755"))
            .arg("ferry-test")
            .arg(&path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount a tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(Self { path, _dir: dir })
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        // Lazy: the server may still hold a file open while it stops.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let st = rustix::fs::statvfs(path).expect("statvfs");
    st.f_bavail * st.f_frsize
}

async fn small_uploads_fit_until_the_reserve(backend: Backend) {
    let Some(fs) = SmallFilesystem::mount(64 * MIB) else {
        return;
    };
    let reserve = 8 * MIB;
    // Only the data directory is on the small filesystem; the SQLite database
    // stays where the harness put it, so its growth does not blur the figures.
    let data_dir = fs.path.join("data");
    let app = TestApp::spawn_with(backend, |s| {
        s.data_dir = data_dir;
        s.min_free_bytes = reserve;
    })
    .await;
    let token = app.user_with_token("io", false).await;
    // Leave 4 MiB above the reserve: less than the 16 MiB a space check used to
    // ask for whatever the file's size.
    let filler = fs.path.join("filler");
    let fill = free_bytes(&fs.path) - reserve - 4 * MIB;
    std::fs::write(&filler, vec![0u8; fill as usize]).expect("fill the filesystem");
    let headroom = free_bytes(&fs.path) - reserve;
    assert!((3 * MIB..=4 * MIB).contains(&headroom), "{headroom}");

    // Small files, with a length, without one (chunked), and in a form.
    let res = app.upload(&token, "small.txt", b"abc".to_vec()).await;
    assert_eq!(res.status(), 201);
    let res = put_chunked(
        &app,
        &token,
        "chunked.txt",
        vec![b"ab".to_vec(), b"c".to_vec()],
    )
    .await;
    assert_eq!(res.status(), 201);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"abc".to_vec()).file_name("form.txt"),
    );
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .expect("form upload");
    assert_eq!(res.status(), 201);

    // 6 MiB do not fit: refused at once when announced, and when chunked, before
    // their bytes reach the reserve.
    let big = vec![7u8; 6 * MIB as usize];
    let res = app.upload(&token, "big.bin", big.clone()).await;
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
    let pieces: Vec<Vec<u8>> = big.chunks(256 * 1024).map(<[u8]>::to_vec).collect();
    let res = put_chunked(&app, &token, "big-chunked.bin", pieces.clone()).await;
    assert_eq!(res.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        res.json::<Value>().await.expect("json")["error"],
        "insufficient_storage"
    );
    assert!(app.temp_files().is_empty(), "{:?}", app.temp_files());
    assert_eq!(app.blob_files().len(), 3);
    assert!(free_bytes(&fs.path) >= reserve);
    let listing: Value = reqwest::Client::new()
        .get(app.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let names: Vec<&str> = listing["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(!names.iter().any(|n| n.starts_with("big")), "{names:?}");

    // Room again: the same upload goes through.
    std::fs::remove_file(&filler).expect("free the filesystem");
    let res = put_chunked(&app, &token, "big-chunked.bin", pieces).await;
    assert_eq!(res.status(), 201);
    app.stop().await;
}

/// A raw upload without Content-Length: the body is sent in chunks.
async fn put_chunked(
    app: &TestApp,
    token: &str,
    name: &str,
    pieces: Vec<Vec<u8>>,
) -> reqwest::Response {
    let body = stream::iter(pieces.into_iter().map(Ok::<_, std::io::Error>));
    reqwest::Client::new()
        .put(app.url("/api/items"))
        .query(&[("name", name)])
        .bearer_auth(token)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .expect("chunked upload")
}
