//! The `ferry` command line. `serve` is the default.

use std::io::{BufRead, ErrorKind, IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::app::{App, accounts};
use crate::auth::{check_password_rules, check_user_name};
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::domain::rfc3339;
use crate::error::AppError;
use crate::events::EventHub;
use crate::startup::{Application, shutdown_signal};
use crate::store::Store;
use crate::telemetry;

#[derive(Parser)]
#[command(name = "ferry", version, about = "A self-hosted drop box for notes and files", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Exit 0 if the local server answers /readyz with 200, else 1 (container HEALTHCHECK).
    Healthcheck,
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens for scripts.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Write a consistent backup (database and files) to one archive; the server may keep running.
    Backup {
        /// The archive to write (replaced only once complete), or - for stdout.
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
    /// Restore a backup archive into an empty database and data directory.
    Restore {
        /// The archive to read, or - for stdin.
        archive: std::path::PathBuf,
    },
    /// Copy every row into another, empty database (e.g. SQLite to PostgreSQL) and verify it.
    MigrateDb {
        /// The database to copy from, e.g. sqlite:///data/ferry.db.
        #[arg(long)]
        from: String,
        /// The database to copy into; the configured FERRY_DATABASE_URL if omitted.
        #[arg(long)]
        to: Option<String>,
    },
    /// The file stores.
    #[command(subcommand)]
    Blobs(BlobsCommand),
}

#[derive(Subcommand)]
enum BlobsCommand {
    /// Copy every file into one store from the other (the data directory and the
    /// bucket of the S3 settings), verifying each SHA-256; safe to run again.
    Copy {
        /// The store to copy into: s3 (from FERRY_DATA_DIR/blobs) or local (from the bucket).
        #[arg(long, value_parser = ["s3", "local"])]
        to: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user. The password is read from the terminal, or from stdin when piped.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
    },
    /// List users.
    List,
    /// Set a new password (ends the user's sessions).
    Passwd { name: String },
    /// Delete a user; their items stay, without an author.
    Delete { name: String },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token and print it once.
    Create {
        /// A name to recognise the token by.
        name: String,
        #[arg(long)]
        user: String,
    },
    /// List a user's tokens.
    List {
        #[arg(long)]
        user: String,
    },
    /// Revoke a token by name or id.
    Revoke {
        name: String,
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Validate the configuration and print it with secrets redacted.
    Check,
}

/// Exit code for an invalid configuration, distinct from runtime failures.
const EXIT_CONFIG: u8 = 2;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Healthcheck = command {
        return healthcheck(&settings);
    }
    if let Command::Config(ConfigCommand::Check) = command {
        for line in settings.redacted_lines() {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    }
    let filter = match command {
        Command::Serve => settings.log.as_str(),
        _ => telemetry::command_filter(&settings.log),
    };
    telemetry::init(filter, settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate => {
            let store = Store::connect(&settings).await?;
            store.migrate().await?;
            println!(
                "database schema is at version {}",
                store.schema_version().await?
            );
            Ok(())
        }
        Command::User(cmd) => {
            let app = open_app(settings).await?;
            let done = user(cmd, &app).await;
            app.close().await;
            done
        }
        Command::Token(cmd) => {
            let app = open_app(settings).await?;
            let done = token(cmd, &app).await;
            app.close().await;
            done
        }
        Command::Backup { output } => {
            let progress = crate::ops::Progress::stderr();
            crate::ops::backup(&settings, &output, &progress)
                .await
                .map(|_| ())
        }
        Command::Restore { archive } => {
            let progress = crate::ops::Progress::stderr();
            crate::ops::restore(&settings, &archive, &progress)
                .await
                .map(|_| ())
        }
        Command::MigrateDb { from, to } => {
            let progress = crate::ops::Progress::stderr();
            crate::ops::migrate_db(&settings, &from, to.as_deref(), &progress)
                .await
                .map(|_| ())
        }
        Command::Blobs(BlobsCommand::Copy { to }) => {
            let to = match to.as_str() {
                "s3" => crate::config::BlobStoreKind::S3,
                _ => crate::config::BlobStoreKind::Local,
            };
            let progress = crate::ops::Progress::stderr();
            crate::ops::copy_blobs(&settings, to, &progress)
                .await
                .map(|_| ())
        }
        Command::Healthcheck | Command::Config(_) => Ok(()),
    }
}

/// Open the database for an admin command, bringing the schema up to date first
/// when the server would do so too.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(settings).await?;
    if settings.migrate_on_start {
        store.migrate().await?;
    } else if !store.migrations_applied().await? {
        bail!("the database schema is not up to date; run `ferry migrate` first");
    }
    Ok(store)
}

/// The use cases for an admin command: the database as `open_store` opens it, the
/// data directory, and no live streams.
async fn open_app(settings: Settings) -> anyhow::Result<App> {
    let store = open_store(&settings).await?;
    let blobs = Blobs::open(&settings).await?;
    Ok(App::new(
        settings.into(),
        store,
        blobs,
        EventHub::detached(),
    ))
}

async fn user(cmd: UserCommand, app: &App) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Add { name, admin } => {
            // Before asking for a password nobody could use.
            check_user_name(&name).map_err(anyhow::Error::msg)?;
            let password = read_new_password()?;
            accounts::create_user(app, &name, password, admin).await?;
            println!("created user {name}{}", if admin { " (admin)" } else { "" });
        }
        UserCommand::List => {
            for u in accounts::list_users(app).await? {
                println!(
                    "{}\t{}\t{}",
                    u.name,
                    if u.is_admin { "admin" } else { "member" },
                    rfc3339(u.created_at)
                );
            }
        }
        UserCommand::Passwd { name } => {
            accounts::find_user(app, &name).await?;
            accounts::set_password(app, &name, read_new_password()?).await?;
            println!("password changed for {name}; their sessions were ended");
        }
        UserCommand::Delete { name } => {
            accounts::delete_user(app, &name).await?;
            println!("deleted user {name}");
        }
    }
    Ok(())
}

async fn token(cmd: TokenCommand, app: &App) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Create { name, user } => {
            let owner = accounts::find_user(app, &user).await?;
            let secret = accounts::create_token(app, &owner.id, &name).await?;
            // Only the token on stdout, so scripts can capture it.
            println!("{secret}");
            eprintln!("token {name} created; it is shown only once");
        }
        TokenCommand::List { user } => {
            let owner = accounts::find_user(app, &user).await?;
            for t in accounts::list_tokens(app, &owner.id).await? {
                let used = t
                    .last_used_at
                    .map(rfc3339)
                    .unwrap_or_else(|| "never used".into());
                println!("{}\t{}\t{}\t{}", t.id, t.name, rfc3339(t.created_at), used);
            }
        }
        TokenCommand::Revoke { name, user } => {
            let owner = accounts::find_user(app, &user).await?;
            match accounts::revoke_token(app, &owner.id, &name).await {
                Err(AppError::NotFound) => bail!("no such token"),
                other => other?,
            }
            println!("revoked");
        }
    }
    Ok(())
}

/// A password from the terminal (asked twice) or the first line of stdin.
fn read_new_password() -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("New password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    check_password_rules(&password).map_err(anyhow::Error::msg)?;
    Ok(password)
}

/// How long `ferry healthcheck` waits for the whole answer: below compose's 5 s
/// healthcheck timeout, so a hung server is reported in words, not as a time-out.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// Probe /readyz on the configured listen address with a plain HTTP/1.0 request:
/// the image has no shell or curl, so the binary checks itself.
fn healthcheck(settings: &Settings) -> ExitCode {
    let mut addr = settings.listen;
    if addr.ip().is_unspecified() {
        let loopback: IpAddr = if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        addr = SocketAddr::new(loopback, addr.port());
    }
    match probe(addr) {
        Ok(()) => ExitCode::SUCCESS,
        Err(problem) => {
            eprintln!("{problem}");
            ExitCode::FAILURE
        }
    }
}

/// Ok when /readyz answers 200; otherwise what a person reads: the reason /readyz
/// gives, or what went wrong on the way.
fn probe(addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let in_words = |e: std::io::Error| match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            format!("no answer from {addr} within {} s", PROBE_TIMEOUT.as_secs())
        }
        ErrorKind::ConnectionRefused => format!("nothing is listening on {addr}"),
        _ => format!("cannot reach {addr}: {e}"),
    };
    let mut stream = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT).map_err(in_words)?;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| std::io::Error::from(ErrorKind::TimedOut))
    };
    let answer = (|| {
        stream.set_write_timeout(Some(left()?))?;
        write!(
            stream,
            "GET /readyz HTTP/1.0\r\nHost: {addr}\r\nUser-Agent: ferry-healthcheck\r\n\r\n"
        )?;
        // The server closes the connection after an HTTP/1.0 answer.
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while answer.len() < 64 * 1024 {
            stream.set_read_timeout(Some(left()?))?;
            match stream.read(&mut buf)? {
                0 => break,
                n => answer.extend_from_slice(&buf[..n]),
            }
        }
        Ok(answer)
    })()
    .map_err(in_words)?;
    let text = String::from_utf8_lossy(&answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{addr} did not answer in HTTP"))?;
    if status == 200 {
        return Ok(());
    }
    let reason = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string));
    Err(match reason {
        Some(reason) => format!("not ready: {reason}"),
        None => format!("not ready: /readyz on {addr} answered {status}"),
    })
}
