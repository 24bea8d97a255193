//! Load tools for `nox -s bench`. `benches/run.py` drives them against the release
//! binary running as a separate process and turns their JSON answers into the table:
//!
//! * `seed`: schema, a bench user with an API token and a session, and N items;
//! * `start`: process start to `/readyz` 200, N times;
//! * `upload` / `download`: one large transfer, with the server's RSS sampled;
//! * `sse`: N Server-Sent Events subscribers, their server's RSS, and the time from
//!   the POST of a note to its arrival at each subscriber.
//!
//! Every loop is bounded in count and time, and only 127.0.0.1 is contacted. Run with
//! no arguments (as `cargo bench` and `cargo test --all-targets` do) it only prints
//! how to use it.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use ferry::auth::{random_token, token_hash};
use ferry::config::Settings;
use ferry::domain::ItemKind;
use ferry::store::{Item, Store, now_ms};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc};

#[derive(Parser)]
#[command(
    name = "load",
    about = "Ferry's load tools; run them through `nox -s bench`"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Migrate a database and fill it: a bench user, an API token, a session, N items.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 0)]
        items: usize,
    },
    /// Time process start to /readyz 200. The child inherits this environment.
    Start {
        #[arg(long)]
        ferry: PathBuf,
        #[arg(long)]
        data_dir: PathBuf,
        /// A new, empty data directory below --data-dir for every run.
        #[arg(long)]
        fresh: bool,
        #[arg(long, default_value_t = 10)]
        runs: usize,
        /// Unmeasured runs first (page cache).
        #[arg(long, default_value_t = 1)]
        warmup: usize,
        /// Where the children's logs go.
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Send one file and report the throughput and the server's RSS meanwhile.
    Upload {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        bytes: u64,
        #[arg(long, value_enum, default_value_t = UploadMode::Raw)]
        mode: UploadMode,
        /// The server process whose memory is watched.
        #[arg(long)]
        pid: Option<u32>,
        /// Accept the self-signed certificate of the bench's nginx.
        #[arg(long)]
        insecure_tls: bool,
    },
    /// Fetch an item's content and report the throughput.
    Download {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        id: String,
        /// Fetch this path instead of the item's content: a file nginx serves
        /// without asking Ferry, the ceiling for X-Accel downloads.
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        insecure_tls: bool,
        #[arg(long, default_value_t = 1)]
        runs: usize,
    },
    /// Open N event streams (spread over the URLs), read the servers' RSS, then post
    /// notes one at a time and time their arrival at every subscriber.
    Sse {
        /// Base URLs (http://127.0.0.1:PORT), comma-separated; streams go round-robin.
        #[arg(long, value_delimiter = ',')]
        url: Vec<String>,
        /// Where the notes are posted; the first URL if omitted.
        #[arg(long)]
        post_url: Option<String>,
        #[arg(long)]
        token: String,
        #[arg(long)]
        n: usize,
        #[arg(long, default_value_t = 5)]
        notes: usize,
        /// Server processes whose RSS is read while the streams are open.
        #[arg(long, value_delimiter = ',')]
        pid: Vec<u32>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum UploadMode {
    Raw,
    Multipart,
}

fn main() -> ExitCode {
    // `cargo bench` appends --bench; `cargo test --all-targets` passes nothing.
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    if args.len() < 2 {
        println!("Ferry's load tools. Run the benchmarks with `nox -s bench` (or `-- --quick`).");
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse_from(args);
    raise_fd_limit();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Cmd) -> anyhow::Result<Value> {
    match cmd {
        Cmd::Seed {
            database_url,
            data_dir,
            items,
        } => seed(&database_url, &data_dir, items).await,
        Cmd::Start {
            ferry,
            data_dir,
            fresh,
            runs,
            warmup,
            log,
        } => tokio::task::spawn_blocking(move || {
            start(&ferry, &data_dir, fresh, runs, warmup, log.as_deref())
        })
        .await
        .context("start task")?,
        Cmd::Upload {
            url,
            token,
            bytes,
            mode,
            pid,
            insecure_tls,
        } => upload(&url, &token, bytes, mode, pid, insecure_tls).await,
        Cmd::Download {
            url,
            token,
            id,
            path,
            insecure_tls,
            runs,
        } => {
            let path = path.unwrap_or_else(|| format!("/items/{id}/content"));
            download(&url, &token, &path, insecure_tls, runs).await
        }
        Cmd::Sse {
            url,
            post_url,
            token,
            n,
            notes,
            pid,
        } => {
            let post_url = post_url.or_else(|| url.first().cloned());
            let Some(post_url) = post_url else {
                bail!("--url is required");
            };
            sse(&url, &post_url, &token, n, notes, &pid).await
        }
    }
}

/// 10,000 streams need more descriptors than the usual soft limit of 1024.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        limit.current = Some(maximum);
        let _ = setrlimit(Resource::Nofile, limit);
    }
}

// ---- /proc --------------------------------------------------------------------------

/// A `kB` field of /proc/PID/status (VmRSS, VmHWM).
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Reset VmHWM to the current RSS, so the next read is the peak from now on.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

// ---- seed ---------------------------------------------------------------------------

async fn seed(database_url: &str, data_dir: &Path, items: usize) -> anyhow::Result<Value> {
    let settings = Settings::from_env([
        ("FERRY_DATA_DIR".to_string(), data_dir.display().to_string()),
        ("FERRY_DATABASE_URL".to_string(), database_url.to_string()),
    ])
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(data_dir)?;
    let store = Store::connect(&settings).await?;
    store.migrate().await?;
    let user = match store.create_user("bench", "!", true).await? {
        Some(user) => user,
        None => store
            .user_by_name("bench")
            .await?
            .context("bench user vanished")?,
    };
    let token = random_token();
    store
        .create_api_token(
            &user.id,
            &format!("bench-{}", &token[..8]),
            &token_hash(&token),
        )
        .await?;
    let session = random_token();
    store
        .create_session(
            &token_hash(&session),
            &user.id,
            &random_token(),
            now_ms() + 30 * 24 * 3600 * 1000,
        )
        .await?;

    let started = Instant::now();
    let rows = bench_items(items, &user.id);
    macro_rules! bulk_insert {
        ($pool:expr, $db:ty) => {{
            let mut tx = $pool.begin().await?;
            for chunk in rows.chunks(400) {
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "insert into items (id, author_id, kind, name, content_type, size, sha256, note, created_at, expires_at) ",
                );
                q.push_values(chunk, |mut b, (item, _)| {
                    b.push_bind(&item.id)
                        .push_bind(&item.author_id)
                        .push_bind(item.kind.as_str())
                        .push_bind(&item.name)
                        .push_bind(&item.content_type)
                        .push_bind(item.size)
                        .push_bind(&item.sha256)
                        .push_bind(&item.note)
                        .push_bind(item.created_at)
                        .push_bind(item.expires_at);
                });
                q.build().execute(&mut *tx).await?;
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "insert into events (kind, item_id, payload, created_at) ",
                );
                q.push_values(chunk, |mut b, (item, payload)| {
                    b.push_bind("item.created")
                        .push_bind(&item.id)
                        .push_bind(payload)
                        .push_bind(item.created_at);
                });
                q.build().execute(&mut *tx).await?;
            }
            tx.commit().await?;
        }};
    }
    match &store {
        Store::Sqlite { pool, .. } => bulk_insert!(pool, sqlx::Sqlite),
        Store::Postgres { pool, .. } => bulk_insert!(pool, sqlx::Postgres),
    }
    let count = store.count_items().await?;
    store.close().await;
    Ok(json!({
        "token": token,
        "session": session,
        "items": count,
        "seed_secs": started.elapsed().as_secs_f64(),
    }))
}

/// Items as a household makes them: mostly short notes, every tenth a file, one a
/// second up to now (so none has expired and no event is old enough to be pruned).
fn bench_items(n: usize, author: &str) -> Vec<(Item, String)> {
    const WORDS: &[&str] = &[
        "ferry", "boarding", "pass", "photos", "from", "the", "trip", "shopping", "list", "milk",
        "bread", "meeting", "notes", "link", "recipe", "invoice", "draft",
    ];
    let now = now_ms();
    (0..n)
        .map(|i| {
            let created_at = now - ((n - i) as i64) * 1000;
            let secs = (created_at / 1000) as u64;
            let nanos = ((created_at % 1000) * 1_000_000) as u32;
            let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, secs, nanos));
            let file = i % 10 == 0;
            let text: String = (0..8 + i % 24)
                .map(|w| WORDS[(i * 7 + w * 3) % WORDS.len()])
                .collect::<Vec<_>>()
                .join(" ");
            let item = Item {
                id: id.to_string(),
                author_id: Some(author.to_string()),
                author_name: Some("bench".into()),
                kind: if file { ItemKind::File } else { ItemKind::Note },
                name: file.then(|| format!("scan-{i}.pdf")),
                content_type: if file {
                    "application/pdf"
                } else {
                    "text/plain; charset=utf-8"
                }
                .into(),
                size: if file {
                    250_000 + i as i64
                } else {
                    text.len() as i64
                },
                sha256: format!("{:064x}", i),
                note: (!file).then_some(text),
                created_at,
                expires_at: None,
            };
            let payload =
                serde_json::to_string(&ferry::app::views::ItemJson::new(&item)).unwrap_or_default();
            (item, payload)
        })
        .collect()
}

// ---- start ----------------------------------------------------------------------------

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One GET over a fresh connection; the status code, or None if nobody listens.
fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_nodelay(true).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn stop(mut child: Child) {
    let pid = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn start(
    ferry: &Path,
    data_dir: &Path,
    fresh: bool,
    runs: usize,
    warmup: usize,
    log: Option<&Path>,
) -> anyhow::Result<Value> {
    let mut ms = Vec::new();
    let mut rss = Vec::new();
    for run in 0..warmup + runs {
        let dir = if fresh {
            data_dir.join(format!("start-{run}"))
        } else {
            data_dir.to_path_buf()
        };
        let port = free_port()?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let stderr = match log {
            Some(path) => Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
            None => Stdio::null(),
        };
        let t0 = Instant::now();
        let mut child = Command::new(ferry)
            .arg("serve")
            .env("FERRY_DATA_DIR", &dir)
            .env("FERRY_LISTEN", addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("cannot run {}", ferry.display()))?;
        let ready = loop {
            if probe(addr, "/readyz") == Some(200) {
                break t0.elapsed();
            }
            if let Some(status) = child.try_wait()? {
                bail!("ferry exited with {status} before it was ready");
            }
            if t0.elapsed() > Duration::from_secs(30) {
                stop(child);
                bail!("ferry was not ready within 30 s");
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        let kb = proc_kb(child.id(), "VmRSS");
        stop(child);
        if fresh {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if run >= warmup {
            ms.push(ready.as_secs_f64() * 1000.0);
            rss.push(kb);
        }
    }
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "ms": ms,
        "median_ms": percentile(&sorted, 50.0),
        "min_ms": sorted.first(),
        "max_ms": sorted.last(),
        "rss_at_ready_kb": rss,
    }))
}

// ---- transfers --------------------------------------------------------------------------

/// A client for `base`, which must be on the loopback interface.
fn client(base: &str, insecure_tls: bool) -> anyhow::Result<reqwest::Client> {
    let url = reqwest::Url::parse(base).with_context(|| format!("bad URL {base}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if !loopback {
        bail!("the load tools only talk to loopback addresses, not {base}");
    }
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .danger_accept_invalid_certs(insecure_tls)
        .build()?)
}

/// `total` bytes in 1 MiB chunks of one incompressible buffer (shared, not copied).
fn body_stream(
    total: u64,
) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    const CHUNK: u64 = 1 << 20;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let buf: Vec<u8> = (0..CHUNK)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let buf = Bytes::from(buf);
    let chunks = total.div_ceil(CHUNK);
    futures_util::stream::iter((0..chunks).map(move |i| {
        let len = (total - i * CHUNK).min(CHUNK) as usize;
        Ok(buf.slice(..len))
    }))
}

/// Samples a process's RSS every 10 ms until dropped; the maximum seen.
struct RssSampler {
    max_kb: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let max_kb = Arc::new(AtomicUsize::new(0));
        let max = max_kb.clone();
        let task = tokio::spawn(async move {
            // Bounded: at most an hour of samples.
            for _ in 0..360_000 {
                if let Some(kb) = proc_kb(pid, "VmRSS") {
                    max.fetch_max(kb as usize, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        Self { max_kb, task }
    }

    fn finish(self) -> u64 {
        self.task.abort();
        self.max_kb.load(Ordering::Relaxed) as u64
    }
}

async fn upload(
    url: &str,
    token: &str,
    bytes: u64,
    mode: UploadMode,
    pid: Option<u32>,
    insecure_tls: bool,
) -> anyhow::Result<Value> {
    let base = url.trim_end_matches('/');
    let client = client(base, insecure_tls)?;
    let body = reqwest::Body::wrap_stream(body_stream(bytes));
    let request = match mode {
        UploadMode::Raw => client
            .put(format!("{base}/api/items?name=bench.bin"))
            .header(reqwest::header::CONTENT_LENGTH, bytes)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body),
        UploadMode::Multipart => {
            let part = reqwest::multipart::Part::stream_with_length(body, bytes)
                .file_name("bench.bin")
                .mime_str("application/octet-stream")?;
            client
                .post(format!("{base}/api/items"))
                .multipart(reqwest::multipart::Form::new().part("file", part))
        }
    };
    let request = request.bearer_auth(token);
    let peak_reset = pid.is_some_and(reset_peak);
    let before = pid.and_then(|p| proc_kb(p, "VmRSS"));
    let sampler = pid.map(RssSampler::start);
    let t0 = Instant::now();
    let response = request.send().await.context("upload request")?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let secs = t0.elapsed().as_secs_f64();
    let sampled = sampler.map(RssSampler::finish);
    if status != reqwest::StatusCode::CREATED {
        bail!("upload answered {status}: {answer}");
    }
    let hwm = pid.filter(|_| peak_reset).and_then(|p| proc_kb(p, "VmHWM"));
    let peak = hwm.max(sampled);
    let item = answer.get("id").cloned().unwrap_or_else(|| {
        answer
            .pointer("/items/0/id")
            .cloned()
            .unwrap_or(Value::Null)
    });
    Ok(json!({
        "bytes": bytes,
        "secs": secs,
        "mb_per_s": bytes as f64 / secs / 1e6,
        "id": item,
        "rss_before_kb": before,
        "rss_peak_kb": peak,
        "rss_growth_kb": before.zip(peak).map(|(b, p)| p.saturating_sub(b)),
        "rss_after_kb": pid.and_then(|p| proc_kb(p, "VmRSS")),
    }))
}

async fn download(
    url: &str,
    token: &str,
    path: &str,
    insecure_tls: bool,
    runs: usize,
) -> anyhow::Result<Value> {
    let base = url.trim_end_matches('/');
    let client = client(base, insecure_tls)?;
    let mut rates = Vec::new();
    let mut total = 0;
    let plain: Option<SocketAddr> = base.strip_prefix("http://").and_then(|a| a.parse().ok());
    for _ in 0..runs.max(1) {
        let t0 = Instant::now();
        let n = match plain {
            // Plain HTTP: a lean reader, as `cat` is, so the client's own cost
            // stays small beside the server's on a machine with two cores.
            Some(addr) => {
                let (path, token) = (path.to_string(), token.to_string());
                tokio::task::spawn_blocking(move || raw_get(addr, &path, &token)).await??
            }
            None => {
                let response = client
                    .get(format!("{base}{path}"))
                    .bearer_auth(token)
                    .send()
                    .await?;
                if !response.status().is_success() {
                    bail!("download answered {}", response.status());
                }
                let mut body = response.bytes_stream();
                let mut n = 0u64;
                while let Some(chunk) = body.next().await {
                    n += chunk?.len() as u64;
                }
                n
            }
        };
        let secs = t0.elapsed().as_secs_f64();
        if n == 0 {
            bail!("download returned no bytes");
        }
        total = n;
        rates.push(n as f64 / secs / 1e6);
    }
    let mut sorted = rates.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(json!({
        "bytes": total,
        "mb_per_s_runs": rates,
        "mb_per_s": percentile(&sorted, 50.0),
    }))
}

/// GET over HTTP/1.1 into a 1 MiB buffer; the body is counted and dropped.
fn raw_get(addr: SocketAddr, path: &str, token: &str) -> anyhow::Result<u64> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    let head_end = loop {
        let n = s.read(&mut buf[filled..])?;
        if n == 0 {
            bail!("the connection closed in the headers");
        }
        filled += n;
        if let Some(p) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if filled == buf.len() {
            bail!("headers larger than 1 MiB");
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!("download answered {}", head.lines().next().unwrap_or(""));
    }
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .context("download without Content-Length")?;
    let mut got = (filled - head_end) as u64;
    while got < len {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("the connection closed after {got} of {len} bytes");
        }
        got += n as u64;
    }
    Ok(got)
}

// ---- Server-Sent Events -----------------------------------------------------------------

/// An arrival: the item id from an `item.created` event's data, and when it was read.
type Arrival = (String, Instant);

async fn sse(
    urls: &[String],
    post_url: &str,
    token: &str,
    n: usize,
    notes: usize,
    pids: &[u32],
) -> anyhow::Result<Value> {
    let addrs: Vec<SocketAddr> = urls
        .iter()
        .map(|u| {
            let host = u
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            host.parse::<SocketAddr>()
                .with_context(|| format!("expected http://127.0.0.1:PORT, got {u}"))
        })
        .collect::<anyhow::Result<_>>()?;
    if addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!("the load client only talks to loopback addresses");
    }
    let token: Arc<str> = Arc::from(token);
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    // Connect in waves, so the listen backlog never overflows.
    let gate = Arc::new(Semaphore::new(128));
    let (tx, mut rx) = mpsc::unbounded_channel::<Arrival>();
    let mut tasks = tokio::task::JoinSet::new();
    let t_open = Instant::now();
    for i in 0..n {
        let addr = addrs[i % addrs.len()];
        let (token, opened, failed, gate, tx) = (
            token.clone(),
            opened.clone(),
            failed.clone(),
            gate.clone(),
            tx.clone(),
        );
        tasks.spawn(async move {
            if let Err(e) = subscriber(addr, &token, &opened, &gate, tx).await
                && failed.fetch_add(1, Ordering::Relaxed) == 0
            {
                eprintln!("load: an event stream failed: {e:#}");
            }
        });
    }
    drop(tx);
    let open_deadline = Instant::now() + Duration::from_secs(300);
    while opened.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < n {
        if Instant::now() > open_deadline {
            bail!(
                "only {} of {n} streams opened within 300 s",
                opened.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    let open = opened.load(Ordering::Relaxed);
    if open < n {
        bail!("{} of {n} event streams failed to open", n - open);
    }
    // Let allocations settle before reading memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss: serde_json::Map<String, Value> = pids
        .iter()
        .map(|p| (p.to_string(), json!(proc_kb(*p, "VmRSS"))))
        .collect();

    let base = post_url.trim_end_matches('/');
    let client = client(base, false)?;
    let mut latencies = Vec::with_capacity(n * notes);
    let mut missing = 0usize;
    let mut early: Vec<Arrival> = Vec::new();
    for k in 0..notes {
        let t0 = Instant::now();
        let response = client
            .post(format!("{base}/api/items"))
            .bearer_auth(&*token)
            .json(&json!({ "text": format!("fan-out note {k} to {n} subscribers") }))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            bail!("posting a note answered {}", response.status());
        }
        let item: Value = response.json().await?;
        let id = item["id"].as_str().context("note without id")?.to_string();
        let mut got = 0usize;
        for (item_id, at) in early.drain(..) {
            if item_id == id {
                latencies.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                got += 1;
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while got < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some((item_id, at))) if item_id == id => {
                    latencies.push(at.duration_since(t0).as_secs_f64() * 1000.0);
                    got += 1;
                }
                Ok(Some(other)) => early.push(other),
                Ok(None) | Err(_) => break,
            }
        }
        missing += n - got;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    latencies.sort_by(f64::total_cmp);
    Ok(json!({
        "n": n,
        "notes": notes,
        "open_secs": open_secs,
        "rss_kb": rss,
        "samples": latencies.len(),
        "missing": missing,
        "p50_ms": percentile(&latencies, 50.0),
        "p99_ms": percentile(&latencies, 99.0),
        "max_ms": latencies.last(),
    }))
}

/// One subscriber: GET /events over HTTP/1.1, then every `data:` line of an
/// `item.created` event is reported with the instant it was read.
async fn subscriber(
    addr: SocketAddr,
    token: &str,
    opened: &AtomicUsize,
    gate: &Semaphore,
    tx: mpsc::UnboundedSender<Arrival>,
) -> anyhow::Result<()> {
    let permit = gate.acquire().await?;
    let stream = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(4096, stream);
    reader
        .get_mut()
        .write_all(
            format!(
                "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .await?;
    let mut line = String::new();
    let head = async {
        reader.read_line(&mut line).await?;
        if !line.starts_with("HTTP/1.1 200") {
            bail!("GET /events answered {}", line.trim());
        }
        let mut chunked = false;
        for _ in 0..100 {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            if line == "\r\n" {
                return Ok(chunked);
            }
            let lower = line.to_ascii_lowercase();
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        bail!("too many header lines")
    };
    let chunked = tokio::time::timeout(Duration::from_secs(120), head)
        .await
        .context("no answer to GET /events")??;
    opened.fetch_add(1, Ordering::Relaxed);
    drop(permit);

    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let at;
        if chunked {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .context("bad chunk size")?;
            if size == 0 {
                return Ok(());
            }
            let start = pending.len();
            pending.resize(start + size, 0);
            reader.read_exact(&mut pending[start..]).await?;
            at = Instant::now();
            let mut crlf = [0u8; 2];
            reader.read_exact(&mut crlf).await?;
        } else {
            let got = reader.read(&mut buf).await?;
            if got == 0 {
                return Ok(());
            }
            at = Instant::now();
            pending.extend_from_slice(&buf[..got]);
        }
        // Complete lines only; a partial line waits for the next read.
        let Some(last_newline) = pending.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        for l in pending[..last_newline].split(|b| *b == b'\n') {
            if let Some(id) = l.strip_prefix(b"data:").and_then(item_id) {
                let _ = tx.send((id, at));
            }
        }
        pending.drain(..=last_newline);
    }
}

/// The `"id":"…"` of an event payload.
fn item_id(data: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"id\":\"";
    let at = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = data.get(at..)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}
