use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::LoginLimiter;
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::store::Store;

/// Everything a handler needs; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub blobs: Arc<Blobs>,
    pub events: EventHub,
    pub metrics: Arc<Metrics>,
    pub limiter: Arc<LoginLimiter>,
    /// Cancelled when the server begins to shut down; ends live streams and tasks.
    pub shutdown: CancellationToken,
}
