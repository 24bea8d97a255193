//! Accepting connections and serving HTTP/1.1 on them. Ferry drives hyper's HTTP/1
//! server itself rather than through `axum::serve`, which sniffs every connection
//! for HTTP/2 first. Served this way an open event stream holds less memory: 8 kB
//! of read buffer instead of 16 kB (docs/performance.md). It also closes a
//! connection gently (`linger`), which `axum::serve` does not.
//!
//! No timeout is set on reading a request head: hyper's also closes idle
//! keep-alive connections, and a proxy that reuses one just as it closes (nginx
//! keeps idle upstream connections for 60 s) would fail that request. Slow clients
//! are the reverse proxy's to cut off (nginx: `client_header_timeout`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// After a connection ends, what the client still sends is read and dropped for
/// this long, up to `LINGER_BYTES`, before the socket closes (nginx's
/// `lingering_close`). Closing a socket with unread bytes resets it, and a reset
/// can destroy the answer already sent: a client streaming an upload that was
/// refused half-way (413) would see "connection reset" instead.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 16 * 1024 * 1024;

/// Serve `app` on `listener` until `stop` is cancelled; then accept no more and
/// return once every open connection has finished its requests.
pub async fn serve(listener: TcpListener, app: Router, stop: CancellationToken) {
    let http = http1::Builder::new();
    let connections = TaskTracker::new();
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
            // Boxed: hyper hands the socket back only for services whose futures
            // are Unpin.
            Box::pin(app.clone().oneshot(request))
        });
        let mut connection = http.serve_connection(TokioIo::new(stream), service);
        let stop = stop.clone();
        connections.spawn(async move {
            let mut stopping = pin!(stop.cancelled());
            let mut closing = false;
            let done = std::future::poll_fn(|cx| {
                if !closing && stopping.as_mut().poll(cx).is_ready() {
                    closing = true;
                    Pin::new(&mut connection).graceful_shutdown();
                }
                connection.poll_without_shutdown(cx)
            })
            .await;
            match done {
                // At shutdown, close at once rather than wait for slow clients.
                Ok(()) if !closing => linger(connection.into_parts().io.into_inner()).await,
                Ok(()) => {}
                Err(e) => tracing::debug!(error = %e, %peer, "connection ended with an error"),
            }
        });
    }
    drop(listener);
    connections.close();
    connections.wait().await;
}

/// Tell the client the answer is complete, then read and drop what it still sends
/// until it closes too, for `LINGER` and `LINGER_BYTES` at most.
async fn linger(mut stream: TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let mut buffer = vec![0; 64 * 1024];
    let _ = tokio::time::timeout(LINGER, async {
        let mut read = 0;
        while read < LINGER_BYTES {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
}
