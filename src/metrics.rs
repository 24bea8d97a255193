//! Prometheus metrics, kept by hand: a few counters and one histogram do not need
//! a metrics framework.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    pub in_flight: AtomicI64,
    pub sse_streams: AtomicI64,
    pub upload_bytes: AtomicU64,
}

impl Metrics {
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *requests
            .entry((method.to_string(), route.to_string(), status))
            .or_default() += 1;
        drop(requests);
        let secs = elapsed.as_secs_f64();
        let mut latency = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = latency.entry(route.to_string()).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += secs;
        h.count += 1;
    }

    pub fn render(&self, backend: &str, items: Option<i64>) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP ferry_build_info Build information.\n# TYPE ferry_build_info gauge"
        );
        let _ = writeln!(
            out,
            "ferry_build_info{{version=\"{}\",revision=\"{}\",backend=\"{backend}\"}} 1",
            crate::VERSION,
            crate::GIT_REVISION
        );
        let _ = writeln!(
            out,
            "# HELP ferry_http_requests_total HTTP requests by method, route and status.\n# TYPE ferry_http_requests_total counter"
        );
        for ((method, route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "ferry_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ferry_http_request_duration_seconds Request latency by route.\n# TYPE ferry_http_request_duration_seconds histogram"
        );
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (bound, n) in BUCKETS.iter().zip(h.counts) {
                let _ = writeln!(
                    out,
                    "ferry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "ferry_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "ferry_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "ferry_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        let gauges = [
            (
                "ferry_http_requests_in_flight",
                "Requests being served.",
                self.in_flight.load(Ordering::Relaxed),
            ),
            (
                "ferry_sse_streams",
                "Open live-update streams.",
                self.sse_streams.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP ferry_upload_bytes_total Bytes received in uploads.\n# TYPE ferry_upload_bytes_total counter\nferry_upload_bytes_total {}",
            self.upload_bytes.load(Ordering::Relaxed)
        );
        if let Some(items) = items {
            let _ = writeln!(
                out,
                "# HELP ferry_items Items stored.\n# TYPE ferry_items gauge\nferry_items {items}"
            );
        }
        out
    }
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
