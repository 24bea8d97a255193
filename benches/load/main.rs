//! Load tools for `nox -s bench`. `benches/run.py` drives them against the release
//! binary running as a separate process and turns their JSON answers into the table:
//!
//! * `seed`: schema, a bench user with an API token and a session, and N items;
//! * `start`: process start to `/readyz` 200, N times;
//! * `upload` / `download`: one large transfer, with the server's RSS sampled (to
//!   Ferry, or straight to an object store through a presigned URL);
//! * `presign`: presigned PUT, GET and DELETE URLs of one object, for those two;
//! * `sse`: N Server-Sent Events subscribers, their server's RSS, and the time from
//!   the POST of a note to its arrival at each subscriber;
//! * `zip`: an item of several files, fetched one by one and as its "Download all" ZIP.
//!
//! Every loop is bounded in count and time, and only 127.0.0.1 is contacted. Run with
//! no arguments (as `cargo bench` and `cargo test --all-targets` do) it only prints
//! how to use it.

mod download;
mod http;
mod procfs;
mod s3;
mod seed;
mod sse;
mod start;
mod stats;
mod upload;
mod zip;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde_json::Value;

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
    Seed(seed::Args),
    /// Time process start to /readyz 200. The child inherits this environment.
    Start(start::Args),
    /// Send one file and report the throughput and the server's RSS meanwhile.
    Upload(upload::Args),
    /// Fetch an item's content and report the throughput.
    Download(download::Args),
    /// Presigned URLs of one object in an S3 bucket, printed as JSON.
    Presign(s3::Args),
    /// Open N event streams (spread over the URLs), read the servers' RSS, then post
    /// notes one at a time and time their arrival at every subscriber.
    Sse(sse::Args),
    /// Post an item of several files, then fetch them one by one and as one ZIP.
    Zip(zip::Args),
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

/// One tool's run; its answer is printed as one line of JSON.
async fn run(cmd: Cmd) -> anyhow::Result<Value> {
    match cmd {
        Cmd::Seed(args) => seed::run(args).await,
        Cmd::Start(args) => start::run(args).await,
        Cmd::Upload(args) => upload::run(args).await,
        Cmd::Download(args) => download::run(args).await,
        Cmd::Presign(args) => s3::run(args).await,
        Cmd::Sse(args) => sse::run(args).await,
        Cmd::Zip(args) => zip::run(args).await,
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
