//! `load download`: an item's content (or a file nginx serves alone, or an object
//! from a presigned URL) fetched over one connection, `--runs` times; the throughput
//! of each run and their median, and the server's peak RSS meanwhile.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::http::{client, raw_get};
use crate::procfs::{RssSampler, proc_kb, reset_peak};
use crate::stats::{percentile, sorted};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, required_unless_present = "get_url")]
    url: Option<String>,
    #[arg(long, required_unless_present = "get_url")]
    token: Option<String>,
    #[arg(long, required_unless_present = "get_url")]
    id: Option<String>,
    /// GET this URL (a presigned object-store URL) instead of an item: the same
    /// reader, no token.
    #[arg(long, conflicts_with_all = ["url", "token", "id", "path"])]
    get_url: Option<String>,
    /// The server process whose memory is watched.
    #[arg(long)]
    pid: Option<u32>,
    /// Fetch this path instead of the item's content: a file nginx serves
    /// without asking Ferry, the ceiling for X-Accel downloads.
    #[arg(long)]
    path: Option<String>,
    #[arg(long)]
    insecure_tls: bool,
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let (base, path, token) = match (&args.get_url, &args.url, &args.id) {
        (Some(get_url), _, _) => {
            let url = reqwest::Url::parse(get_url).context("bad --get-url")?;
            let origin = url.origin().ascii_serialization();
            let path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            (origin, path, None)
        }
        (None, Some(url), Some(id)) => {
            let path = args
                .path
                .clone()
                .unwrap_or_else(|| ferry::app::views::content_path(id));
            (
                url.trim_end_matches('/').to_string(),
                path,
                args.token.clone(),
            )
        }
        _ => bail!("give --url, --token and --id, or --get-url"),
    };
    let base = base.as_str();
    let client = client(base, args.insecure_tls)?;
    let peak_reset = args.pid.is_some_and(reset_peak);
    let before = args.pid.and_then(|p| proc_kb(p, "VmRSS"));
    let sampler = args.pid.map(RssSampler::start);
    let mut rates = Vec::new();
    let mut total = 0;
    let plain: Option<SocketAddr> = base.strip_prefix("http://").and_then(|a| a.parse().ok());
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        let n = match plain {
            // Plain HTTP: a lean reader, as `cat` is, so the client's own cost
            // stays small beside the server's on a machine with two cores.
            Some(addr) => {
                let (path, token) = (path.clone(), token.clone());
                tokio::task::spawn_blocking(move || raw_get(addr, &path, token.as_deref()))
                    .await??
            }
            None => {
                let mut request = client.get(format!("{base}{path}"));
                if let Some(token) = &token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await?;
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
    let sampled = sampler.map(RssSampler::finish);
    let hwm = args
        .pid
        .filter(|_| peak_reset)
        .and_then(|p| proc_kb(p, "VmHWM"));
    let peak = hwm.max(sampled);
    let median = percentile(&sorted(&rates), 50.0);
    Ok(json!({
        "bytes": total,
        "mb_per_s_runs": rates,
        "mb_per_s": median,
        "rss_before_kb": before,
        "rss_peak_kb": peak,
        "rss_growth_kb": before.zip(peak).map(|(b, p)| p.saturating_sub(b)),
    }))
}
