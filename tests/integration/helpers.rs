//! Long because it is the one harness every test shares: the PostgreSQL cluster,
//! the app, clients and typed request helpers.
//!
//! Test harness: the real router on 127.0.0.1:0, against SQLite in a temp dir or a
//! real PostgreSQL (a throwaway cluster started from the binaries on PATH, or
//! FERRY_TEST_DATABASE_URL), one database per test.

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use ferry::app::App;
use ferry::auth::{hash_password, random_token, token_hash};
use ferry::config::{Secret, Settings};
use ferry::metrics::Metrics;
use ferry::startup::Application;
use ferry::store::Store;
use serde_json::Value;
use sqlx::Connection;
use std::sync::Arc;
use tempfile::TempDir;
use tokio::sync::oneshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where a test app keeps its files: the data directory, or a bucket of the
/// shared test Garage (`garage::garage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobStore {
    Local,
    Garage,
}

/// Generate one test per backend from `async fn NAME(backend: Backend)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    if $crate::helpers::skip_postgres() {
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The Nix sandbox has no PostgreSQL or browser: FERRY_TEST_SQLITE_ONLY=1 skips
/// those tests there, loudly. Everywhere else they run, and a missing PostgreSQL
/// fails.
pub fn skip_postgres() -> bool {
    let skip = std::env::var("FERRY_TEST_SQLITE_ONLY").is_ok_and(|v| v == "1");
    if skip {
        eprintln!("FERRY_TEST_SQLITE_ONLY=1: skipping a PostgreSQL test");
    }
    skip
}

// ---- PostgreSQL ----------------------------------------------------------------

struct PgCluster {
    admin_url: String,
    _dir: TempDir,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();

pub fn pg_bin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
        .unwrap_or_default();
    on_path.unwrap_or_else(|| {
        let fallback = PathBuf::from("/usr/lib/postgresql/15/bin").join(name);
        assert!(
            fallback.is_file(),
            "PostgreSQL's {name} is not on PATH: install postgresql-15 (apt-get install postgresql-15) \
             or set FERRY_TEST_DATABASE_URL"
        );
        fallback
    })
}

/// PostgreSQL refuses to run as root; as root the cluster runs as `postgres`.
pub fn pg_user() -> Option<(u32, u32)> {
    if !rustix::process::getuid().is_root() {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    };
    Some((id("-u").unwrap_or(65534), id("-g").unwrap_or(65534)))
}

/// A temp directory holding a new cluster's data directory (`data/`), owned by
/// the user PostgreSQL runs as.
pub fn init_cluster() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ferry-pg-")
        .tempdir()
        .expect("temp dir for PostgreSQL");
    let data = dir.path().join("data");
    let user = pg_user();
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown cluster dir");
    }
    let mut initdb = Command::new(pg_bin("initdb"));
    initdb
        .args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
            "-D",
        ])
        .arg(&data);
    if let Some((uid, gid)) = user {
        initdb.uid(uid).gid(gid);
    }
    let out = initdb.output().expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

/// The server of a cluster made by `init_cluster`, on 127.0.0.1:`port`, tuned for
/// tests, stopped at once when the thread that spawns it ends.
pub fn postgres_command(cluster: &Path, port: u16) -> Command {
    let mut cmd = Command::new(pg_bin("postgres"));
    cmd.arg("-D")
        .arg(cluster.join("data"))
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
        .args([
            "-c",
            "max_connections=300",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
        ])
        .arg("-k")
        .arg(cluster)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((uid, gid)) = pg_user() {
        cmd.uid(uid).gid(gid);
    }
    // Immediate shutdown when the spawning thread (or the test process) goes away.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::QUIT))
                .map_err(std::io::Error::from)
        });
    }
    cmd
}

/// Wait until a server accepts connections at `url`.
pub async fn wait_for_postgres(url: &str) {
    for _ in 0..200 {
        if sqlx::PgConnection::connect(url).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("PostgreSQL did not start at {url}");
}

fn start_cluster() -> PgCluster {
    let dir = init_cluster();
    let port = free_port();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut cmd = postgres_command(dir.path(), port);
    // A dedicated thread spawns the server and lives as long as the test process:
    // the parent-death signal fires when the spawning thread ends.
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let ok = child.is_ok();
        let _ = tx.send(child.map(|_| ()).map_err(|e| e.to_string()));
        if ok {
            loop {
                std::thread::park();
            }
        }
    });
    rx.recv().expect("postgres thread").expect("start postgres");
    let admin_url = format!("postgres://postgres@127.0.0.1:{port}/postgres");
    // Wait until it accepts connections.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(wait_for_postgres(&admin_url));
    PgCluster {
        admin_url,
        _dir: dir,
    }
}

/// A fresh, empty database; returns its URL.
pub async fn fresh_pg_database() -> String {
    let admin_url = match std::env::var("FERRY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => tokio::task::spawn_blocking(|| CLUSTER.get_or_init(start_cluster).admin_url.clone())
            .await
            .expect("cluster"),
    };
    let name = format!("ferry_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to PostgreSQL");
    sqlx::query(&format!("create database {name}"))
        .execute(&mut conn)
        .await
        .expect("create database");
    let (base, _) = admin_url.rsplit_once('/').expect("database URL has a path");
    format!("{base}/{name}")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

// ---- the application ---------------------------------------------------------

/// What tests reach into besides HTTP: the use cases and, to arrange and check,
/// the database itself.
pub struct TestState {
    pub app: App,
    pub store: Store,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub state: TestState,
    pub data_dir: PathBuf,
    pub backend: Backend,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: TempDir,
}

pub async fn settings_for(backend: Backend, dir: &Path) -> Settings {
    let mut settings = Settings::for_data_dir(dir.join("data"));
    settings.listen = "127.0.0.1:0".parse().expect("addr");
    settings.shutdown_grace = Duration::from_secs(5);
    if backend == Backend::Postgres {
        settings.database_url = Secret::new(fresh_pg_database().await);
        settings.db_max_connections = 5;
    }
    settings
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings = settings_for(backend, dir.path()).await;
        configure(&mut settings);
        let data_dir = settings.data_dir.clone();
        let database_url = settings.database_url.expose().to_string();
        let app = Application::build(settings).await.expect("build app");
        let addr = app.local_addr().expect("addr");
        let core = app.app().clone();
        let state = TestState {
            store: core.store().clone(),
            settings: Arc::new(core.settings().clone()),
            metrics: core.metrics().clone(),
            app: core,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            base: format!("http://{addr}"),
            state,
            data_dir,
            backend,
            database_url,
            stop: Some(stop),
            task: Some(task),
            _dir: dir,
        }
    }

    /// An app whose files are in `store`: for Garage, a bucket of its own.
    pub async fn spawn_on(
        backend: Backend,
        store: BlobStore,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        Self::spawn_with(backend, |settings| {
            use_store(settings, store);
            configure(settings);
        })
        .await
    }

    /// The ids of the blobs in the app's file store, whichever it is.
    pub async fn stored_blob_ids(&self) -> std::collections::BTreeSet<String> {
        stored_blob_ids(&self.state.settings).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client with its own cookie jar that does not follow redirects.
    pub fn browser(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub async fn add_user(&self, name: &str, password: &str, admin: bool) -> String {
        let hash = hash_password(password.to_string()).await.expect("hash");
        self.state
            .store
            .create_user(name, &hash, admin)
            .await
            .expect("insert user")
            .expect("new user")
            .id
    }

    /// A user with an API token; returns the token.
    pub async fn user_with_token(&self, name: &str, admin: bool) -> String {
        let id = self.add_user(name, "password123", admin).await;
        let token = random_token();
        self.state
            .store
            .create_api_token(&id, "test", &token_hash(&token))
            .await
            .expect("token");
        token
    }

    /// A signed-in browser-like client and its CSRF token.
    pub async fn login(&self, name: &str, password: &str) -> (reqwest::Client, String) {
        let client = self.browser();
        let res = client
            .post(self.url("/login"))
            .form(&[("name", name), ("password", password)])
            .send()
            .await
            .expect("login request");
        assert_eq!(res.status(), 303, "login as {name} failed");
        let page = client
            .get(self.url("/"))
            .send()
            .await
            .expect("feed")
            .text()
            .await
            .expect("body");
        let csrf = csrf_from(&page);
        (client, csrf)
    }

    pub async fn post_note(&self, token: &str, text: &str) -> Value {
        let res = reqwest::Client::new()
            .post(self.url("/api/items"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "text": text }))
            .send()
            .await
            .expect("post note");
        assert_eq!(res.status(), 201, "posting a note failed");
        res.json().await.expect("json")
    }

    pub async fn upload(&self, token: &str, name: &str, body: Vec<u8>) -> reqwest::Response {
        reqwest::Client::new()
            .put(self.url("/api/items"))
            .query(&[("name", name)])
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("upload")
    }

    /// Files in the data directory's tmp/ (in-progress uploads), lock files aside.
    pub fn temp_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir.join("tmp"))
            .into_iter()
            .filter(|p| p.extension().is_none_or(|e| e != "lock"))
            .collect()
    }

    pub fn blob_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir.join("blobs"))
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Point `settings` at `store` (a new Garage bucket for `Garage`).
pub fn use_store(settings: &mut Settings, store: BlobStore) {
    if store == BlobStore::Garage {
        let garage = crate::garage::garage().expect("a Garage test runs only with Garage");
        let bucket = garage.bucket();
        garage.configure(settings, &bucket);
    }
}

/// The ids of the blobs in the file store `settings` name.
pub async fn stored_blob_ids(settings: &Settings) -> std::collections::BTreeSet<String> {
    let blobs = ferry::blobs::Blobs::open(settings)
        .await
        .expect("open the file store");
    blobs
        .list()
        .await
        .expect("list the file store")
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

pub fn csrf_from(page: &str) -> String {
    let marker = "name=\"csrf-token\" content=\"";
    let start = page
        .find(marker)
        .map(|i| i + marker.len())
        .expect("page has a csrf meta tag");
    page[start..]
        .split('"')
        .next()
        .unwrap_or_default()
        .to_string()
}

// ---- Server-Sent Events ---------------------------------------------------------

#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

/// A minimal SSE reader over a streaming response.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
}

impl SseStream {
    pub async fn open(url: &str, token: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new()
            .get(url)
            .bearer_auth(token)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let response = req.send().await.expect("open /events");
        assert_eq!(response.status(), 200);
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .starts_with("text/event-stream")
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next named event (comments and keep-alives skipped), or None on timeout.
    pub async fn next(&mut self, timeout: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    id: None,
                    event: "message".into(),
                    data: String::new(),
                };
                let mut has_field = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = Some(v.trim().to_string());
                        has_field = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_string();
                        has_field = true;
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data.push_str(v.trim_start());
                        has_field = true;
                    }
                }
                if has_field && !event.data.is_empty() {
                    return Some(event);
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .ok()?
                .ok()??;
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Run one statement with a single text parameter on either backend (test set-up
/// that the application has no reason to offer, such as ageing rows). The store's
/// read cache is cleared, as if `FRESH_FOR` had passed since the change.
pub async fn execute(store: &ferry::store::Store, sql: &str, arg: &str) -> u64 {
    let rows = execute_elsewhere(store, sql, arg).await;
    store.cache().forget_all();
    rows
}

/// Like `execute`, but the store is not told: as if another process had made the
/// change, which the running server sees only once its cache has let go.
pub async fn execute_elsewhere(store: &ferry::store::Store, sql: &str, arg: &str) -> u64 {
    use ferry::store::Store;
    match store {
        Store::Sqlite { pool, .. } => sqlx::query(sql)
            .bind(arg)
            .execute(pool)
            .await
            .expect("sql")
            .rows_affected(),
        Store::Postgres { pool, .. } => sqlx::query(sql)
            .bind(arg)
            .execute(pool)
            .await
            .expect("sql")
            .rows_affected(),
    }
}
