//! Configuration comes from the environment, a TOML file (`FERRY_CONFIG`) and
//! secret files (`FERRY_<NAME>_FILE`). Any mix of keys and values either loads or
//! fails with messages; it never panics, never echoes a secret, and what loads
//! stays in the ranges the server computes with.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ferry::config::{SETTINGS, Settings};
use libfuzzer_sys::fuzz_target;

/// A directory for the files the input names. libFuzzer ends the process without
/// running destructors, so each run names it by pid and removes those of runs
/// that have ended.
fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // tmpfs when there is one: every input writes its files.
        let shm = std::path::Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let prefix = "ferry-fuzz-config-";
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !std::path::Path::new("/proc").join(pid).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// Appended to every secret value; it must never show in an error message.
const MARKER: &str = "SeCrEt-7f3a9c";

// The input is text, one `KEY=VALUE` per line (seeds in fuzz/seeds/config/):
// - `listen=…`: `FERRY_LISTEN`, for any setting's name;
// - `@database_url=…`: `FERRY_DATABASE_URL_FILE` naming a file with the value;
// - `config=…`: `FERRY_CONFIG` naming a TOML file with the value (`\n` for newlines);
// - anything else: that key as it is.
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut env = Vec::new();
    for (i, line) in text.lines().enumerate().take(64) {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let (file, name) = match key.strip_prefix('@') {
            Some(name) => (true, name),
            None => (false, key),
        };
        let setting = SETTINGS.iter().find(|d| d.key == name);
        let secret = |value: &str| match setting {
            Some(d) if d.secret => format!("{value}{MARKER}"),
            _ => value.to_string(),
        };
        match (setting, file) {
            (Some(d), false) => env.push((
                format!("FERRY_{}", d.key.to_ascii_uppercase()),
                secret(value),
            )),
            (Some(d), true) => {
                let path = scratch().join(format!("secret-{i}"));
                std::fs::write(&path, secret(value)).expect("write secret file");
                env.push((
                    format!("FERRY_{}_FILE", d.key.to_ascii_uppercase()),
                    path.display().to_string(),
                ));
            }
            (None, _) if key == "config" => {
                let path = scratch().join(format!("config-{i}.toml"));
                std::fs::write(&path, value.replace("\\n", "\n")).expect("write config file");
                env.push(("FERRY_CONFIG".to_string(), path.display().to_string()));
            }
            (None, _) => {
                // Other FERRY_*_FILE and FERRY_CONFIG values would read files of
                // this machine; those keys are covered above with files we write.
                let upper = key.to_ascii_uppercase();
                if upper.contains("FILE") || upper.contains("CONFIG") {
                    continue;
                }
                env.push((key.to_string(), value.to_string()));
            }
        }
    }

    match Settings::from_env(env) {
        Ok(settings) => {
            // The database URL's password (as the driver reads it) is never shown.
            let shown = settings
                .redacted_lines()
                .into_iter()
                .find_map(|l| l.strip_prefix("FERRY_DATABASE_URL=").map(str::to_string))
                .expect("the database URL line");
            match url::Url::parse(settings.database_url.expose()) {
                Ok(u) if u.password().is_some() => {
                    let again = url::Url::parse(&shown).expect("the redacted URL parses");
                    assert_eq!(again.password(), Some("REDACTED"), "{shown}");
                }
                Ok(_) => {}
                Err(_) => assert_eq!(shown, "REDACTED"),
            }
            let _ = settings.is_postgres();
            let _ = settings.secure_cookies();
            // What the server computes from settings must not overflow.
            let ttl_ms = i64::try_from(settings.session_ttl.as_millis()).unwrap_or_else(|_| {
                panic!(
                    "session_ttl {:?} overflows milliseconds",
                    settings.session_ttl
                )
            });
            assert!(
                ferry::store::now_ms().checked_add(ttl_ms).is_some(),
                "session_ttl {:?}: the session expiry overflows",
                settings.session_ttl
            );
            assert!(
                settings.max_upload_bytes.checked_add(64 * 1024).is_some()
                    && i64::try_from(settings.max_upload_bytes).is_ok(),
                "max_upload_bytes {} does not fit the item size column",
                settings.max_upload_bytes
            );
            assert!(
                settings.max_note_bytes.checked_add(4096).is_some()
                    && i64::try_from(settings.max_note_bytes).is_ok(),
                "max_note_bytes {}",
                settings.max_note_bytes
            );
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let text = errors.to_string();
            assert!(!text.contains(MARKER), "a secret in the error: {text}");
        }
    }
});
