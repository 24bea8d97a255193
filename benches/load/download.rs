//! `load download`: an item's content (or a file nginx serves alone) fetched over
//! one connection, `--runs` times; the throughput of each run and their median.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::bail;
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::http::{client, raw_get};
use crate::stats::{percentile, sorted};

#[derive(clap::Args)]
pub struct Args {
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
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let path = args
        .path
        .unwrap_or_else(|| ferry::app::views::content_path(&args.id));
    let base = args.url.trim_end_matches('/');
    let token = args.token.as_str();
    let client = client(base, args.insecure_tls)?;
    let mut rates = Vec::new();
    let mut total = 0;
    let plain: Option<SocketAddr> = base.strip_prefix("http://").and_then(|a| a.parse().ok());
    for _ in 0..args.runs.max(1) {
        let t0 = Instant::now();
        let n = match plain {
            // Plain HTTP: a lean reader, as `cat` is, so the client's own cost
            // stays small beside the server's on a machine with two cores.
            Some(addr) => {
                let (path, token) = (path.clone(), token.to_string());
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
    let median = percentile(&sorted(&rates), 50.0);
    Ok(json!({
        "bytes": total,
        "mb_per_s_runs": rates,
        "mb_per_s": median,
    }))
}
