//! Logging, set up once: readable lines in a terminal, JSON lines in production.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

use crate::config::{DEFAULT_LOG, LogFormat};

/// The filter for a command other than `serve`. Its output is what it prints; the
/// server's informational lines would only come between, so unless FERRY_LOG asks
/// for something else it logs warnings and errors alone.
pub fn command_filter(configured: &str) -> &str {
    if configured == DEFAULT_LOG {
        "warn"
    } else {
        configured
    }
}

pub fn init(filter: &str, format: LogFormat) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // try_init: a second call (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
