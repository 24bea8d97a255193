//! Live updates. Every change is first an `events` row (so reconnecting clients can
//! replay what they missed), then a message on an in-process broadcast channel.
//! On SQLite the writer broadcasts directly; on PostgreSQL every replica, the writer
//! included, learns of new rows through LISTEN/NOTIFY, so all replicas behave alike.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::store::{EVENTS_CHANNEL, Event, Store};

/// Capacity of the in-process channel. A client that falls this far behind is not
/// buffered further; it catches up from the database instead.
const CHANNEL_CAPACITY: usize = 1024;

#[derive(Clone, Debug)]
pub enum LiveEvent {
    Item(Arc<Event>),
    /// Some events may have been lost (database connection dropped): clients reload.
    Resync,
}

#[derive(Clone, Debug)]
pub struct EventHub {
    tx: broadcast::Sender<LiveEvent>,
    direct: bool,
}

impl EventHub {
    /// Create the hub; on PostgreSQL also start the listener task.
    pub async fn start(store: &Store, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        let hub = Self {
            tx,
            direct: matches!(store, Store::Sqlite { .. }),
        };
        if let Store::Postgres { pool, .. } = store {
            let mut listener = PgListener::connect_with(pool).await?;
            listener.listen(EVENTS_CHANNEL).await?;
            tokio::spawn(listen(listener, store.clone(), hub.tx.clone(), shutdown));
        }
        Ok(hub)
    }

    /// A hub for a command that serves no live streams: what it announces reaches
    /// other processes through the events table (and, on PostgreSQL, NOTIFY).
    pub fn detached() -> Self {
        let (tx, _) = broadcast::channel(1);
        Self { tx, direct: false }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.tx.subscribe()
    }

    /// Announce an event that was just committed by this process.
    pub fn published(&self, event: Event) {
        if self.direct {
            // No receivers is not an error: nobody is watching.
            let _ = self.tx.send(LiveEvent::Item(Arc::new(event)));
        }
    }

    pub fn subscribers(&self) -> usize {
        self.tx.receiver_count()
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
            // The connection dropped; sqlx reconnects on the next call, but
            // notifications sent meanwhile are lost, so clients must reload.
            Ok(None) => {
                tracing::warn!("lost the PostgreSQL notification connection; reconnecting");
                let _ = tx.send(LiveEvent::Resync);
            }
            Err(e) => {
                tracing::warn!(error = ?e, "PostgreSQL notification listener failed; retrying");
                let _ = tx.send(LiveEvent::Resync);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
