//! The file store's own contract, on the local directory and on Garage alike:
//! what `commit` returns is what `read` gives back, whole or in ranges; lengths,
//! listings, removal, adopting a finished file, and an upload given up leaving
//! nothing.

use std::time::Duration;

use ferry::blobs::{Blobs, ByteStream, UploadError, sha256_hex};
use futures_util::TryStreamExt;

use crate::garage::garage;
use crate::helpers::{BlobStore, use_store};

async fn open(store: BlobStore, dir: &std::path::Path) -> Blobs {
    let mut settings = ferry::config::Settings::for_data_dir(dir.join("data"));
    settings.min_free_bytes = 0;
    use_store(&mut settings, store);
    std::fs::create_dir_all(&settings.data_dir).expect("data dir");
    Blobs::open(&settings).await.expect("open the store")
}

async fn read_all(blobs: &Blobs, id: &uuid::Uuid, start: u64, count: u64) -> Vec<u8> {
    let stream = blobs.read(id, start, count).await.expect("read");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("bytes");
    chunks.concat()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

async fn the_store_keeps_its_contract(store: BlobStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let blobs = open(store, dir.path()).await;
    assert!(blobs.is_empty().await.expect("empty"));
    let mut ids = Vec::new();
    for size in [
        0,
        1,
        8 * 1024 * 1024 - 1,
        8 * 1024 * 1024,
        17 * 1024 * 1024 + 3,
    ] {
        let data = pattern(size);
        let mut upload = blobs
            .start_upload(u64::MAX, Some(size as u64))
            .await
            .expect("start");
        for chunk in data.chunks(700_001) {
            upload.write(chunk).await.expect("write");
        }
        let stored = upload.commit().await.expect("commit");
        assert_eq!(
            (stored.size, stored.sha256.as_str()),
            (size as u64, sha256_hex(&data).as_str())
        );
        assert_eq!(blobs.len(&stored.id).await.expect("len"), Some(size as u64));
        assert_eq!(read_all(&blobs, &stored.id, 0, size as u64).await, data);
        if size > 10 {
            let from = size as u64 / 3;
            let part = read_all(&blobs, &stored.id, from, 1000.min(size as u64 - from)).await;
            assert_eq!(part, &data[from as usize..from as usize + part.len()]);
        }
        ids.push(stored.id);
    }
    let mut listed: Vec<uuid::Uuid> = blobs
        .list()
        .await
        .expect("list")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(listed, want);

    // Over the limit: refused while streaming, nothing stored.
    let mut upload = blobs.start_upload(10, None).await.expect("start");
    upload.write(b"12345").await.expect("fits");
    assert!(matches!(
        upload.write(b"678901").await,
        Err(UploadError::TooLarge { limit: 10 })
    ));
    drop(upload);
    // Given up half-way through a multipart upload: nothing left once the abort ran.
    let mut upload = blobs.start_upload(u64::MAX, None).await.expect("start");
    upload
        .write(&pattern(9 * 1024 * 1024))
        .await
        .expect("write");
    drop(upload);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        blobs.sweep_incomplete(Duration::ZERO).await.expect("sweep"),
        0,
        "already aborted"
    );
    assert_eq!(blobs.list().await.expect("list").len(), ids.len());

    // A finished file adopted as a blob under a given id.
    let file = dir.path().join("finished");
    std::fs::write(&file, pattern(3 * 1024 * 1024)).expect("file");
    let id = uuid::Uuid::now_v7();
    let stored = blobs.adopt(&id, &file).await.expect("adopt");
    assert_eq!(stored.sha256, sha256_hex(&pattern(3 * 1024 * 1024)));
    assert_eq!(
        read_all(&blobs, &id, 0, stored.size).await,
        pattern(3 * 1024 * 1024)
    );
    // And a stream written under a given id.
    let copy = uuid::Uuid::now_v7();
    let stream: ByteStream = blobs.read(&id, 0, stored.size).await.expect("read");
    let copied = blobs.put_stream(&copy, stream).await.expect("put");
    assert_eq!(copied.sha256, stored.sha256);

    for id in ids.iter().chain([&id, &copy]) {
        blobs.remove(id).await.expect("remove");
        assert_eq!(blobs.len(id).await.expect("len"), None);
        let missing = blobs.read(id, 0, 1).await.err().expect("gone");
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
    blobs
        .remove(&uuid::Uuid::now_v7())
        .await
        .expect("removing nothing is fine");
    assert!(blobs.is_empty().await.expect("empty again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_store_keeps_its_contract() {
    the_store_keeps_its_contract(BlobStore::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garage_store_keeps_its_contract() {
    if garage().is_none() {
        return;
    }
    the_store_keeps_its_contract(BlobStore::Garage).await;
}
