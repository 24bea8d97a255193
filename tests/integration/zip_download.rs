//! "Download all": the ZIP of an item's files, checked by an independent reader
//! (Python's zipfile), with its length, ETag, ranges, If-Range and 416.

use crate::every_store;
use crate::helpers::{Backend, BlobStore, TestApp, execute};
use crate::several_files::{album, get, header, post_files};

// On Garage too: an archive's pieces are ranged reads of several objects.
every_store!(download_all_is_a_zip_that_python_reads_with_ranges);

/// Check an archive with Python's zipfile: names in order, sizes, CRC-32s (against
/// zlib's, of the expected bytes), stored, UTF-8 names, and every byte.
fn python_reads(zip: &[u8], expected: &[(&str, Vec<u8>)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let zip_path = dir.path().join("all.zip");
    std::fs::write(&zip_path, zip).expect("write zip");
    let mut args = vec![zip_path.display().to_string()];
    for (n, (name, body)) in expected.iter().enumerate() {
        let path = dir.path().join(format!("expected-{n}"));
        std::fs::write(&path, body).expect("write expected");
        args.push(name.to_string());
        args.push(path.display().to_string());
    }
    let script = r#"
import sys, zipfile, zlib
archive, pairs = sys.argv[1], sys.argv[2:]
expected = [(pairs[i], open(pairs[i + 1], 'rb').read()) for i in range(0, len(pairs), 2)]
with zipfile.ZipFile(archive) as z:
    assert z.testzip() is None, 'a CRC does not match'
    infos = z.infolist()
    assert [i.filename for i in infos] == [n for n, _ in expected], [i.filename for i in infos]
    for info, (name, data) in zip(infos, expected):
        assert info.compress_type == zipfile.ZIP_STORED, info
        assert info.flag_bits & 0x800, 'UTF-8 flag'
        assert info.file_size == len(data) == info.compress_size, info
        assert info.CRC == zlib.crc32(data), (info.CRC, zlib.crc32(data))
        assert z.read(info) == data, name
print('ok', len(infos))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&args)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python's zipfile refused the archive:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("ok {}", expected.len())
    );
}

async fn download_all_is_a_zip_that_python_reads_with_ranges(backend: Backend, store: BlobStore) {
    let app = TestApp::spawn_on(backend, store, |_| {}).await;
    let token = app.user_with_token("kai", false).await;
    let files = album();
    let item = post_files(&app, &token, &files, "").await;
    let id = item["id"].as_str().expect("id").to_string();
    let zip_url = item["zip_url"].as_str().expect("zip url").to_string();
    assert_eq!(zip_url, format!("/items/{id}/zip"));

    let res = get(&app, &token, &zip_url, &[]).await;
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "content-type"), "application/zip");
    assert!(
        header(&res, "content-disposition")
            .starts_with("attachment; filename=\"harbour and 2 more.zip\"")
    );
    let etag = header(&res, "etag");
    let length: usize = header(&res, "content-length").parse().expect("length");
    let whole = res.bytes().await.expect("zip").to_vec();
    assert_eq!(
        whole.len(),
        length,
        "Content-Length is the archive's length"
    );
    assert_eq!(item["size"], length, "the item's size is the archive's");
    let names = [
        ("harbour.jpg", files[0].1.clone()),
        ("harbour (2).jpg", files[1].1.clone()),
        (files[2].0, files[2].1.clone()),
    ];
    python_reads(&whole, &names);

    // The item's own content, the API's route and a second request: the same bytes.
    for path in [
        format!("/items/{id}/content"),
        format!("/api/items/{id}/zip"),
        zip_url.clone(),
    ] {
        let res = get(&app, &token, &path, &[]).await;
        assert_eq!(header(&res, "etag"), etag, "{path}");
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            whole.as_slice(),
            "{path}"
        );
    }

    // Ranges: across the first file's end, the second header and into its data;
    // the central directory at the end; a suffix.
    let first_end = 30 + "harbour.jpg".len() + files[0].1.len();
    for (range, from, to) in [
        (
            format!("bytes={}-{}", first_end - 100, first_end + 200),
            first_end - 100,
            first_end + 200,
        ),
        (format!("bytes={}-", length - 300), length - 300, length - 1),
        ("bytes=-22".to_string(), length - 22, length - 1),
        ("bytes=0-0".to_string(), 0, 0),
    ] {
        let res = get(&app, &token, &zip_url, &[("range", range.as_str())]).await;
        assert_eq!(res.status(), 206, "{range}");
        assert_eq!(
            header(&res, "content-range"),
            format!("bytes {from}-{to}/{length}")
        );
        assert_eq!(
            res.bytes().await.expect("bytes").as_ref(),
            &whole[from..=to],
            "{range}"
        );
    }
    // If-Range with the archive's ETag honours the range; with another, the whole.
    let res = get(
        &app,
        &token,
        &zip_url,
        &[("range", "bytes=100-199"), ("if-range", etag.as_str())],
    )
    .await;
    assert_eq!(res.status(), 206);
    assert_eq!(res.bytes().await.expect("bytes").as_ref(), &whole[100..200]);
    let res = get(
        &app,
        &token,
        &zip_url,
        &[("range", "bytes=100-199"), ("if-range", "\"other\"")],
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.expect("bytes").len(), length);
    // Past the end: 416 with the length; a matching ETag: 304.
    let past = format!("bytes={length}-");
    let res = get(&app, &token, &zip_url, &[("range", past.as_str())]).await;
    assert_eq!(res.status(), 416);
    assert_eq!(header(&res, "content-range"), format!("bytes */{length}"));
    let res = get(&app, &token, &zip_url, &[("if-none-match", etag.as_str())]).await;
    assert_eq!(res.status(), 304);

    // A file stored before CRCs were kept: the first archive computes and keeps it.
    let first_file = item["files"][0]["url"].as_str().expect("url").to_string();
    execute(
        &app.state.store,
        "update item_files set crc32 = null where item_id = $1",
        &id,
    )
    .await;
    let again = get(&app, &token, &zip_url, &[])
        .await
        .bytes()
        .await
        .expect("zip");
    assert_eq!(again.as_ref(), whole.as_slice());
    let stored = app
        .state
        .store
        .item(&id)
        .await
        .expect("item")
        .expect("item");
    assert_eq!(
        stored.files.iter().map(|f| f.crc32).collect::<Vec<_>>(),
        files
            .iter()
            .map(|(_, b)| Some(i64::from(crc32fast::hash(b))))
            .collect::<Vec<_>>()
    );
    assert_eq!(get(&app, &token, &first_file, &[]).await.status(), 200);

    // A note has no archive.
    let note = app.post_note(&token, "no files here").await;
    let res = get(
        &app,
        &token,
        &format!("/items/{}/zip", note["id"].as_str().expect("id")),
        &[],
    )
    .await;
    assert_eq!(res.status(), 404);
    app.stop().await;
}
