//! Background housekeeping: expired items and their files, expired unfinished
//! uploads and their bytes, shares that waited too long for sign-in, expired
//! sessions and sign-in links, old events. With several replicas, a database
//! lease makes sure only one sweeps.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{App, items, share_target, uploads};
use crate::store::now_ms;

const INTERVAL: Duration = Duration::from_secs(60);
const LEASE: &str = "sweeper";
/// Events are kept this long for clients that reconnect with Last-Event-ID.
const EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

pub async fn run(app: App, shutdown: CancellationToken) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match app.store().try_lease(LEASE, &holder, INTERVAL * 2).await {
            Ok(true) => {
                if let Err(e) = sweep_once(&app).await {
                    tracing::warn!(error = ?e, "sweep failed; will retry");
                }
            }
            Ok(false) => tracing::debug!("another replica holds the sweeper lease"),
            Err(e) => tracing::warn!(error = ?e, "cannot take the sweeper lease"),
        }
    }
}

/// One pass. Returns how many items were removed.
pub async fn sweep_once(app: &App) -> anyhow::Result<usize> {
    let store = app.store();
    let mut removed = 0;
    loop {
        let ids = store.expired_item_ids(100).await?;
        if ids.is_empty() {
            break;
        }
        for id in ids {
            if items::remove(app, &id).await? {
                removed += 1;
            }
        }
    }
    let uploads = uploads::sweep(app).await?;
    let pending_shares = share_target::sweep(app).await?;
    let sessions = store.delete_expired_sessions().await?;
    store.delete_expired_device_links().await?;
    let events = store
        .prune_events(now_ms() - EVENT_RETENTION.as_millis() as i64)
        .await?;
    if removed > 0 || uploads > 0 || pending_shares > 0 || sessions > 0 || events > 0 {
        tracing::info!(
            items = removed,
            uploads,
            pending_shares,
            sessions,
            events,
            "swept expired data"
        );
    }
    Ok(removed)
}
