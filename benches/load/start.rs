//! `load start`: how long `ferry serve` takes from process start to `/readyz` 200,
//! and its RSS at that moment.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::probe;
use crate::procfs::proc_kb;
use crate::stats::{percentile, sorted};

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    // Blocking: the child is polled from this thread, not from the runtime's.
    tokio::task::spawn_blocking(move || start(&args))
        .await
        .context("start task")?
}

fn start(args: &Args) -> anyhow::Result<Value> {
    let mut ms = Vec::new();
    let mut rss = Vec::new();
    for run in 0..args.warmup + args.runs {
        let dir = if args.fresh {
            args.data_dir.join(format!("start-{run}"))
        } else {
            args.data_dir.clone()
        };
        let (ready, kb) = start_once(&args.ferry, &dir, args.log.as_deref())?;
        if args.fresh {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if run >= args.warmup {
            ms.push(ready.as_secs_f64() * 1000.0);
            rss.push(kb);
        }
    }
    let sorted = sorted(&ms);
    Ok(json!({
        "ms": ms,
        "median_ms": percentile(&sorted, 50.0),
        "min_ms": sorted.first(),
        "max_ms": sorted.last(),
        "rss_at_ready_kb": rss,
    }))
}

/// Start `ferry serve` on a free port with `dir` as its data directory, wait for
/// `/readyz` 200 and stop it again: the time to ready and the RSS then.
fn start_once(
    ferry: &Path,
    dir: &Path,
    log: Option<&Path>,
) -> anyhow::Result<(Duration, Option<u64>)> {
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
        .env("FERRY_DATA_DIR", dir)
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
    Ok((ready, kb))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// SIGTERM, and SIGKILL if the child is still there after 15 s.
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
