//! HTTPS and WSS on the node's one listener: a client trusting the self-signed certificate
//! registers, opens wss:// and chats; the certificate is kept and reused; a rotated
//! certificate reaches new connections while open ones keep working; plain HTTP on the TLS
//! port is answered 400 at once; the optional plain listener redirects to HTTPS.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use common::FAST_CONFIG;
use common::front_door::{
    WssClient, client_config, exchange, get, json_request, read_until_closed, server_cert,
    sha256_fingerprint, start_node, start_node_with, tls_connect,
};
use rcgen::{CertificateParams, KeyPair};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// An HTTPS request on a fresh connection: (status, head, JSON body).
async fn https(
    config: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Result<(u16, String, Value)> {
    let mut tls = tls_connect(config, addr, "localhost").await?;
    let host = format!("localhost:{}", addr.port());
    let (status, head, body) =
        exchange(&mut tls, &json_request(method, path, &host, token, &body)).await?;
    Ok((
        status,
        head,
        serde_json::from_str(&body).unwrap_or(Value::Null),
    ))
}

async fn register(
    config: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    name: &str,
) -> Result<(String, String)> {
    let (status, head, body) = https(
        config,
        addr,
        "POST",
        "/api/v1/auth/register",
        None,
        json!({"username": name, "email": format!("{name}@example.com"),
               "password": "password123", "confirmPassword": "password123"}),
    )
    .await?;
    if status != 201 {
        bail!("register {name}: {status} {body}");
    }
    assert!(
        head.to_ascii_lowercase()
            .contains("strict-transport-security: max-age="),
        "HSTS over TLS: {head}"
    );
    Ok((
        body["data"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        body["data"]["user"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ))
}

#[tokio::test]
async fn a_client_trusting_the_self_signed_certificate_registers_and_chats_over_wss() -> Result<()>
{
    let dir = tempfile::tempdir()?;
    let s = start_node(dir.path(), FAST_CONFIG, &["--tls-self-signed"]).await?;
    let addr = s.node.addr;
    let cert = dir.path().join("data/tls/self-signed.pem");
    let config = client_config(std::slice::from_ref(&cert))?;

    // The printed fingerprint is the one of the certificate served.
    let probe = tls_connect(&config, addr, "localhost").await?;
    let served = server_cert(&probe).expect("a certificate");
    assert_eq!(
        s.fingerprint.as_deref(),
        Some(sha256_fingerprint(&served).as_str())
    );
    // 127.0.0.1 is named too.
    tls_connect(&config, addr, "127.0.0.1").await?;

    let (alice, _) = register(&config, addr, "alice").await?;
    let (bob, _) = register(&config, addr, "bob").await?;
    let (status, _, room) = https(
        &config,
        addr,
        "POST",
        "/api/v1/rooms",
        Some(&alice),
        json!({"name": "secure", "maxUsers": 10, "settings": {}}),
    )
    .await?;
    assert_eq!(status, 201, "{room}");
    let room_id = room["data"]["id"].as_str().unwrap_or_default().to_owned();
    let code = room["data"]["joinCode"].as_str().unwrap_or_default();
    let (status, _, _) = https(
        &config,
        addr,
        "POST",
        &format!("/api/v1/rooms/{code}/join"),
        Some(&bob),
        json!({}),
    )
    .await?;
    assert_eq!(status, 200);

    let mut a = WssClient::connect(&config, addr, "localhost", &alice).await?;
    let mut b = WssClient::connect(&config, addr, "localhost", &bob).await?;
    for ws in [&mut a, &mut b] {
        let ack = ws.request("room:join", json!({"roomId": room_id})).await?;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let ack = a
        .request(
            "message:send",
            json!({"roomId": room_id, "content": "over wss"}),
        )
        .await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let got = b
        .wait_for(|v| v["type"] == "message:received" && v["data"]["content"] == "over wss")
        .await?;
    assert_eq!(got["data"]["roomId"], room_id.as_str());

    // The certificate is kept in the data dir and reused on restart (TLS asked for by the
    // environment this time).
    let first = std::fs::read(&cert)?;
    drop((a, b, probe));
    let mut node = s.node;
    node.terminate()?;
    let again = start_node_with(
        dir.path(),
        FAST_CONFIG,
        &[],
        &[("VOICEFLOW_TLS_SELF_SIGNED", "1")],
        None,
    )
    .await?;
    assert_eq!(std::fs::read(&cert)?, first);
    assert_eq!(again.fingerprint, s.fingerprint);
    Ok(())
}

/// Writes a new self-signed pair for `localhost` to `cert`/`key` (replacing them atomically,
/// as certificate tools do).
fn write_pair(cert: &Path, key: &Path) -> Result<Vec<u8>> {
    let pair = KeyPair::generate()?;
    let issued = CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&pair)?;
    let tmp_key = key.with_extension("tmp");
    std::fs::write(&tmp_key, pair.serialize_pem())?;
    std::fs::rename(&tmp_key, key)?;
    let tmp_cert = cert.with_extension("tmp");
    std::fs::write(&tmp_cert, issued.pem())?;
    std::fs::rename(&tmp_cert, cert)?;
    Ok(issued.der().to_vec())
}

/// Polls new TLS connections until one is served `want`.
async fn wait_for_cert(
    config: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    want: &[u8],
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(conn) = tls_connect(config, addr, "localhost").await
            && server_cert(&conn).as_deref() == Some(want)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the new certificate was never served");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rotation(reload_interval_secs: u64, by_sighup: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (cert, key): (PathBuf, PathBuf) =
        (dir.path().join("node.pem"), dir.path().join("node.key"));
    let old = write_pair(&cert, &key)?;
    let old_pem = dir.path().join("old.pem");
    std::fs::copy(&cert, &old_pem)?;
    let config = format!(
        "{FAST_CONFIG}[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n\
         reload_interval_secs = {reload_interval_secs}\n"
    );
    let s = start_node(dir.path(), &config, &[]).await?;
    let addr = s.node.addr;
    let trust_old = client_config(std::slice::from_ref(&old_pem))?;
    let (token, _) = register(&trust_old, addr, "rita").await?;
    let mut open = WssClient::connect(&trust_old, addr, "localhost", &token).await?;
    assert_eq!(open.server_cert().as_deref(), Some(old.as_slice()));

    let new = write_pair(&cert, &key)?;
    if by_sighup {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(s.node.pid() as i32),
            nix::sys::signal::Signal::SIGHUP,
        )?;
    }
    let trust_both = client_config(&[old_pem.clone(), cert.clone()])?;
    wait_for_cert(&trust_both, addr, &new).await?;
    // A client that only trusts the old certificate cannot connect any more...
    assert!(tls_connect(&trust_old, addr, "localhost").await.is_err());
    // ...but the connection opened before the rotation keeps working.
    let ack = open.request("ping", json!({})).await?;
    assert_eq!(ack["ok"], true, "{ack}");
    let fresh = WssClient::connect(&trust_both, addr, "localhost", &token).await?;
    assert_eq!(fresh.server_cert().as_deref(), Some(new.as_slice()));
    let stderr = s.stderr.lock().clone();
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}

#[tokio::test]
async fn a_changed_certificate_reaches_new_connections_while_open_ones_keep_going() -> Result<()> {
    rotation(1, false).await
}

#[tokio::test]
async fn sighup_reloads_the_certificate() -> Result<()> {
    // The file check is an hour away: only the signal can have done it.
    rotation(3600, true).await
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_prompt_400() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let s = start_node(dir.path(), FAST_CONFIG, &["--tls-self-signed"]).await?;
    let mut plain = TcpStream::connect(s.node.addr).await?;
    plain.write_all(&get("/healthz", "localhost")).await?;
    let started = Instant::now();
    let got = read_until_closed(&mut plain, Duration::from_secs(5)).await?;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400"), "{text:?}");
    assert!(text.contains("HTTPS"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn the_plain_listener_redirects_to_https() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = format!("{FAST_CONFIG}[tls]\nredirect_http_listen = \"127.0.0.1:0\"\n");
    let s = start_node(dir.path(), &config, &["--tls-self-signed"]).await?;
    let redirect = s.redirect.expect("the redirect listener's address");
    let mut plain = TcpStream::connect(redirect).await?;
    let (status, head, _) = exchange(
        &mut plain,
        &get(
            "/rooms/42?x=1",
            &format!("chat.example:{}", redirect.port()),
        ),
    )
    .await?;
    assert_eq!(status, 308, "{head}");
    let location = format!(
        "location: https://chat.example:{}/rooms/42?x=1",
        s.node.addr.port()
    );
    assert!(head.to_ascii_lowercase().contains(&location), "{head}");
    Ok(())
}

#[tokio::test]
async fn a_silent_connection_to_the_tls_port_is_closed_after_the_header_timeout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let config = format!("{FAST_CONFIG}[http]\nheader_read_timeout_secs = 1\n");
    let s = start_node(dir.path(), &config, &["--tls-self-signed"]).await?;
    // Nothing sent: not even a ClientHello.
    let mut silent = TcpStream::connect(s.node.addr).await?;
    read_until_closed(&mut silent, Duration::from_secs(8)).await?;
    // A handshake begun and never finished (half a ClientHello) is closed too.
    let mut half = TcpStream::connect(s.node.addr).await?;
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await?;
    read_until_closed(&mut half, Duration::from_secs(8)).await?;
    Ok(())
}
