//! `load zip`: an item of several files posted in one form, then, `--runs` times,
//! its files fetched one after another and its "Download all" ZIP fetched, each
//! over one plain-HTTP connection; the throughputs, their ratio, the server's CPU
//! time per GiB for each (steadier than throughput on a busy machine), and its
//! RSS growth during the ZIP download.

use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::http::{client, raw_get};
use crate::procfs::{RssSampler, cpu_ticks, proc_kb, reset_peak};
use crate::stats::{percentile, sorted};
use crate::upload::body_stream;

#[derive(clap::Args)]
pub struct Args {
    /// Plain HTTP only (http://127.0.0.1:PORT).
    #[arg(long)]
    url: String,
    #[arg(long)]
    token: String,
    /// The size of each file.
    #[arg(long)]
    file_bytes: u64,
    #[arg(long, default_value_t = 3)]
    files: usize,
    /// The server process whose memory is watched.
    #[arg(long)]
    pid: u32,
    #[arg(long, default_value_t = 1)]
    runs: usize,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let base = args.url.trim_end_matches('/');
    let addr: SocketAddr = base
        .strip_prefix("http://")
        .and_then(|a| a.parse().ok())
        .context("--url must be http://ADDRESS:PORT")?;
    let mut form = reqwest::multipart::Form::new();
    for n in 0..args.files {
        let body = reqwest::Body::wrap_stream(body_stream(args.file_bytes));
        let part = reqwest::multipart::Part::stream_with_length(body, args.file_bytes)
            .file_name(format!("part-{n}.bin"))
            .mime_str("application/octet-stream")?;
        form = form.part("file", part);
    }
    let response = client(base, false)?
        .post(format!("{base}/api/items"))
        .bearer_auth(&args.token)
        .multipart(form)
        .send()
        .await
        .context("upload")?;
    if response.status() != reqwest::StatusCode::CREATED {
        bail!("the upload answered {}", response.status());
    }
    let item: Value = response.json().await?;
    let id = item["id"].as_str().context("no item id")?.to_string();
    let files: Vec<String> = item["files"]
        .as_array()
        .context("no files")?
        .iter()
        .filter_map(|f| f["url"].as_str().map(str::to_string))
        .collect();
    if files.len() != args.files {
        bail!("the item holds {} files, not {}", files.len(), args.files);
    }
    let zip_path = ferry::app::views::zip_path(&id);

    let fetch = |paths: Vec<String>, token: String| async move {
        tokio::task::spawn_blocking(move || -> anyhow::Result<(u64, f64)> {
            let t0 = Instant::now();
            let mut n = 0;
            for path in &paths {
                n += raw_get(addr, path, Some(&token))?;
            }
            Ok((n, t0.elapsed().as_secs_f64()))
        })
        .await?
    };
    let (mut direct, mut zipped, mut ratios, mut growth) = (vec![], vec![], vec![], vec![]);
    let (mut direct_cpu, mut zip_cpu) = (vec![], vec![]);
    let cpu = || cpu_ticks(args.pid).unwrap_or(0);
    let per_gib = |ticks: u64, n: u64| ticks as f64 / 100.0 / (n as f64 / (1u64 << 30) as f64);
    let mut zip_bytes = 0;
    for run in 0..args.runs.max(1) {
        // Alternate which goes first, so neither always meets a warmer cache.
        let order = if run % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        let (mut d, mut z) = (0.0, 0.0);
        for is_direct in order {
            if is_direct {
                let ticks = cpu();
                let (n, secs) = fetch(files.clone(), args.token.clone()).await?;
                direct_cpu.push(per_gib(cpu() - ticks, n));
                d = n as f64 / secs / 1e6;
            } else {
                let peak_reset = reset_peak(args.pid);
                let before = proc_kb(args.pid, "VmRSS").unwrap_or(0);
                let sampler = RssSampler::start(args.pid);
                let ticks = cpu();
                let (n, secs) = fetch(vec![zip_path.clone()], args.token.clone()).await?;
                zip_cpu.push(per_gib(cpu() - ticks, n));
                let sampled = sampler.finish();
                let hwm = proc_kb(args.pid, "VmHWM").filter(|_| peak_reset);
                growth.push(hwm.unwrap_or(0).max(sampled).saturating_sub(before));
                zip_bytes = n;
                z = n as f64 / secs / 1e6;
            }
        }
        direct.push(d);
        zipped.push(z);
        ratios.push(z / d);
    }
    Ok(json!({
        "id": id,
        "files": args.files,
        "file_bytes": args.file_bytes,
        "zip_bytes": zip_bytes,
        "direct_mb_per_s": percentile(&sorted(&direct), 50.0),
        "zip_mb_per_s": percentile(&sorted(&zipped), 50.0),
        "ratio": percentile(&sorted(&ratios), 50.0),
        "rss_growth_kb": growth.iter().max(),
        "direct_cpu_s_per_gib": percentile(&sorted(&direct_cpu), 50.0),
        "zip_cpu_s_per_gib": percentile(&sorted(&zip_cpu), 50.0),
        "runs": direct.iter().zip(&zipped).map(|(d, z)| json!({"direct_mb_per_s": d, "zip_mb_per_s": z})).collect::<Vec<_>>(),
    }))
}
