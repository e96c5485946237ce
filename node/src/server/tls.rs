//! HTTPS/WSS on the node's listener: the certificate (from `[tls] cert_file`/`key_file`, or
//! self-signed and kept in the data dir), swapped in place when its files change or on SIGHUP.
//!
//! [`ReloadingCert`] is the rustls certificate resolver: each handshake takes the current
//! certificate, so a reload affects new connections only and open ones keep going.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use parking_lot::RwLock;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;

/// Where the certificate comes from.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// The certificate resolver whose certificate can be replaced while connections are open.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// Modification times and sizes of the files when last loaded.
    stamp: RwLock<Option<(FileStamp, FileStamp)>>,
}

type FileStamp = (SystemTime, u64);

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

impl ReloadingCert {
    /// Loads the files (failing start-up if they are unusable).
    pub fn load(files: CertFiles) -> anyhow::Result<Arc<ReloadingCert>> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let stamp = stamps(&files);
        let key = load_pair(&files, &provider)?;
        Ok(Arc::new(ReloadingCert {
            files,
            provider,
            current: RwLock::new(Arc::new(key)),
            stamp: RwLock::new(stamp),
        }))
    }

    /// The SHA-256 fingerprint of the current leaf certificate (`AB:CD:…`).
    pub fn fingerprint(&self) -> String {
        let current = self.current.read().clone();
        current
            .cert
            .first()
            .map(|der| fingerprint(der))
            .unwrap_or_default()
    }

    /// Re-reads the files if they changed since the last load (`force`: even if not). A bad
    /// new pair is logged and the old certificate stays. Returns whether it changed.
    pub fn reload(&self, force: bool) -> bool {
        let stamp = stamps(&self.files);
        if !force && stamp == *self.stamp.read() {
            return false;
        }
        match load_pair(&self.files, &self.provider) {
            Ok(key) => {
                let fp = key.cert.first().map(|der| fingerprint(der));
                *self.current.write() = Arc::new(key);
                *self.stamp.write() = stamp;
                tracing::info!(
                    cert = %self.files.cert.display(),
                    fingerprint = fp.as_deref().unwrap_or(""),
                    "TLS certificate reloaded"
                );
                true
            }
            Err(e) => {
                // Half-written files (cert replaced, key not yet) land here; the next check
                // tries again.
                tracing::warn!(
                    error = format!("{e:#}"),
                    "TLS certificate not reloaded; keeping the old one"
                );
                false
            }
        }
    }

    /// The server config: TLS 1.2 and 1.3, HTTP/1.1 only (WebSocket upgrades need it).
    pub fn server_config(self: &Arc<Self>) -> anyhow::Result<rustls::ServerConfig> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }

    /// Checks the files every `interval` and on SIGHUP, until the process ends.
    pub fn watch(self: &Arc<Self>, interval: Duration) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            #[cfg(unix)]
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                #[cfg(unix)]
                let force = tokio::select! {
                    _ = tick.tick() => false,
                    Some(()) = async {
                        match hangup.as_mut() {
                            Some(h) => h.recv().await,
                            None => std::future::pending().await,
                        }
                    } => true,
                };
                #[cfg(not(unix))]
                let force = {
                    tick.tick().await;
                    false
                };
                let Some(me) = me.upgrade() else { return };
                let files = me.clone();
                // File reads off the runtime's worker threads.
                let _ = tokio::task::spawn_blocking(move || files.reload(force)).await;
            }
        });
    }
}

fn stamps(files: &CertFiles) -> Option<(FileStamp, FileStamp)> {
    let stamp = |p: &Path| {
        let m = std::fs::metadata(p).ok()?;
        Some((m.modified().ok()?, m.len()))
    };
    Some((stamp(&files.cert)?, stamp(&files.key)?))
}

fn load_pair(files: &CertFiles, provider: &CryptoProvider) -> anyhow::Result<CertifiedKey> {
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read TLS certificate {}", files.cert.display()))?;
    if chain.is_empty() {
        return Err(anyhow!(
            "TLS certificate {} holds no PEM certificate",
            files.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("cannot read TLS private key {}", files.key.display()))?;
    CertifiedKey::from_der(chain, key, provider).with_context(|| {
        format!(
            "TLS certificate {} does not go with private key {}",
            files.cert.display(),
            files.key.display()
        )
    })
}

/// SHA-256 of a DER certificate as colon-separated hex, the form browsers and `openssl x509
/// -fingerprint -sha256` show.
pub fn fingerprint(der: &[u8]) -> String {
    // The hash of a TLS 1.3 suite of the one crypto provider: no extra crate for one digest.
    let hash = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .map(|suite| suite.common.hash_provider.hash(der));
    hash.map(|h| {
        h.as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":")
    })
    .unwrap_or_default()
}

/// The certificate files in effect: `cert_file`/`key_file`, or the self-signed pair in
/// `<data_dir>/tls/` (created, or re-created when it does not cover the names needed).
pub fn cert_files(
    tls: &TlsConfig,
    data_dir: &Path,
    listen: SocketAddr,
) -> anyhow::Result<Option<CertFiles>> {
    if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
        return Ok(Some(CertFiles {
            cert: cert.clone(),
            key: key.clone(),
        }));
    }
    if !tls.self_signed {
        return Ok(None);
    }
    let dir = data_dir.join("tls");
    let files = CertFiles {
        cert: dir.join("self-signed.pem"),
        key: dir.join("self-signed.key"),
    };
    let names = self_signed_names(listen.ip(), &tls.self_signed_names);
    if files.key.exists() && covers(&files.cert, &names) {
        return Ok(Some(files));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params =
        CertificateParams::new(names.clone()).context("self-signed certificate names")?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "voiceflow node (self-signed)");
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    crate::cluster::tls::set_validity(&mut params)?;
    let cert = params.self_signed(&key)?;
    crate::cluster::tls::write_file(&files.key, &key.serialize_pem(), true)?;
    crate::cluster::tls::write_file(&files.cert, &cert.pem(), false)?;
    tracing::info!(cert = %files.cert.display(), names = ?names, "generated a self-signed TLS certificate");
    Ok(Some(files))
}

/// `localhost` and the loopback addresses, the listen address unless it is a wildcard, and
/// the configured extras.
fn self_signed_names(listen: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !listen.is_unspecified() {
        names.push(listen.to_string());
    }
    names.extend(extra.iter().cloned());
    names.dedup();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));
    names
}

/// Whether the PEM certificate at `path` names every one of `names`.
fn covers(path: &Path, names: &[String]) -> bool {
    let Ok(der) = CertificateDer::from_pem_file(path) else {
        return false;
    };
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(&der) else {
        return false;
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return false;
    };
    let have: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
            x509_parser::extensions::GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                16 => <[u8; 16]>::try_from(*bytes)
                    .ok()
                    .map(|b| IpAddr::from(b).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    names.iter().all(|n| have.contains(n))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_is_created_once_and_reused_while_it_covers_the_names() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            self_signed: true,
            ..TlsConfig::default()
        };
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let files = cert_files(&tls, dir.path(), listen).unwrap().unwrap();
        let first = std::fs::read(&files.cert).unwrap();
        let cert = ReloadingCert::load(files.clone()).unwrap();
        assert_eq!(cert.fingerprint().len(), 32 * 3 - 1);
        cert_files(&tls, dir.path(), listen).unwrap();
        assert_eq!(std::fs::read(&files.cert).unwrap(), first, "reused");
        let wider = TlsConfig {
            self_signed_names: vec!["chat.example".into()],
            ..tls
        };
        cert_files(&wider, dir.path(), listen).unwrap();
        assert_ne!(
            std::fs::read(&files.cert).unwrap(),
            first,
            "a new name, a new cert"
        );
        assert!(covers(&files.cert, &["chat.example".into(), "::1".into()]));
    }

    #[test]
    fn a_bad_replacement_keeps_the_old_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsConfig {
            self_signed: true,
            ..TlsConfig::default()
        };
        let files = cert_files(&tls, dir.path(), "127.0.0.1:0".parse().unwrap())
            .unwrap()
            .unwrap();
        let cert = ReloadingCert::load(files.clone()).unwrap();
        let before = cert.fingerprint();
        std::fs::write(&files.cert, "not a certificate").unwrap();
        assert!(!cert.reload(true));
        assert_eq!(cert.fingerprint(), before);
    }
}
