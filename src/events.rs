//! Live updates. Every change is first an `events` row (so reconnecting clients can
//! replay what they missed), then a message on an in-process broadcast channel, in
//! the order of the rows' ids: a stream skips ids at or below the last it sent.
//! On SQLite a relay task reads new rows after each commit (the writers' own order
//! after commit is not the ids' order, and a writer cancelled between its commit
//! and its announcement would otherwise never be announced); on PostgreSQL every
//! replica, the writer included, learns of new rows through LISTEN/NOTIFY.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::store::{EVENTS_CHANNEL, Event, Store};

/// Capacity of the in-process channel. A client that falls this far behind is not
/// buffered further; it catches up from the database instead.
const CHANNEL_CAPACITY: usize = 1024;
/// The SQLite relay also looks for new rows this often without being woken, so an
/// event whose writer was cancelled right after its commit still goes out.
const RELAY_POLL: Duration = Duration::from_secs(2);
/// Rows the relay reads per query.
const RELAY_BATCH: i64 = 500;

#[derive(Clone, Debug)]
pub enum LiveEvent {
    Item(Arc<Event>),
    /// Some events may have been lost (database connection dropped): clients reload.
    Resync,
}

#[derive(Clone, Debug)]
pub struct EventHub {
    tx: broadcast::Sender<LiveEvent>,
    /// Wakes the SQLite relay; `None` on PostgreSQL and for detached hubs.
    relay: Option<Arc<Notify>>,
}

impl EventHub {
    /// Create the hub and the task that feeds it: the relay on SQLite, the
    /// notification listener on PostgreSQL.
    pub async fn start(store: &Store, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let mut hub = Self { tx, relay: None };
        match store {
            Store::Postgres { pool, .. } => {
                let listener = connect_listener(pool).await?;
                tokio::spawn(listen(listener, store.clone(), hub.tx.clone(), shutdown));
            }
            Store::Sqlite { .. } => {
                let wake = Arc::new(Notify::new());
                // Without the events table (migrations not applied yet) there are no
                // events: the first row to come is new.
                let after = store.latest_event_id().await.unwrap_or(0);
                let relay = relay(store.clone(), hub.tx.clone(), wake.clone(), after, shutdown);
                tokio::spawn(relay);
                hub.relay = Some(wake);
            }
        }
        Ok(hub)
    }

    /// A hub for a command that serves no live streams: what it announces reaches
    /// other processes through the events table (and, on PostgreSQL, NOTIFY).
    pub fn detached() -> Self {
        let (tx, _) = broadcast::channel(1);
        Self { tx, relay: None }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// This process just committed an event: on SQLite, wake the relay.
    pub fn published(&self) {
        if let Some(wake) = &self.relay {
            wake.notify_one();
        }
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// SQLite: broadcast every event row after `after`, in id order (one writer at a
/// time, so rows commit in id order), when woken and every `RELAY_POLL`.
async fn relay(
    store: Store,
    tx: broadcast::Sender<LiveEvent>,
    wake: Arc<Notify>,
    mut after: i64,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(RELAY_POLL) => {}
        }
        loop {
            match store.events_after(after, RELAY_BATCH).await {
                Ok(rows) => {
                    let full = rows.len() as i64 == RELAY_BATCH;
                    for event in rows {
                        after = event.id;
                        // No receivers is not an error: nobody is watching.
                        let _ = tx.send(LiveEvent::Item(Arc::new(event)));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "cannot read new events; retrying");
                    break;
                }
            }
        }
    }
}

async fn listen(
    mut listener: PgListener,
    store: Store,
    tx: broadcast::Sender<LiveEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.try_recv() => r,
        };
        match received {
            Ok(Some(notification)) => {
                let Ok(id) = notification.payload().parse::<i64>() else {
                    tracing::warn!(
                        payload = notification.payload(),
                        "ignoring malformed event notification"
                    );
                    continue;
                };
                match store.events_after(id - 1, 1).await {
                    Ok(mut rows) => {
                        if let Some(event) = rows.pop().filter(|e| e.id == id) {
                            let _ = tx.send(LiveEvent::Item(Arc::new(event)));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "cannot load announced event");
                        let _ = tx.send(LiveEvent::Resync);
                    }
                }
            }
            // The connection dropped (Ok(None)) or failed: notifications sent until
            // we listen again are lost, so clients must reload, but only once we
            // listen again: a reload before that could miss what commits in between.
            Ok(None) | Err(_) => {
                tracing::warn!("lost the PostgreSQL notification connection; reconnecting");
                let Some(again) = reconnect(&store, &shutdown).await else {
                    return;
                };
                listener = again;
                // No receivers is not an error: no stream is open.
                let told = tx.send(LiveEvent::Resync).unwrap_or(0);
                tracing::info!(
                    streams = told,
                    "listening for PostgreSQL notifications again; open streams told to resync"
                );
            }
        }
    }
}

async fn connect_listener(pool: &sqlx::PgPool) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(EVENTS_CHANNEL).await?;
    Ok(listener)
}

/// A new listener, retried every second until it listens or the server stops.
async fn reconnect(store: &Store, shutdown: &CancellationToken) -> Option<PgListener> {
    let Store::Postgres { pool, .. } = store else {
        return None;
    };
    loop {
        match connect_listener(pool).await {
            Ok(listener) => return Some(listener),
            Err(e) => tracing::warn!(error = ?e, "cannot listen for notifications yet; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
