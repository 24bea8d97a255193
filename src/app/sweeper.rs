//! Background housekeeping: expired items and their files, expired unfinished
//! uploads and their bytes, shares that waited too long for sign-in, expired
//! sessions and sign-in links, old events, and what crashes leave in the file
//! store (blobs no item refers to, unfinished multipart uploads). With several
//! replicas, a database lease makes sure only one sweeps.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{App, items, share_target, uploads};
use crate::store::now_ms;

const INTERVAL: Duration = Duration::from_secs(60);
const LEASE: &str = "sweeper";
/// Events are kept this long for clients that reconnect with Last-Event-ID.
const EVENT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// A blob no item refers to is a leftover once it is this old. Younger, it may be
/// an upload between its commit and its item's insert, or a share waiting for its
/// sender to sign in (`share_target::PENDING_TTL`, ten minutes).
pub const ORPHAN_GRACE: Duration = Duration::from_secs(3600);
/// An unfinished multipart upload this old is abandoned: no one request sending a
/// file lasts a day (resumable uploads keep their bytes elsewhere meanwhile).
pub const MULTIPART_GRACE: Duration = Duration::from_secs(24 * 3600);

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
    let leftovers = sweep_leftovers(app, ORPHAN_GRACE, MULTIPART_GRACE).await?;
    let pending_shares = share_target::sweep(app).await?;
    let sessions = store.delete_expired_sessions().await?;
    store.delete_expired_device_links().await?;
    let events = store
        .prune_events(now_ms() - EVENT_RETENTION.as_millis() as i64)
        .await?;
    if removed > 0
        || uploads > 0
        || pending_shares > 0
        || sessions > 0
        || events > 0
        || leftovers.any()
    {
        tracing::info!(
            items = removed,
            uploads,
            orphaned_files = leftovers.orphans,
            unfinished_store_uploads = leftovers.incomplete,
            pending_shares,
            sessions,
            events,
            "swept expired data"
        );
    }
    Ok(removed)
}

/// What `sweep_leftovers` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Leftovers {
    /// Blobs no item referred to.
    pub orphans: usize,
    /// Unfinished uploads into the store (multipart uploads; tmp directories of
    /// processes that are gone).
    pub incomplete: usize,
}

impl Leftovers {
    fn any(&self) -> bool {
        self.orphans > 0 || self.incomplete > 0
    }
}

/// Remove from the file store what no row refers to: blobs older than
/// `orphan_grace` without an item (a crash between storing a file and recording
/// it), and unfinished uploads older than `incomplete_grace`.
pub async fn sweep_leftovers(
    app: &App,
    orphan_grace: Duration,
    incomplete_grace: Duration,
) -> anyhow::Result<Leftovers> {
    let blobs = app.blobs();
    // The store is listed before the rows are read: a blob committed after the
    // listing is not a candidate, and one listed was committed before the read,
    // so its item (if it is ever recorded within the grace) is in the rows.
    let listed = blobs.list().await?;
    let cutoff = std::time::SystemTime::now() - orphan_grace;
    let candidates: Vec<uuid::Uuid> = listed
        .into_iter()
        .filter(|(_, written)| *written < cutoff)
        .map(|(id, _)| id)
        .collect();
    let mut orphans = 0;
    if !candidates.is_empty() {
        let in_use: std::collections::HashSet<String> =
            app.store().blob_ids_in_use().await?.into_iter().collect();
        for id in candidates {
            if !in_use.contains(&id.to_string()) {
                blobs.remove(&id).await?;
                tracing::info!(blob = %id, "removed a file no item refers to");
                orphans += 1;
            }
        }
    }
    let incomplete = blobs.sweep_incomplete(incomplete_grace).await?;
    Ok(Leftovers {
        orphans,
        incomplete,
    })
}
