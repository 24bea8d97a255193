//! The use cases. Pages, the JSON API, the command line and the sweeper all call
//! these, so a rule is written once and every entry point enforces it. Nothing here
//! knows about HTTP: it uses no web framework and nothing of the web adapter.

pub mod accounts;
pub mod archive;
pub mod devices;
pub mod health;
pub mod items;
pub mod live;
pub mod pagination;
pub mod received;
pub mod share_target;
pub mod shares;
pub mod sweeper;
pub mod uploads;
pub mod views;

use std::sync::Arc;

use crate::auth::LoginLimiter;
use crate::blobs::Blobs;
use crate::config::Settings;
use crate::events::EventHub;
use crate::metrics::Metrics;
use crate::store::Store;

pub use crate::store::{ApiToken, Event, Item, ItemFile, ResumableUpload, Share, User};
pub use accounts::SignedIn;

/// What every use case works with. One pointer wide, so an open event stream or a
/// request clones it for the cost of a reference count.
#[derive(Clone)]
pub struct App(Arc<Parts>);

struct Parts {
    settings: Arc<Settings>,
    store: Store,
    blobs: Blobs,
    events: EventHub,
    limiter: LoginLimiter,
    metrics: Arc<Metrics>,
}

impl App {
    pub fn new(settings: Arc<Settings>, store: Store, blobs: Blobs, events: EventHub) -> Self {
        Self(Arc::new(Parts {
            settings,
            store,
            blobs,
            events,
            limiter: LoginLimiter::default(),
            metrics: Arc::new(Metrics::default()),
        }))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// Where users reach Ferry, for links that must be absolute (QR codes):
    /// FERRY_PUBLIC_URL, else the origin the user's browser reported with its
    /// request (a form's `Origin` header), else nothing. The browser's origin is
    /// safe to use because the page it ends up in goes back only to that browser:
    /// whoever could forge the header would be misleading only themselves.
    pub fn absolute_base(&self, browser_origin: Option<&str>) -> Option<String> {
        if let Some(url) = &self.settings().public_url {
            return Some(url.as_str().trim_end_matches('/').to_string());
        }
        let url = url::Url::parse(browser_origin?).ok()?;
        let origin = url.origin();
        (matches!(url.scheme(), "http" | "https") && origin.is_tuple())
            .then(|| origin.ascii_serialization())
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// The database, for the command line's operations (backup, migrations) and for
    /// tests. Front ends go through the use cases instead; a test checks that
    /// `http/` never calls this.
    pub fn store(&self) -> &Store {
        &self.0.store
    }

    // The rest is for the use cases alone (private items are visible to app's own
    // modules): a front end cannot reach past them.
    fn blobs(&self) -> &Blobs {
        &self.0.blobs
    }

    fn events(&self) -> &EventHub {
        &self.0.events
    }

    fn limiter(&self) -> &LoginLimiter {
        &self.0.limiter
    }

    /// Release what the process holds on shutdown: its tmp directory and the pool.
    pub async fn close(&self) {
        self.0.blobs.release_tmp();
        self.0.store.close().await;
    }
}
