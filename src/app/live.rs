//! Live updates as the use cases offer them: a subscription to what happens now,
//! and the events a reconnecting client missed.

use tokio::sync::broadcast;

use super::App;
use crate::error::Result;
use crate::events::LiveEvent;
use crate::store::Event;

/// Subscribe before reading any backlog, so nothing falls between the two.
pub fn subscribe(app: &App) -> broadcast::Receiver<LiveEvent> {
    app.events().subscribe()
}

pub async fn latest_event_id(app: &App) -> Result<i64> {
    Ok(app.store().latest_event_id().await?)
}

/// Up to `limit` events after `after`, oldest first.
pub async fn events_after(app: &App, after: i64, limit: i64) -> Result<Vec<Event>> {
    Ok(app.store().events_after(after, limit).await?)
}
