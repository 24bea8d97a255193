//! A resumable upload survives the real binary being killed in the middle of a
//! PATCH: after a restart the offset it reports is backed by exactly the bytes
//! that were sent, and the upload finishes into the right file.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::process::{Server, cli_token};

const OCTETS: &str = "application/offset+octet-stream";

fn body() -> Vec<u8> {
    (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_patch_keeps_the_acknowledged_offset_and_the_upload_finishes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let token = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || cli_token(&data, &[]))
            .await
            .expect("token")
    };
    let body = body();
    let client = reqwest::Client::new();
    let server = Server::start(&data, &[]);
    let res = client
        .post(server.url("/api/uploads"))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .header("upload-length", body.len().to_string())
        .header("upload-metadata", "filename Y3Jhc2guYmlu")
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let id = path.rsplit('/').next().expect("id").to_string();
    let patch = |url: String, at: usize, piece: Vec<u8>| {
        client
            .patch(url)
            .bearer_auth(&token)
            .header("tus-resumable", "1.0.0")
            .header("content-type", OCTETS)
            .header("upload-offset", at.to_string())
            .body(piece)
            .send()
    };
    let res = patch(server.url(&path), 0, body[..3_000_000].to_vec())
        .await
        .expect("patch");
    assert_eq!(res.status(), 204);

    // A second PATCH, killed while its bytes stream to disk.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "PATCH {path} HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer {token}\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: {OCTETS}\r\nUpload-Offset: 3000000\r\nContent-Length: 7000000\r\n\r\n"
    )
    .expect("head");
    stream
        .write_all(&body[3_000_000..6_000_000])
        .expect("part of the body");
    let file = data.join("uploads").join(&id).join("data");
    let on_disk = || std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_disk() <= 3_000_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(on_disk() > 3_000_000, "the second PATCH was writing");
    server.signal(rustix::process::Signal::KILL);
    drop(server);
    drop(stream);

    let server = Server::start(&data, &[]);
    let head = client
        .head(server.url(&path))
        .bearer_auth(&token)
        .header("tus-resumable", "1.0.0")
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    let offset: usize = head.headers()["upload-offset"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    // Nothing of the killed request was acknowledged; what was is on disk.
    assert_eq!(offset, 3_000_000);
    let kept = std::fs::read(&file).expect("partial file");
    assert!(kept.len() >= offset);
    assert_eq!(
        &kept[..offset],
        &body[..offset],
        "the acknowledged bytes are intact"
    );

    let res = patch(server.url(&path), offset, body[offset..].to_vec())
        .await
        .expect("patch");
    assert_eq!(res.status(), 204);
    let page: serde_json::Value = client
        .get(server.url("/api/items"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("items")
        .json()
        .await
        .expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 1);
    let sha: String = Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(items[0]["sha256"], sha.as_str());
    assert_eq!(items[0]["size"], body.len());
}
