use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_valid() {
    let s = Settings::from_env(env(&[])).expect("defaults");
    assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.database_url.expose(), "sqlite://./data/ferry.db");
    assert!(s.migrate_on_start);
    assert_eq!(s.shutdown_grace, Duration::from_secs(30));
}

#[test]
fn every_problem_is_reported() {
    let err = Settings::from_env(env(&[
        ("FERRY_LISTEN", "nope"),
        ("FERRY_MAX_UPLOAD_BYTES", "-1"),
        ("FERRY_LOG_FORMAT", "xml"),
    ]))
    .expect_err("invalid");
    assert_eq!(err.0.len(), 3, "{err}");
    assert!(err.0[0].starts_with("FERRY_LISTEN"), "{err}");
    assert!(
        err.to_string().contains("FERRY_MAX_UPLOAD_BYTES: \"-1\""),
        "{err}"
    );
    assert!(err.to_string().contains("FERRY_LOG_FORMAT"), "{err}");
}

#[test]
fn secrets_come_from_files_and_conflicts_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db_url");
    std::fs::write(&path, "postgres://ferry:hunter2@db/ferry\n").expect("write");
    let p = path.display().to_string();
    let s = Settings::from_env(env(&[("FERRY_DATABASE_URL_FILE", &p)])).expect("file secret");
    assert_eq!(s.database_url.expose(), "postgres://ferry:hunter2@db/ferry");
    assert!(s.is_postgres());
    let lines = s.redacted_lines().join("\n");
    assert!(!lines.contains("hunter2"), "{lines}");
    assert!(
        lines.contains("FERRY_DATABASE_URL=postgres://ferry:REDACTED@db/ferry"),
        "{lines}"
    );

    let err = Settings::from_env(env(&[
        ("FERRY_DATABASE_URL", "sqlite://x.db"),
        ("FERRY_DATABASE_URL_FILE", &p),
    ]))
    .expect_err("conflict");
    assert!(err.to_string().contains("both set"), "{err}");
}

#[test]
fn file_layer_is_below_environment() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("ferry.toml");
    std::fs::write(
        &path,
        "listen = \"127.0.0.1:9000\"\nmax_upload_bytes = 1000\n",
    )
    .expect("write");
    let p = path.display().to_string();
    let s = Settings::from_env(env(&[
        ("FERRY_CONFIG", &p),
        ("FERRY_LISTEN", "127.0.0.1:9001"),
    ]))
    .expect("layered");
    assert_eq!(s.listen.port(), 9001);
    assert_eq!(s.max_upload_bytes, 1000);
}

/// Values the `config` fuzz target found (fuzz/fuzz_targets/config.rs): they
/// loaded, then overflowed where the server computes with them (session
/// expiry in milliseconds, the upload precheck's margin, the note body limit).
#[test]
fn fuzz_regressions_out_of_range_values_are_refused() {
    for (key, value) in [
        ("FERRY_SESSION_TTL", "200000000000d"),
        ("FERRY_SESSION_TTL", "9223372036854776s"),
        ("FERRY_SESSION_TTL", "3651d"),
        ("FERRY_MAX_UPLOAD_BYTES", "18446744073709551615"),
        ("FERRY_MAX_UPLOAD_BYTES", "1125899906842625"),
        ("FERRY_MAX_NOTE_BYTES", "18446744073709551615"),
    ] {
        let err = Settings::from_env(env(&[(key, value)])).expect_err(value);
        assert_eq!(err.0.len(), 1, "{err}");
        assert!(err.0[0].starts_with(key), "{err}");
        assert!(err.0[0].contains("at most"), "{err}");
    }
    let s = Settings::from_env(env(&[
        ("FERRY_SESSION_TTL", "3650d"),
        ("FERRY_MAX_UPLOAD_BYTES", "1125899906842624"),
        ("FERRY_MAX_NOTE_BYTES", "1073741824"),
    ]))
    .expect("the largest values load");
    assert_eq!(s.session_ttl, MAX_SESSION_TTL);
}

#[test]
fn a_log_filter_with_non_ascii_text_is_refused_not_a_panic() {
    // The config fuzz target's crash: the filter parser panicked inside a character.
    let err = Settings::from_env(env(&[("FERRY_LOG", "info=\u{690}x")])).expect_err("refused");
    assert!(err.to_string().contains("FERRY_LOG"), "{err}");
}

#[test]
fn the_s3_store_is_configured_with_its_secret_from_a_file_and_never_shown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s3_secret");
    // A secret that would parse as a URL must not be shown as one.
    std::fs::write(&path, "abc:hunter2@x\n").expect("write");
    let path = path.display().to_string();
    let s = Settings::from_env(env(&[
        ("FERRY_BLOB_STORE", "s3"),
        ("FERRY_S3_ENDPOINT", "http://127.0.0.1:3900"),
        ("FERRY_S3_BUCKET", "ferry-files"),
        ("FERRY_S3_PREFIX", "team/ferry/"),
        ("FERRY_S3_ACCESS_KEY_ID", "GK123"),
        ("FERRY_S3_SECRET_ACCESS_KEY_FILE", &path),
    ]))
    .expect("valid");
    assert_eq!(s.blob_store, BlobStoreKind::S3);
    assert_eq!(s.s3_region, "garage");
    assert!(s.s3_path_style);
    assert_eq!(
        s.s3_prefix, "team/ferry",
        "the trailing slash is the store's to add"
    );
    assert_eq!(
        s.s3_secret_access_key.as_ref().map(|k| k.0.expose()),
        Some("abc:hunter2@x")
    );
    let listed = s.redacted_lines().join("\n");
    assert!(
        listed.contains("FERRY_S3_SECRET_ACCESS_KEY=REDACTED"),
        "{listed}"
    );
    assert!(!listed.contains("hunter2"), "{listed}");
    assert!(!format!("{s:?}").contains("hunter2"));

    let err = Settings::from_env(env(&[
        ("FERRY_BLOB_STORE", "s4"),
        ("FERRY_S3_BUCKET", "Bad_Bucket"),
        ("FERRY_S3_PREFIX", "../up"),
        ("FERRY_S3_ENDPOINT", "ftp://store"),
        ("FERRY_S3_SECRET_ACCESS_KEY", "not shown\u{7}"),
    ]))
    .expect_err("invalid");
    let text = err.to_string();
    for key in [
        "FERRY_BLOB_STORE",
        "FERRY_S3_BUCKET",
        "FERRY_S3_PREFIX",
        "FERRY_S3_ENDPOINT",
    ] {
        assert!(text.contains(&format!("{key}: ")), "{key}: {text}");
    }
    assert!(
        text.contains("FERRY_S3_SECRET_ACCESS_KEY: (hidden)"),
        "{text}"
    );
    assert!(!text.contains("not shown"), "{text}");
}
