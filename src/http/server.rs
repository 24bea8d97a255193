//! Accepting connections and serving HTTP/1.1 on them. Ferry drives hyper's HTTP/1
//! server itself rather than through `axum::serve`, which sniffs every connection
//! for HTTP/2 first and has no limit on how long a client may take to send a
//! request head. Served this way an open event stream holds less memory: 8 kB of
//! read buffer instead of 16 kB (docs/performance.md).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A client that opens a connection must send its request head within this time
/// (slow-header attacks hold connections open otherwise).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve `app` on `listener` until `stop` is cancelled; then accept no more and
/// return once every open connection has finished its requests.
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    let connections = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors or memory: wait rather than spin; the open
                // connections go on meanwhile.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = connections.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    connections.shutdown().await;
}
