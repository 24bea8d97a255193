//! GET /events: Server-Sent Events for signed-in users. A reconnecting client sends
//! Last-Event-ID and first receives what it missed from the database. A client that
//! falls behind the in-memory channel catches up from the database too, so a slow
//! reader costs no memory beyond the shared channel.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::routing::get;
use futures_util::Stream;
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;

use super::AppState;
use super::extract::{ApiQuery, CurrentUser};
use crate::app::{App, Event, live};
use crate::error::Result;
use crate::events::LiveEvent;
use crate::metrics::Metrics;

pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// At most this many missed events are replayed in one go.
const REPLAY_BATCH: i64 = 500;

#[derive(serde::Deserialize)]
struct EventsQuery {
    after: Option<i64>,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

async fn events(
    State(state): State<AppState>,
    _user: CurrentUser,
    ApiQuery(query): ApiQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = std::result::Result<SseEvent, Infallible>>>> {
    // Subscribe before reading the backlog so nothing falls between the two.
    let rx = live::subscribe(&state.app);
    // A reconnecting browser sends Last-Event-ID; a page opening its first stream
    // passes ?after= with the last event it rendered, so nothing falls between
    // the page load and the connection. Otherwise the stream starts from now.
    let header_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    let last_id = match header_id.or(query.after) {
        Some(id) => id,
        None => live::latest_event_id(&state.app).await?,
    };
    let guard = StreamGuard::new(state.app.metrics().clone());
    let stream = futures_util::stream::unfold(
        Cursor {
            app: state.app,
            shutdown: state.shutdown,
            rx,
            last_id,
            backlog: VecDeque::new(),
            needs_replay: true,
            _guard: guard,
        },
        Cursor::next_event,
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive")))
}

/// What one open stream holds: it is multiplied by every browser tab.
struct Cursor {
    app: App,
    shutdown: CancellationToken,
    rx: broadcast::Receiver<LiveEvent>,
    /// The highest id sent (or the client's Last-Event-ID). Events arrive and are
    /// sent in id order, so a live event at or below it was already replayed.
    last_id: i64,
    backlog: VecDeque<Event>,
    needs_replay: bool,
    _guard: StreamGuard,
}

impl Cursor {
    async fn next_event(mut self) -> Option<(std::result::Result<SseEvent, Infallible>, Self)> {
        loop {
            // The next batch only once this one is sent: it starts after last_id.
            if self.needs_replay && self.backlog.is_empty() {
                self.needs_replay = false;
                match live::events_after(&self.app, self.last_id, REPLAY_BATCH).await {
                    Ok(rows) => {
                        if rows.len() as i64 == REPLAY_BATCH {
                            self.needs_replay = true;
                        }
                        self.backlog.extend(rows);
                    }
                    Err(e) => {
                        tracing::warn!(error = ?e, "cannot replay events");
                        return Some((Ok(SseEvent::default().event("resync").data("{}")), self));
                    }
                }
            }
            if let Some(event) = self.backlog.pop_front() {
                self.last_id = self.last_id.max(event.id);
                return Some((Ok(to_sse(&event)), self));
            }
            if self.needs_replay {
                continue;
            }
            let received = tokio::select! {
                _ = self.shutdown.cancelled() => return None,
                r = self.rx.recv() => r,
            };
            match received {
                Ok(LiveEvent::Item(event)) => {
                    if event.id <= self.last_id {
                        continue;
                    }
                    self.last_id = self.last_id.max(event.id);
                    return Some((Ok(to_sse(&event)), self));
                }
                Ok(LiveEvent::Resync) => {
                    return Some((Ok(SseEvent::default().event("resync").data("{}")), self));
                }
                // Too slow for the live channel: continue from the database.
                Err(RecvError::Lagged(_)) => self.needs_replay = true,
                Err(RecvError::Closed) => return None,
            }
        }
    }
}

fn to_sse(event: &Event) -> SseEvent {
    SseEvent::default()
        .id(event.id.to_string())
        .event(event.kind.as_str())
        .data(event.payload.as_str())
}

/// Counts open streams for /metrics.
struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.sse_streams.fetch_add(1, Ordering::Relaxed);
        Self(metrics)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.sse_streams.fetch_sub(1, Ordering::Relaxed);
    }
}
