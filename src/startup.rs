//! Builds the application from settings. `main` and the tests share this path: tests
//! bind port 0 and get the real router.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::{App, accounts, sweeper};
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::events::EventHub;
use crate::http::{self, AppState};
use crate::store::Store;

pub struct Application {
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
}

impl Application {
    /// Open the database (migrating if configured), the data directory and the
    /// listeners. Nothing is served until `run_until`.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        raise_fd_limit();
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
        let store = Store::connect(&settings).await?;
        // An older binary must not serve a database a newer one has migrated
        // (a rollback without restoring the pre-upgrade backup).
        let schema = store.schema_version().await?;
        if schema > store.latest_schema_version() {
            anyhow::bail!(
                "the database schema (version {schema}) is newer than this Ferry knows (version {}); \
                 run the newer release, or restore the backup taken before the upgrade",
                store.latest_schema_version()
            );
        }
        if settings.migrate_on_start {
            store.migrate().await?;
        } else if !store.migrations_applied().await? {
            tracing::warn!(
                "database schema is not up to date and FERRY_MIGRATE_ON_START=false; run `ferry migrate`"
            );
        }
        let blobs = Blobs::open(&settings).await?;
        tracing::info!(store = %blobs.describe(), "files are kept in the {} store", blobs.kind());
        let listener = TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let shutdown = CancellationToken::new();
        let events = EventHub::start(&store, shutdown.clone()).await?;
        let state = AppState {
            app: App::new(Arc::new(settings), store, blobs, events),
            shutdown,
        };
        Ok(Self {
            listener,
            metrics_listener,
            state,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    pub fn app(&self) -> &App {
        &self.state.app
    }

    /// What the HTTP handlers are given, for serving the router without a listener.
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve until `shutdown` resolves, then stop accepting, end live streams, and
    /// give in-flight requests `FERRY_SHUTDOWN_GRACE` to finish.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Self {
            listener,
            metrics_listener,
            state,
        } = self;
        let addr = listener.local_addr()?;
        if let Err(e) = announce_setup(&state.app, addr).await {
            tracing::warn!(error = ?e, "cannot check for a first user (is the schema migrated?)");
        }
        let token = state.shutdown.clone();
        let grace = state.app.settings().shutdown_grace;

        let main = tokio::spawn(http::serve(
            listener,
            http::router(state.clone()),
            token.clone(),
        ));
        let metrics = metrics_listener.map(|l| {
            tokio::spawn(http::serve(
                l,
                http::metrics_router(state.clone()),
                token.clone(),
            ))
        });
        let sweeper = tokio::spawn(sweeper::run(state.app.clone(), token.clone()));
        tracing::info!(%addr, backend = state.app.store().backend(), version = crate::VERSION, "ferry is listening");

        tokio::select! {
            _ = shutdown => tracing::info!("shutting down: no new connections; finishing in-flight requests"),
            _ = token.cancelled() => {}
        }
        token.cancel();
        let drained = tokio::time::timeout(grace, async {
            let _ = main.await;
            if let Some(m) = metrics {
                let _ = m.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "grace period over; cutting off remaining requests"
            );
        }
        sweeper.abort();
        state.app.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Every open event stream holds a descriptor, and the usual soft limit of 1024
/// would cap a server at about a thousand browsers: raise it to the hard limit.
fn raise_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum)
        && current < maximum
    {
        limit.current = Some(maximum);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::debug!(error = %e, "cannot raise the open-files limit");
        }
    }
}

/// With no users yet, print a one-time link that lets the first visitor become
/// the admin. Every start without users prints a fresh link.
async fn announce_setup(app: &App, addr: SocketAddr) -> anyhow::Result<()> {
    let Some(token) = accounts::issue_setup_token(app).await? else {
        return Ok(());
    };
    let base = match &app.settings().public_url {
        Some(url) => url.as_str().trim_end_matches('/').to_string(),
        None => format!("http://{addr}"),
    };
    tracing::warn!(
        "no users yet: create the admin account at {base}/setup?token={token} (or run `ferry user add NAME --admin`)"
    );
    Ok(())
}

/// Resolves on SIGTERM (container stop) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
