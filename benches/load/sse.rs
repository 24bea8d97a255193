//! `load sse`: N Server-Sent Events subscribers, the servers' RSS once all are open,
//! and the time from the POST of a note to its arrival at each subscriber.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{Semaphore, mpsc};

use crate::http::client;
use crate::procfs::proc_kb;
use crate::stats::percentile;

#[derive(clap::Args)]
pub struct Args {
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
}

/// An arrival: the item id from an `item.created` event's data, and when it was read.
type Arrival = (String, Instant);

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let Some(post_url) = args.post_url.as_ref().or(args.url.first()) else {
        bail!("--url is required");
    };
    let (n, notes) = (args.n, args.notes);
    let addrs: Vec<SocketAddr> = args
        .url
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
    let token: Arc<str> = Arc::from(args.token.as_str());
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
    let rss: serde_json::Map<String, Value> = args
        .pid
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

/// The `"id":"…"` of an event payload. Scanned rather than parsed as JSON, so that
/// 10,000 subscribers reading the same event cost the client little.
fn item_id(data: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"id\":\"";
    let at = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = data.get(at..)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}
