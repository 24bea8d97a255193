//! Tests of the real `ferry` binary: configuration errors, the container
//! healthcheck, what admin commands print, SIGTERM during a request, SIGKILL
//! during an upload, and two processes sharing one PostgreSQL.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::both_backends;
use crate::helpers::{Backend, SseStream, free_port, fresh_pg_database, skip_postgres};

both_backends!(commands_print_only_their_own_output);

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn start(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(BIN)
            .arg("serve")
            .env_clear()
            .env("FERRY_LISTEN", format!("127.0.0.1:{port}"))
            .env("FERRY_DATA_DIR", data_dir)
            .env("FERRY_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ferry");
        let server = Self { child, port };
        server.wait_ready();
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http_status(self.port, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("ferry did not become ready on port {}", self.port);
    }

    pub fn signal(&self, signal: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("pid");
        rustix::process::kill_process(pid, signal).expect("kill");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn ferry(args: &[&str], env: &[(&str, &str)], stdin: &str) -> std::process::Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ferry");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// Create a user and return an API token, through the CLI as an operator would.
pub fn cli_token(data_dir: &Path, extra: &[(&str, &str)]) -> String {
    let dir = data_dir.to_str().expect("utf-8 path");
    let mut env = vec![("FERRY_DATA_DIR", dir)];
    env.extend_from_slice(extra);
    let out = ferry(&["user", "add", "ops", "--admin"], &env, "password123\n");
    assert!(
        out.status.success(),
        "user add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ferry(&["token", "create", "cli", "--user", "ops"], &env, "");
    assert!(
        out.status.success(),
        "token create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

#[test]
fn invalid_configuration_names_every_problem_and_exits_2() {
    let out = ferry(
        &["config", "check"],
        &[("FERRY_LISTEN", "nope"), ("FERRY_MAX_UPLOAD_BYTES", "-1")],
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains("FERRY_LISTEN") && lines[1].contains("FERRY_MAX_UPLOAD_BYTES"),
        "{stderr}"
    );
    // The server refuses to start the same way.
    let out = ferry(&["serve"], &[("FERRY_LOG_FORMAT", "xml")], "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn config_check_redacts_secrets() {
    let out = ferry(
        &["config", "check"],
        &[(
            "FERRY_DATABASE_URL",
            "postgres://ferry:s3cret@db:5432/ferry",
        )],
        "",
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("FERRY_DATABASE_URL=postgres://ferry:REDACTED@db:5432/ferry"),
        "{stdout}"
    );
    assert!(!stdout.contains("s3cret"));
    assert!(stdout.contains("FERRY_LISTEN=127.0.0.1:8080"));
}

#[test]
fn healthcheck_reports_the_local_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let out = ferry(&["healthcheck"], &[("FERRY_LISTEN", &listen)], "");
    assert_eq!(out.status.code(), Some(1), "nothing is running");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("nothing is listening on {listen}\n")
    );
    let server = Server::start(dir.path(), &[]);
    let listen = format!("0.0.0.0:{}", server.port);
    let out = ferry(&["healthcheck"], &[("FERRY_LISTEN", &listen)], "");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that takes the connection and never answers (hung, or its runtime
/// stuck): the probe gives up in time and says so.
#[test]
fn healthcheck_names_a_server_that_does_not_answer() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let listen = silent.local_addr().expect("addr").to_string();
    let out = ferry(&["healthcheck"], &[("FERRY_LISTEN", &listen)], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("no answer from {listen} within 3 s\n")
    );
}

/// Admin commands print their own output and nothing else: no log lines, and on
/// PostgreSQL none of the server's notices ("relation _sqlx_migrations already
/// exists, skipping" came with every command). Also when FERRY_LOG is set to
/// `info` for the server.
async fn commands_print_only_their_own_output(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let database_url = match backend {
        Backend::Postgres => Some(fresh_pg_database().await),
        Backend::Sqlite => None,
    };
    tokio::task::spawn_blocking(move || {
        for (log, user) in [(None, "ops"), (Some("info"), "dev")] {
            let mut env = vec![("FERRY_DATA_DIR", data.as_str())];
            env.extend(database_url.as_deref().map(|u| ("FERRY_DATABASE_URL", u)));
            env.extend(log.map(|l| ("FERRY_LOG", l)));
            let run = |args: &[&str], stdin: &str| {
                let out = ferry(args, &env, stdin);
                assert!(out.status.success(), "{args:?}: {out:?}");
                (
                    String::from_utf8(out.stdout).expect("utf-8"),
                    String::from_utf8(out.stderr).expect("utf-8"),
                )
            };
            for _ in 0..2 {
                let (stdout, stderr) = run(&["migrate"], "");
                assert!(
                    stdout.starts_with("database schema is at version "),
                    "{stdout}"
                );
                assert_eq!(stderr, "", "ferry migrate with FERRY_LOG={log:?}");
            }
            let (stdout, stderr) = run(&["user", "add", user], "password123\n");
            assert_eq!(stdout, format!("created user {user}\n"));
            assert_eq!(stderr, "", "ferry user add with FERRY_LOG={log:?}");
            let (stdout, stderr) = run(&["user", "list"], "");
            assert!(stdout.contains(&format!("{user}\tmember\t")), "{stdout}");
            assert_eq!(stderr, "", "ferry user list with FERRY_LOG={log:?}");
            let (stdout, stderr) = run(&["token", "create", "cli", "--user", user], "");
            assert_eq!(stdout.lines().count(), 1, "only the token: {stdout}");
            assert_eq!(stderr, "token cli created; it is shown only once\n");
        }
    })
    .await
    .expect("commands");
}

#[test]
fn sigterm_lets_a_slow_upload_finish_then_exits_0() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let token = cli_token(&data, &[]);
    let mut server = Server::start(&data, &[("FERRY_SHUTDOWN_GRACE", "20s")]);

    let body = vec![b'x'; 400_000];
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "PUT /api/items?name=slow.bin HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .expect("head");
    let (first, rest) = body.split_at(100_000);
    stream.write_all(first).expect("first part");
    std::thread::sleep(Duration::from_millis(300));
    server.signal(rustix::process::Signal::TERM);
    // New connections are refused once shutdown has begun.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        http_status(server.port, "/healthz").is_none(),
        "stopped accepting"
    );
    for chunk in rest.chunks(50_000) {
        stream.write_all(chunk).expect("rest of the body");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(0));
}

#[test]
fn sigkill_mid_upload_leaves_no_item_and_no_temp_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let token = cli_token(&data, &[]);
    let server = Server::start(&data, &[]);
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    write!(
        stream,
        "PUT /api/items?name=half.bin HTTP/1.1\r\nHost: ferry\r\nAuthorization: Bearer {token}\r\nContent-Length: 10000000\r\n\r\n"
    )
    .expect("head");
    stream
        .write_all(&vec![b'y'; 2_000_000])
        .expect("half the body");
    // Wait until the partial file is on disk.
    let deadline = Instant::now() + Duration::from_secs(10);
    let partial = || {
        crate::helpers::files_under(&data.join("tmp"))
            .into_iter()
            .any(|p| p.extension().is_some_and(|e| e == "part"))
    };
    while !partial() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(partial(), "the upload was streaming to tmp/");
    server.signal(rustix::process::Signal::KILL);
    drop(server);
    drop(stream);

    let server = Server::start(&data, &[]);
    let leftovers: Vec<_> = crate::helpers::files_under(&data.join("tmp"))
        .into_iter()
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temp files swept at start: {leftovers:?}"
    );
    assert!(crate::helpers::files_under(&data.join("blobs")).is_empty());
    let listing = reqwest::blocking_get(&server.url("/api/items"), &token);
    assert_eq!(
        listing["items"].as_array().map(Vec::len),
        Some(0),
        "no item: {listing}"
    );
}

/// A note posted to one process reaches an SSE stream served by another, through
/// PostgreSQL LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_on_one_postgres_share_live_events() {
    if skip_postgres() {
        return;
    }
    let url = fresh_pg_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let env = [("FERRY_DATABASE_URL", url.as_str())];
    let token = tokio::task::spawn_blocking({
        let a_dir = a_dir.clone();
        let url = url.clone();
        move || cli_token(&a_dir, &[("FERRY_DATABASE_URL", url.as_str())])
    })
    .await
    .expect("token");
    let a = Server::start(&a_dir, &env);
    let b = Server::start(&b_dir, &env);
    let mut on_b = SseStream::open(&b.url("/events"), &token, None).await;
    let res = reqwest::Client::new()
        .post(a.url("/api/items"))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "text": "from replica A" }))
        .send()
        .await
        .expect("post to A");
    assert_eq!(res.status(), 201);
    let event = on_b
        .next(Duration::from_secs(10))
        .await
        .expect("event on B");
    assert_eq!(event.event, "item.created");
    assert!(event.data.contains("from replica A"));
}

mod reqwest {
    pub use ::reqwest::*;

    /// A blocking GET with a bearer token, for the synchronous process tests.
    pub fn blocking_get(url: &str, token: &str) -> serde_json::Value {
        let url = url.to_string();
        let token = token.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                Client::new()
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("get")
                    .json()
                    .await
                    .expect("json")
            })
        })
        .join()
        .expect("thread")
    }
}

/// The command line and the account page judge a token's name by the same rule.
#[test]
fn token_names_follow_the_same_rule_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8 path");
    let env = [("FERRY_DATA_DIR", data)];
    let out = ferry(&["user", "add", "ops"], &env, "password123\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let long = "n".repeat(65);
    for bad in ["   ", long.as_str()] {
        let out = ferry(&["token", "create", bad, "--user", "ops"], &env, "");
        assert_eq!(out.status.code(), Some(1), "token name {bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("token names are 1 to 64 characters"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "no token printed for {bad:?}");
    }
    let out = ferry(&["token", "list", "--user", "ops"], &env, "");
    assert!(out.stdout.is_empty(), "no token was created");
    let out = ferry(&["token", "create", " laptop ", "--user", "ops"], &env, "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed =
        String::from_utf8_lossy(&ferry(&["token", "list", "--user", "ops"], &env, "").stdout)
            .into_owned();
    assert!(listed.contains("\tlaptop\t"), "{listed}");
}
