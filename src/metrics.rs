//! Prometheus metrics, encoded by `prometheus-client` in the Prometheus text
//! format.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// The `Content-Type` of what [`Metrics::render`] returns.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    revision: &'static str,
    backend: String,
}

/// Request counts and latencies; callers update the gauges' atomics directly.
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    handles: RwLock<HashMap<Box<str>, RouteHandles>>,
    pub in_flight: AtomicI64,
    pub sse_streams: AtomicI64,
    pub upload_bytes: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| Histogram::new(BUCKETS)),
            handles: RwLock::default(),
            in_flight: AtomicI64::new(0),
            sse_streams: AtomicI64::new(0),
            upload_bytes: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// Count a served request. This runs on every request: once its route,
    /// method and status have been seen, it only reads `handles`, allocating
    /// nothing and looking nothing up in the families.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let handles = self.handles.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(handle) = handles.get(route)
            && let Some(requests) = handle.requests.get(method).and_then(|m| m.get(&status))
        {
            requests.inc();
            handle.latency.observe(secs);
            return;
        }
        drop(handles);
        let mut handles = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        let handle = handles.entry(route.into()).or_insert_with(|| RouteHandles {
            latency: self.latency.get_or_create_owned(&RouteLabels {
                route: route.to_string(),
            }),
            requests: HashMap::new(),
        });
        handle
            .requests
            .entry(method.into())
            .or_default()
            .entry(status)
            .or_insert_with(|| {
                self.requests.get_or_create_owned(&RequestLabels {
                    method: method.to_string(),
                    route: route.to_string(),
                    status,
                })
            })
            .inc();
        handle.latency.observe(secs);
    }

    /// The metrics in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self, backend: &str, items: Option<i64>) -> String {
        // A registry per scrape: the backend and the item count are known only
        // now, and the gauges are read from the atomics callers update.
        let mut registry = Registry::with_prefix("ferry");
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: crate::VERSION,
                revision: crate::GIT_REVISION,
                backend: backend.to_string(),
            }),
        );
        registry.register(
            "http_requests",
            "HTTP requests by method, route and status",
            self.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Request latency by route",
            self.latency.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "Requests being served",
            ConstGauge::new(self.in_flight.load(Ordering::Relaxed)),
        );
        registry.register(
            "sse_streams",
            "Open live-update streams",
            ConstGauge::new(self.sse_streams.load(Ordering::Relaxed)),
        );
        registry.register(
            "upload_bytes",
            "Bytes received in uploads",
            ConstCounter::new(self.upload_bytes.load(Ordering::Relaxed)),
        );
        if let Some(items) = items {
            registry.register("items", "Items stored", ConstGauge::new(items));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_text::encode(&mut out, &registry) {
            tracing::error!(error = ?e, "encoding metrics failed");
        }
        out
    }
}

/// A route's series in the families: its latency histogram, and its request
/// counters by method and status.
struct RouteHandles {
    latency: Histogram,
    requests: HashMap<Box<str>, HashMap<u16, Counter>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.record("GET", "/api/items", 200, Duration::from_millis(3));
        m.record("GET", "/api/items", 200, Duration::from_millis(300));
        let text = m.render("sqlite", Some(7));
        assert!(
            text.contains(
                "ferry_http_requests_total{method=\"GET\",route=\"/api/items\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "ferry_http_request_duration_seconds_bucket{route=\"/api/items\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("ferry_http_request_duration_seconds_count{route=\"/api/items\"} 2"),
            "{text}"
        );
        assert!(text.contains("ferry_items 7"));
        assert!(text.contains("ferry_build_info{version="));
    }
}
