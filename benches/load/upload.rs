//! `load upload`: one large file sent to the API (or, with `--put-url`, straight to
//! an object store), its throughput, and the server's RSS before, during and after.

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::ValueEnum;
use serde_json::{Value, json};
use std::time::Instant;

use crate::http::client;
use crate::procfs::{RssSampler, proc_kb, reset_peak};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, required_unless_present = "put_url")]
    url: Option<String>,
    #[arg(long, required_unless_present = "put_url")]
    token: Option<String>,
    /// PUT the bytes to this URL (a presigned object-store URL) instead of Ferry's
    /// API: the same body, client and timing, no token.
    #[arg(long, conflicts_with_all = ["url", "token"])]
    put_url: Option<String>,
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
}

#[derive(Clone, Copy, ValueEnum)]
enum UploadMode {
    Raw,
    Multipart,
}

pub async fn run(args: Args) -> anyhow::Result<Value> {
    let Args {
        url,
        token,
        put_url,
        bytes,
        mode,
        pid,
        insecure_tls,
    } = args;
    let body = reqwest::Body::wrap_stream(body_stream(bytes));
    let (request, expected) = match (put_url, url, token) {
        (Some(put_url), _, _) => {
            let request = client(&put_url, insecure_tls)?
                .put(&put_url)
                .header(reqwest::header::CONTENT_LENGTH, bytes)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .body(body);
            (request, reqwest::StatusCode::OK)
        }
        (None, Some(url), Some(token)) => (
            api_request(&url, &token, bytes, mode, body, insecure_tls)?,
            reqwest::StatusCode::CREATED,
        ),
        _ => bail!("give --url and --token, or --put-url"),
    };
    let peak_reset = pid.is_some_and(reset_peak);
    let before = pid.and_then(|p| proc_kb(p, "VmRSS"));
    let sampler = pid.map(RssSampler::start);
    let t0 = Instant::now();
    let response = request.send().await.context("upload request")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    let secs = t0.elapsed().as_secs_f64();
    let sampled = sampler.map(RssSampler::finish);
    if status != expected {
        bail!("upload answered {status}: {text}");
    }
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let hwm = pid.filter(|_| peak_reset).and_then(|p| proc_kb(p, "VmHWM"));
    let peak = hwm.max(sampled);
    // One item answers as itself, several as a list under "items".
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

/// The upload to Ferry's API: a raw PUT, or a multipart form POST.
fn api_request(
    url: &str,
    token: &str,
    bytes: u64,
    mode: UploadMode,
    body: reqwest::Body,
    insecure_tls: bool,
) -> anyhow::Result<reqwest::RequestBuilder> {
    let base = url.trim_end_matches('/');
    let client = client(base, insecure_tls)?;
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
    Ok(request.bearer_auth(token))
}

/// `total` bytes in 1 MiB chunks of one incompressible buffer (shared, not copied).
pub(crate) fn body_stream(
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
