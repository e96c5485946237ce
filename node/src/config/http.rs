//! The `[http]` table (timeouts and caps of the front door's connections, allowed origins) and
//! the `[tls]` table (HTTPS/WSS on the one listener).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How connections to the HTTP/WebSocket listener are timed out and capped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Browser origins (`https://chat.example.com`) allowed to open `/ws` and to make
    /// cross-origin REST calls (CORS preflights are answered for these only). The node's own
    /// origin (the `Host` a request came to, over the scheme in use) is always allowed, and so
    /// are clients that send no `Origin` (non-browser clients). Others get 403.
    pub allowed_origins: Vec<String>,
    /// A request head (request line and headers) must arrive completely within this many
    /// seconds of its first byte; a new connection must start its first request within this
    /// time too. Slower senders are disconnected.
    pub header_read_timeout_secs: u64,
    /// A keep-alive connection idle between requests for this long is closed, seconds.
    pub keep_alive_idle_secs: u64,
    /// Largest request head (request line and headers), bytes; larger ones get 431.
    pub max_header_bytes: usize,
    /// Open connections from one client IP address (WebSockets included); more are refused
    /// with 429 (plain HTTP) or closed. Addresses in `[limits] trusted_proxies` are exempt.
    /// Never more than half of the connections the descriptor limit allows.
    pub max_connections_per_ip: usize,
    /// Open connections that have not yet authenticated (no request on them has carried a
    /// valid token yet), over all clients; more are refused with 503 until some finish.
    pub max_unauthenticated_connections: usize,
    /// File descriptors kept free for storage, uploads and the cluster: new connections are
    /// refused (503) once open connections reach the process's descriptor limit minus this.
    /// At start the soft `RLIMIT_NOFILE` is raised to the hard limit when allowed.
    pub fd_reserve: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            allowed_origins: Vec::new(),
            header_read_timeout_secs: 10,
            keep_alive_idle_secs: 60,
            max_header_bytes: 32 * 1024,
            max_connections_per_ip: 256,
            max_unauthenticated_connections: 4096,
            fd_reserve: 256,
        }
    }
}

impl HttpConfig {
    /// The header read timeout.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_secs(self.header_read_timeout_secs)
    }

    /// The keep-alive idle timeout.
    pub fn keep_alive_idle(&self) -> Duration {
        Duration::from_secs(self.keep_alive_idle_secs)
    }

    /// Rejects values that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.header_read_timeout_secs == 0 || self.keep_alive_idle_secs == 0 {
            return Err("http timeouts must be positive".into());
        }
        // hyper's smallest read buffer; a limit below it could not be enforced.
        if self.max_header_bytes < 8192 {
            return Err("http.max_header_bytes must be at least 8192".into());
        }
        if self.max_connections_per_ip == 0 || self.max_unauthenticated_connections == 0 {
            return Err("http connection caps must be positive".into());
        }
        for origin in &self.allowed_origins {
            if !(origin.starts_with("http://") || origin.starts_with("https://"))
                || origin.trim_end_matches('/').matches('/').count() != 2
            {
                return Err(format!(
                    "http.allowed_origins: {origin:?} is not an origin (scheme://host[:port])"
                ));
            }
        }
        Ok(())
    }
}

/// HTTPS and WSS on the node's listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain (leaf first). With `key_file`, the listener speaks TLS only. The
    /// files are re-read when they change (checked every `reload_interval_secs`) and on SIGHUP;
    /// open connections keep the certificate they started with.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `cert_file`.
    pub key_file: Option<PathBuf>,
    /// Generate a self-signed certificate for the listen address (and `localhost`), kept in
    /// `<data_dir>/tls/` and reused; its SHA-256 fingerprint is printed at start. For a quick
    /// start or tests; browsers warn about it. (Flag `--tls-self-signed`, env
    /// `VOICEFLOW_TLS_SELF_SIGNED`.)
    pub self_signed: bool,
    /// Extra DNS names or IP addresses the self-signed certificate should cover.
    pub self_signed_names: Vec<String>,
    /// When set, plain HTTP on this address answers every request with a 308 redirect to the
    /// same path over HTTPS.
    pub redirect_http_listen: Option<SocketAddr>,
    /// `max-age` of the `Strict-Transport-Security` header sent when TLS is on, seconds
    /// (0: no header).
    pub hsts_max_age_secs: u64,
    /// How often the certificate files are checked for changes, seconds.
    pub reload_interval_secs: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert_file: None,
            key_file: None,
            self_signed: false,
            self_signed_names: Vec::new(),
            redirect_http_listen: None,
            hsts_max_age_secs: 365 * 24 * 3600,
            reload_interval_secs: 10,
        }
    }
}

impl TlsConfig {
    /// Whether the listener speaks TLS.
    pub fn enabled(&self) -> bool {
        self.self_signed || self.cert_file.is_some()
    }

    /// Rejects combinations that cannot work.
    pub fn validate(&self) -> Result<(), String> {
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err("tls.cert_file and tls.key_file go together".into());
        }
        if self.self_signed && self.cert_file.is_some() {
            return Err("tls.self_signed and tls.cert_file exclude each other".into());
        }
        if self.redirect_http_listen.is_some() && !self.enabled() {
            return Err("tls.redirect_http_listen needs TLS (cert_file or self_signed)".into());
        }
        if self.reload_interval_secs == 0 {
            return Err("tls.reload_interval_secs must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_do_not() {
        HttpConfig::default().validate().expect("http defaults");
        TlsConfig::default().validate().expect("tls defaults");
        let small = HttpConfig {
            max_header_bytes: 100,
            ..HttpConfig::default()
        };
        assert!(small.validate().is_err());
        let path = HttpConfig {
            allowed_origins: vec!["https://a.example/x".into()],
            ..HttpConfig::default()
        };
        assert!(path.validate().is_err());
        let ok = HttpConfig {
            allowed_origins: vec!["https://a.example:8443".into()],
            ..HttpConfig::default()
        };
        ok.validate().expect("an origin with a port");
        let half = TlsConfig {
            cert_file: Some("a.pem".into()),
            ..TlsConfig::default()
        };
        assert!(half.validate().is_err());
        let redirect = TlsConfig {
            redirect_http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 80))),
            ..TlsConfig::default()
        };
        assert!(redirect.validate().is_err(), "a redirect needs TLS");
    }
}
