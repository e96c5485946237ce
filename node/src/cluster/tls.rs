//! Mutual TLS between cluster nodes: a private cluster CA signs one certificate per node, and
//! every QUIC connection between nodes authenticates both ends against that CA.
//!
//! - [`generate`] creates the CA (`ca.pem`, `ca.key`) and node certificates
//!   (`node-<id>.pem`, `node-<id>.key`) in a directory, keeping whatever already exists.
//! - [`quinn_configs`] builds the QUIC server and client configs of one node from its files.
//!
//! Every node certificate names [`SERVER_NAME`] (and `node-<id>`), so a node dials any peer as
//! [`SERVER_NAME`]; which node answered is learned from the cluster handshake, not from TLS.

use std::fs;
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol that stands for cluster protocol `version`. Version 7 keeps the name it
/// had when it was the only one, so a node of the previous release (which offers and accepts
/// only that name) and a node of this one agree on it.
pub fn alpn(version: u8) -> Vec<u8> {
    match version {
        7 => b"voiceflow-cluster/1".to_vec(),
        v => format!("voiceflow-cluster/v{v}").into_bytes(),
    }
}

/// The protocol version a connection's handshake settled on, if it is one of `versions`.
///
/// The dialler offers one ALPN protocol per version it speaks, and the acceptor picks the
/// first of its own list the dialler offered (rustls picks by the server's preference):
/// its highest. Negotiation cannot happen in the frames themselves, as a node of the previous
/// release closes a connection on the first frame of a version it does not speak.
pub fn negotiated(conn: &quinn::Connection, versions: RangeInclusive<u8>) -> Option<u8> {
    let protocol = conn
        .handshake_data()?
        .downcast::<quinn::crypto::rustls::HandshakeData>()
        .ok()?
        .protocol?;
    versions.rev().find(|v| alpn(*v) == protocol)
}

/// The DNS name every node certificate carries and every node dials its peers with.
pub const SERVER_NAME: &str = "voiceflow-node";

const VALIDITY: Duration = Duration::from_secs(3650 * 24 * 3600);
const CLOCK_SKEW: Duration = Duration::from_secs(24 * 3600);

/// Creates `dir` if needed, the cluster CA in it if `ca.pem` is missing (else loads it), and
/// `node-<id>.pem`/`node-<id>.key` for each id whose files are missing. Returns the files it
/// wrote; running it again writes nothing.
pub fn generate(dir: &Path, node_ids: &[u16]) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut created = Vec::new();
    let ca_pem = dir.join("ca.pem");
    let ca_key = dir.join("ca.key");
    let issuer = if ca_pem.exists() {
        let pem = fs::read_to_string(&ca_pem)
            .with_context(|| format!("cannot read cluster CA certificate {}", ca_pem.display()))?;
        let key_pem = fs::read_to_string(&ca_key)
            .with_context(|| format!("cannot read cluster CA key {}", ca_key.display()))?;
        let key = KeyPair::from_pem(&key_pem)
            .with_context(|| format!("invalid cluster CA key {}", ca_key.display()))?;
        Issuer::from_ca_cert_pem(&pem, key)
            .with_context(|| format!("invalid cluster CA certificate {}", ca_pem.display()))?
    } else {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("voiceflow cluster CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params)?;
        let cert = params.self_signed(&key)?;
        write_file(&ca_key, &key.serialize_pem(), true)?;
        write_file(&ca_pem, &cert.pem(), false)?;
        created.extend([ca_pem, ca_key]);
        Issuer::new(params, key)
    };
    for &id in node_ids {
        let pem = dir.join(format!("node-{id}.pem"));
        let key_path = dir.join(format!("node-{id}.key"));
        if pem.exists() && key_path.exists() {
            continue;
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::new(vec![
            SERVER_NAME.to_owned(),
            format!("node-{id}"),
            "127.0.0.1".to_owned(),
        ])?;
        params.distinguished_name = name(&format!("voiceflow node {id}"));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params)?;
        let cert = params.signed_by(&key, &issuer)?;
        write_file(&key_path, &key.serialize_pem(), true)?;
        write_file(&pem, &cert.pem(), false)?;
        created.extend([pem, key_path]);
    }
    Ok(created)
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Valid from a day ago (clock skew between machines) for ten years.
pub(crate) fn set_validity(params: &mut CertificateParams) -> anyhow::Result<()> {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| anyhow!("the system clock is before 1970"))?;
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - CLOCK_SKEW;
    params.not_after = now + VALIDITY;
    Ok(())
}

/// Writes `text` to `path` (replacing it); private files get mode 0600.
pub(crate) fn write_file(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open; tighten it before writing the key.
        if path.exists() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot chmod {}", path.display()))?;
        }
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn read_certs(path: &Path, what: &str) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "cannot read {what} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

/// The QUIC server and client configs of a node: mutual TLS 1.3 where both ends must present a
/// certificate signed by the CA in `ca`; this node presents `cert` (with its key `key`), and
/// offers and accepts the cluster protocol `versions` (highest preferred, see [`negotiated`]).
pub fn quinn_configs(
    ca: &Path,
    cert: &Path,
    key: &Path,
    idle_timeout: Duration,
    versions: RangeInclusive<u8>,
) -> anyhow::Result<(quinn::ServerConfig, quinn::ClientConfig)> {
    let alpns: Vec<Vec<u8>> = versions.rev().map(alpn).collect();
    let mut roots = rustls::RootCertStore::empty();
    for ca_cert in read_certs(ca, "cluster CA certificate")? {
        roots
            .add(ca_cert)
            .with_context(|| format!("invalid cluster CA certificate {}", ca.display()))?;
    }
    let roots = Arc::new(roots);
    let chain = read_certs(cert, "node certificate")?;
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read node private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());

    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .context("cannot build the client certificate verifier")?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key_der.clone_key())
        .with_context(|| {
            format!(
                "node certificate {} does not go with private key {}",
                cert.display(),
                key.display()
            )
        })?;
    server.alpn_protocols = alpns.clone();

    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key_der)
        .with_context(|| {
            format!(
                "node certificate {} does not go with private key {}",
                cert.display(),
                key.display()
            )
        })?;
    client.alpn_protocols = alpns;

    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(16_384))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(64))
        .keep_alive_interval(Some(Duration::from_secs(1)))
        .max_idle_timeout(Some(
            idle_timeout.try_into().context("idle timeout too long")?,
        ))
        .stream_receive_window(quinn::VarInt::from_u32(1 << 20))
        .receive_window(quinn::VarInt::from_u32(16 << 20))
        .send_window(16 << 20);
    let transport = Arc::new(transport);

    let mut server_config =
        quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server)?));
    server_config.transport_config(transport.clone());
    let mut client_config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client)?));
    client_config.transport_config(transport);
    Ok((server_config, client_config))
}

/// The node id a connected peer's certificate names (its `node-<id>` DNS name): a node is
/// who its CA-signed certificate says, not what its hello claims.
pub fn peer_node_id(conn: &quinn::Connection) -> Option<u16> {
    let identity = conn.peer_identity()?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .ok()?;
    node_id_in_cert(certs.first()?)
}

/// The `node-<id>` DNS name of a DER certificate.
pub fn node_id_in_cert(der: &[u8]) -> Option<u16> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        x509_parser::extensions::GeneralName::DNSName(dns) => {
            dns.strip_prefix("node-")?.parse().ok()
        }
        _ => None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::SocketAddr;
    use voiceflow_wire::cluster::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};

    use super::*;

    const LIMIT: Duration = Duration::from_secs(4);

    const ALL: RangeInclusive<u8> = MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION;

    fn configs_of(
        dir: &Path,
        id: u16,
        versions: RangeInclusive<u8>,
    ) -> (quinn::ServerConfig, quinn::ClientConfig) {
        quinn_configs(
            &dir.join("ca.pem"),
            &dir.join(format!("node-{id}.pem")),
            &dir.join(format!("node-{id}.key")),
            Duration::from_secs(5),
            versions,
        )
        .unwrap()
    }

    fn server_of(dir: &Path, id: u16, versions: RangeInclusive<u8>) -> quinn::Endpoint {
        let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
        quinn::Endpoint::server(configs_of(dir, id, versions).0, loopback).unwrap()
    }

    fn server(dir: &Path, id: u16) -> quinn::Endpoint {
        server_of(dir, id, ALL)
    }

    fn client_of(dir: &Path, id: u16, versions: RangeInclusive<u8>) -> quinn::Endpoint {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(configs_of(dir, id, versions).1);
        endpoint
    }

    fn client(dir: &Path, id: u16) -> quinn::Endpoint {
        client_of(dir, id, ALL)
    }

    /// The version a dialler speaking `dialler` and an acceptor speaking `acceptor` settle on,
    /// as each side sees it (`None`: the handshake failed).
    async fn negotiate(
        dialler: RangeInclusive<u8>,
        acceptor: RangeInclusive<u8>,
    ) -> Option<(Option<u8>, Option<u8>)> {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[1, 2]).unwrap();
        let server = server_of(dir.path(), 1, acceptor.clone());
        let addr = server.local_addr().unwrap();
        let client = client_of(dir.path(), 2, dialler.clone());
        let accept = tokio::spawn(async move {
            let conn = server.accept().await?.await.ok()?;
            Some(negotiated(&conn, acceptor))
        });
        let run = async {
            let conn = client.connect(addr, SERVER_NAME).unwrap().await.ok()?;
            let ours = negotiated(&conn, dialler);
            let theirs = accept.await.ok()??;
            Some((ours, theirs))
        };
        tokio::time::timeout(LIMIT, run).await.ok()?
    }

    #[tokio::test]
    async fn nodes_speak_the_highest_version_both_know() {
        let v = PROTOCOL_VERSION;
        // A node of this release with one of the previous (7 only), either way round.
        assert_eq!(negotiate(ALL, 7..=7).await, Some((Some(7), Some(7))));
        assert_eq!(negotiate(7..=7, ALL).await, Some((Some(7), Some(7))));
        // Two nodes of this release; and one held back with `protocol_max = 7`.
        assert_eq!(negotiate(ALL, ALL).await, Some((Some(v), Some(v))));
        assert_eq!(negotiate(ALL, 7..=7).await, Some((Some(7), Some(7))));
        // Nothing in common: no connection.
        assert_eq!(negotiate(v..=v, 7..=7).await, None);
        assert_eq!(alpn(7), b"voiceflow-cluster/1");
    }

    #[test]
    fn a_certificate_names_its_node() {
        use rustls::pki_types::pem::PemObject;
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[7]).unwrap();
        let der = rustls::pki_types::CertificateDer::from_pem_file(dir.path().join("node-7.pem"))
            .unwrap();
        assert_eq!(node_id_in_cert(&der), Some(7));
        let ca =
            rustls::pki_types::CertificateDer::from_pem_file(dir.path().join("ca.pem")).unwrap();
        assert_eq!(node_id_in_cert(&ca), None, "the CA is no node");
        assert_eq!(node_id_in_cert(b"garbage"), None);
    }

    #[test]
    fn generate_is_idempotent_and_reuses_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let first = generate(dir.path(), &[1, 2]).unwrap();
        assert_eq!(first.len(), 6);
        let ca = fs::read(dir.path().join("ca.pem")).unwrap();
        let node1 = fs::read(dir.path().join("node-1.pem")).unwrap();
        assert!(generate(dir.path(), &[1, 2]).unwrap().is_empty());
        let more = generate(dir.path(), &[2, 3]).unwrap();
        assert_eq!(
            more,
            vec![dir.path().join("node-3.pem"), dir.path().join("node-3.key")]
        );
        assert_eq!(fs::read(dir.path().join("ca.pem")).unwrap(), ca);
        assert_eq!(fs::read(dir.path().join("node-1.pem")).unwrap(), node1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in ["ca.key", "node-1.key", "node-3.key"] {
                let mode = fs::metadata(dir.path().join(key))
                    .unwrap()
                    .permissions()
                    .mode();
                assert_eq!(mode & 0o777, 0o600, "{key}");
            }
        }
    }

    #[test]
    fn errors_name_the_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), &[1]).unwrap();
        let missing = dir.path().join("node-9.pem");
        let err = quinn_configs(
            &dir.path().join("ca.pem"),
            &missing,
            &dir.path().join("node-1.key"),
            LIMIT,
            ALL,
        )
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("cannot read node certificate"), "{text}");
        assert!(text.contains(&missing.display().to_string()), "{text}");
    }

    #[tokio::test]
    async fn nodes_of_one_ca_connect_and_exchange_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // Node 2 is signed by the CA loaded back from disk, node 1 by the freshly made one.
        generate(dir.path(), &[1]).unwrap();
        generate(dir.path(), &[2]).unwrap();
        let server = server(dir.path(), 1);
        let addr = server.local_addr().unwrap();
        let client = client(dir.path(), 2);
        let accept = tokio::spawn(async move {
            let conn = server.accept().await.unwrap().await.unwrap();
            let mut stream = conn.accept_uni().await.unwrap();
            let bytes = stream.read_to_end(1024).await.unwrap();
            let alpn = conn
                .handshake_data()
                .and_then(|h| h.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                .and_then(|h| h.protocol);
            (bytes, alpn)
        });
        let run = async {
            let conn = client.connect(addr, SERVER_NAME).unwrap().await.unwrap();
            let mut stream = conn.open_uni().await.unwrap();
            stream.write_all(b"hello peer").await.unwrap();
            stream.finish().unwrap();
            accept.await.unwrap()
        };
        let (bytes, alpn) = tokio::time::timeout(LIMIT, run).await.unwrap();
        assert_eq!(bytes, b"hello peer");
        assert_eq!(alpn, Some(super::alpn(PROTOCOL_VERSION)));
    }

    #[tokio::test]
    async fn a_client_of_another_ca_is_refused() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        generate(ours.path(), &[1]).unwrap();
        generate(theirs.path(), &[2]).unwrap();
        let server = server(ours.path(), 1);
        let addr = server.local_addr().unwrap();
        // The stranger trusts our CA (so only the server's check can refuse it).
        let stranger_cfg = quinn_configs(
            &ours.path().join("ca.pem"),
            &theirs.path().join("node-2.pem"),
            &theirs.path().join("node-2.key"),
            Duration::from_secs(5),
            ALL,
        )
        .unwrap()
        .1;
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(stranger_cfg);
        let accepted = tokio::spawn(async move {
            let incoming = server.accept().await.unwrap();
            incoming.await.is_ok()
        });
        let run = async {
            // In TLS 1.3 the client may finish its side before the server rejects its
            // certificate; then the connection closes right after.
            let client_failed = match client.connect(addr, SERVER_NAME).unwrap().await {
                Err(_) => true,
                Ok(conn) => {
                    let mut stream = conn.open_uni().await.unwrap();
                    let _ = stream.write_all(b"let me in").await;
                    let _ = stream.finish();
                    conn.closed().await;
                    true
                }
            };
            (client_failed, accepted.await.unwrap())
        };
        let (client_failed, server_accepted) = tokio::time::timeout(LIMIT, run).await.unwrap();
        assert!(client_failed);
        assert!(
            !server_accepted,
            "the server accepted a foreign certificate"
        );
    }

    #[tokio::test]
    async fn a_server_of_another_ca_is_refused() {
        let ours = tempfile::tempdir().unwrap();
        let theirs = tempfile::tempdir().unwrap();
        generate(ours.path(), &[1]).unwrap();
        generate(theirs.path(), &[2]).unwrap();
        let server = server(theirs.path(), 2);
        let addr = server.local_addr().unwrap();
        let client = client(ours.path(), 1);
        let _accept = tokio::spawn(async move {
            if let Some(incoming) = server.accept().await {
                let _ = incoming.await;
            }
        });
        let result = tokio::time::timeout(LIMIT, client.connect(addr, SERVER_NAME).unwrap())
            .await
            .unwrap();
        assert!(result.is_err(), "the client accepted a foreign server");
    }
}
