//! Accepting connections and serving HTTP/1.1 on them. Ferry drives hyper's HTTP/1
//! server itself rather than through `axum::serve`, which sniffs every connection
//! for HTTP/2 first. Served this way an open event stream holds less memory: 8 kB
//! of read buffer instead of 16 kB (docs/performance.md).
//!
//! No timeout is set on reading a request head: hyper's also closes idle
//! keep-alive connections, and a proxy that reuses one just as it closes (nginx
//! keeps idle upstream connections for 60 s) would fail that request. Slow clients
//! are the reverse proxy's to cut off (nginx: `client_header_timeout`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Serve `app` on `listener` until `stop` is cancelled; then accept no more and
/// return once every open connection has finished its requests.
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let http = http1::Builder::new();
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
