//! HTTP clients that only talk to loopback addresses: reqwest for TLS and JSON, and
//! two lean HTTP/1.1 exchanges over a plain socket where the client's own cost must
//! stay small beside the server's.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};

/// A client for `base`, which must be on the loopback interface.
pub fn client(base: &str, insecure_tls: bool) -> anyhow::Result<reqwest::Client> {
    let url = reqwest::Url::parse(base).with_context(|| format!("bad URL {base}"))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        _ => false,
    };
    if !loopback {
        bail!("the load tools only talk to loopback addresses, not {base}");
    }
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(600))
        .danger_accept_invalid_certs(insecure_tls)
        .build()?)
}

/// One GET over a fresh connection; the status code, or None if nobody listens.
/// Short timeouts: `load start` polls with it every half millisecond.
// Not `ferry healthcheck`'s probe: that one waits up to 3 s and explains failures,
// this one is polled every half millisecond and only needs the status.
pub fn probe(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.set_nodelay(true).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// GET over HTTP/1.1 into a 1 MiB buffer; the body is counted and dropped. Without
/// a token the path carries its own authorisation (a presigned URL's query).
pub fn raw_get(addr: SocketAddr, path: &str, token: Option<&str>) -> anyhow::Result<u64> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"
    )?;
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    let head_end = loop {
        let n = s.read(&mut buf[filled..])?;
        if n == 0 {
            bail!("the connection closed in the headers");
        }
        filled += n;
        if let Some(p) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        if filled == buf.len() {
            bail!("headers larger than 1 MiB");
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        bail!("download answered {}", head.lines().next().unwrap_or(""));
    }
    let len: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .context("download without Content-Length")?;
    let mut got = (filled - head_end) as u64;
    while got < len {
        let n = s.read(&mut buf)?;
        if n == 0 {
            bail!("the connection closed after {got} of {len} bytes");
        }
        got += n as u64;
    }
    Ok(got)
}
