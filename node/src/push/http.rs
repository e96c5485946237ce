//! One HTTPS POST to a push service: hyper's HTTP/1.1 client connection over tokio-rustls
//! (the workspace's aws-lc-rs provider; no OpenSSL), one connection per request. Push services
//! answer with no body that matters: only the status and `Retry-After` are read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// What a push service answered.
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After` in seconds, when given as a number.
    pub retry_after: Option<u64>,
}

/// A push service URL, split for connecting.
pub struct Endpoint {
    host: String,
    port: u16,
    /// The request target (path and query).
    path: String,
}

impl Endpoint {
    /// Parses an `https://host[:port]/path` URL (subscriptions were checked when stored).
    pub fn parse(url: &str) -> Result<Endpoint> {
        let rest = url.strip_prefix("https://").context("not https")?;
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || port.parse::<u16>().is_ok() => {
                (host, port.parse::<u16>().context("bad port")?)
            }
            _ => (authority, 443),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        anyhow::ensure!(!host.is_empty(), "no host");
        Ok(Endpoint {
            host: host.to_owned(),
            port,
            path: if path.starts_with('/') {
                path.to_owned()
            } else {
                format!("/{path}")
            },
        })
    }

    /// The origin (`https://host[:port]`), the VAPID audience.
    pub fn origin(&self) -> String {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            443 => format!("https://{host}"),
            port => format!("https://{host}:{port}"),
        }
    }
}

/// POSTs `body` with `headers` to `endpoint` within `timeout`.
pub async fn post(
    tls: &Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    headers: &[(&str, String)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Answer> {
    tokio::time::timeout(timeout, post_now(tls, endpoint, headers, body))
        .await
        .map_err(|_| anyhow!("timed out"))?
}

async fn post_now(
    tls: &Arc<rustls::ClientConfig>,
    endpoint: &Endpoint,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Answer> {
    let tcp = tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)).await?;
    let name = ServerName::try_from(endpoint.host.clone())?;
    let stream = TlsConnector::from(tls.clone()).connect(name, tcp).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(conn);
    let authority = match endpoint.port {
        443 => endpoint.host.clone(),
        port => format!("{}:{port}", endpoint.host),
    };
    let mut request = Request::post(endpoint.path.as_str()).header("host", authority);
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request.body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await;
    driver.abort();
    let response = response?;
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Ok(Answer {
        status: response.status().as_u16(),
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_split_into_host_port_and_path() {
        let e = Endpoint::parse("https://push.example/send/a?b=1").expect("plain");
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("push.example", 443, "/send/a?b=1")
        );
        assert_eq!(e.origin(), "https://push.example");
        let e = Endpoint::parse("https://localhost:8443/p").expect("port");
        assert_eq!(
            (e.port, e.origin().as_str()),
            (8443, "https://localhost:8443")
        );
        let e = Endpoint::parse("https://[::1]:9000/x").expect("ipv6");
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert!(Endpoint::parse("http://a/").is_err());
        assert!(Endpoint::parse("https://a:x/").is_err());
    }
}
