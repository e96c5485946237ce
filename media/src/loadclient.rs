//! A light load client for `sfubench` (`light=1`): the same sans-IO core as the server
//! (`rtc`) for ICE and DTLS, one task and one socket per participant, no interceptors, one
//! shared DTLS certificate; media bypasses `rtc` both ways, as on the server's fast path:
//! packets are written and encrypted with the connection's tapped SRTP keys, and received
//! packets are counted from their (clear) RTP header without being decrypted, the send time
//! riding in the RTP timestamp (microseconds, which the server forwards unchanged). The
//! webrtc-rs peers of [`crate::testing`] cost a handful of tasks and timers each plus the full
//! `rtc`-like per-packet path; a thousand of them took more than the core the server leaves on
//! a 2-core machine. Speaks the signalling of [`Channel`] like any client.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::certificate::RTCCertificate;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::RTCPeerConnectionEvent;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::MediaError;
use crate::demux::{self, Kind};
use crate::engine::opus_codec;
use crate::plane::srtp::{KeyTap, Rollover, Srtp, write_header};
use crate::sfu::{Channel, PeerId, Rights, SfuEvent};
use crate::testing::Measured;

/// One light participant, as the bench sees it.
pub struct LightClient {
    /// The participant id.
    pub id: PeerId,
    /// Delays, connection and first-audio times.
    pub measured: Arc<Measured>,
    /// When each step of the join happened, as this client saw it.
    pub phases: Arc<Phases>,
    speaking: Arc<AtomicBool>,
}

/// The steps of a light client's join between the answer and the first audio.
#[derive(Debug, Default)]
pub struct Phases {
    /// The server's first STUN datagram (its response to a check) arrived.
    pub ice_answered: std::sync::OnceLock<Instant>,
    /// The server's first DTLS flight (its ClientHello: it is the DTLS client) arrived.
    pub dtls_first: std::sync::OnceLock<Instant>,
    /// The server's first renegotiation offer (the legs to hear the others) arrived.
    pub offer: std::sync::OnceLock<Instant>,
}

impl LightClient {
    /// Starts sending 50 packets/s once connected.
    pub fn speak(&self) {
        self.speaking.store(true, Ordering::Relaxed);
    }
}

/// A channel whose server offers reach its light clients.
pub struct LightRoom {
    /// The channel.
    pub channel: Channel,
    clients: parking_lot::Mutex<HashMap<PeerId, mpsc::UnboundedSender<String>>>,
    /// When the server reported each participant's connection up (ICE and DTLS done on its
    /// side).
    pub server_connected: parking_lot::Mutex<HashMap<PeerId, Instant>>,
}

/// Whether participant `id`'s datagrams are traced (`SFUBENCH_TRACE=1`: everyone's;
/// `SFUBENCH_TRACE=id=N`: participant N's only).
fn trace(id: PeerId) -> bool {
    static WHO: std::sync::OnceLock<Option<Option<PeerId>>> = std::sync::OnceLock::new();
    match WHO.get_or_init(|| {
        let v = std::env::var("SFUBENCH_TRACE").ok()?;
        Some(v.strip_prefix("id=").and_then(|n| n.parse().ok()))
    }) {
        None => false,
        Some(None) => true,
        Some(Some(who)) => *who == id,
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

impl LightRoom {
    /// A channel on `plane` and the task routing its server offers.
    pub fn start(plane: &crate::MediaPlane) -> Arc<LightRoom> {
        let (channel, mut events) = Channel::new(plane);
        let room = Arc::new(LightRoom {
            channel,
            clients: parking_lot::Mutex::new(HashMap::new()),
            server_connected: parking_lot::Mutex::new(HashMap::new()),
        });
        let me = room.clone();
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                match event {
                    SfuEvent::Offer { peer, sdp } => {
                        if let Some(tx) = me.clients.lock().get(&peer) {
                            let _ = tx.send(sdp);
                        }
                    }
                    SfuEvent::Connected { peer } => {
                        me.server_connected.lock().insert(peer, Instant::now());
                    }
                    // The answer names the server's one candidate; trickled ones are the same.
                    SfuEvent::Candidate { .. }
                    | SfuEvent::Speaking { .. }
                    | SfuEvent::Failed { .. } => {}
                }
            }
        });
        room
    }

    /// A light client joins with `rights`; returns once the server answered and synced.
    pub async fn join(
        self: &Arc<Self>,
        id: PeerId,
        rights: Rights,
        certificate: &parking_lot::Mutex<Option<RTCCertificate>>,
    ) -> Result<LightClient, MediaError> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| MediaError::WebRtc(e.to_string()))?;
        let local = socket
            .local_addr()
            .map_err(|e| MediaError::WebRtc(e.to_string()))?;
        let now = Instant::now();
        let mut engine = MediaEngine::default();
        engine
            .register_codec(
                RTCRtpCodecParameters {
                    rtp_codec: opus_codec(),
                    payload_type: 111,
                },
                RtpCodecKind::Audio,
            )
            .map_err(MediaError::webrtc)?;
        // One certificate for every client: key generation per client is not what is measured.
        let shared = {
            let mut shared = certificate.lock();
            if shared.is_none() {
                *shared = Some(crate::plane::node_certificate()?);
            }
            shared.clone()
        };
        let configuration =
            RTCConfigurationBuilder::new().with_certificates(shared.into_iter().collect());
        let tap = KeyTap::new().map_err(MediaError::webrtc)?;
        // Browsers send their first connectivity check as soon as they have the server's
        // candidate; `rtc`'s agent would wait its 200 ms check interval first.
        let settings = SettingEngineBuilder::new()
            .with_ice_connection_attempts(Some(Duration::from_millis(20)), Some(50))
            .with_crypto_provider(tap.clone())
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .build();
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration.build())
            .with_setting_engine(settings)
            .with_media_engine(engine)
            .build(now)
            .map_err(MediaError::webrtc)?;
        let ssrc: u32 = rand::random();
        let track = MediaStreamTrack::new(
            format!("mic-{id}"),
            format!("mic-{id}"),
            format!("mic {id}"),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(),
                ..Default::default()
            }],
        );
        pc.add_track(track).map_err(MediaError::webrtc)?;
        let offer = pc.create_offer(None).map_err(MediaError::sdp)?;
        pc.set_local_description(now, offer)
            .map_err(MediaError::sdp)?;
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: local.ip().to_string(),
                port: local.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(MediaError::webrtc)?;
        let host = RTCIceCandidate::from(&host)
            .to_json()
            .map_err(MediaError::webrtc)?;
        pc.add_local_candidate(host).map_err(MediaError::webrtc)?;
        let sdp = pc.local_description().ok_or(MediaError::NoDescription)?.sdp;
        let (offers, offers_rx) = mpsc::unbounded_channel();
        self.clients.lock().insert(id, offers);
        let answer = self.channel.join(id, sdp, rights).await?;
        let answer = RTCSessionDescription::answer(answer).map_err(MediaError::sdp)?;
        pc.set_remote_description(Instant::now(), answer)
            .map_err(MediaError::sdp)?;
        let measured = Arc::new(Measured::default());
        let phases = Arc::new(Phases::default());
        let speaking = Arc::new(AtomicBool::new(false));
        let driver = Driver {
            id,
            pc,
            socket,
            local,
            tap,
            srtp: None,
            out: Vec::with_capacity(256),
            ssrc,
            measured: measured.clone(),
            phases: phases.clone(),
            speaking: speaking.clone(),
            room: self.clone(),
            seq: rand::random(),
            rollover: Rollover::default(),
        };
        tokio::spawn(driver.run(offers_rx));
        self.channel.sync().await;
        Ok(LightClient {
            id,
            measured,
            phases,
            speaking,
        })
    }
}

struct Driver {
    id: PeerId,
    pc: RTCPeerConnection,
    socket: UdpSocket,
    local: SocketAddr,
    tap: Arc<KeyTap>,
    srtp: Option<Srtp>,
    out: Vec<u8>,
    ssrc: u32,
    measured: Arc<Measured>,
    phases: Arc<Phases>,
    speaking: Arc<AtomicBool>,
    room: Arc<LightRoom>,
    seq: u16,
    rollover: Rollover,
}

impl Driver {
    async fn run(mut self, mut offers: mpsc::UnboundedReceiver<String>) {
        let mut buf = vec![0u8; 2048];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut connected = false;
        let born = Instant::now();
        let mut from = self.local;
        loop {
            let next = self.pc.poll_timeout();
            let timer = async move {
                match next {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => {
                    let Ok((n, source)) = received else { return };
                    from = source;
                    match demux::classify(&buf[..n]) {
                        Kind::Stun => {
                            let _ = self.phases.ice_answered.set(Instant::now());
                        }
                        Kind::Dtls => {
                            let _ = self.phases.dtls_first.set(Instant::now());
                        }
                        _ => {}
                    }
                    if connected && self.media(&buf[..n]) {
                        continue;
                    }
                    if trace(self.id) {
                        eprintln!("trace {} {:?} in {:?} {}", self.id, born.elapsed(), demux::classify(&buf[..n]), n);
                    }
                    let msg = TaggedBytesMut {
                        now: Instant::now(),
                        transport: TransportContext {
                            local_addr: self.local,
                            peer_addr: source,
                            transport_protocol: TransportProtocol::UDP,
                            ecn: None,
                        },
                        message: BytesMut::from(&buf[..n]),
                    };
                    let _ = self.pc.handle_read(msg);
                }
                () = timer => {
                    let _ = self.pc.handle_timeout(Instant::now());
                }
                offer = offers.recv() => {
                    let Some(offer) = offer else { return };
                    let _ = self.phases.offer.set(Instant::now());
                    if trace(self.id) {
                        eprintln!("trace {} {:?} offer", self.id, born.elapsed());
                    }
                    self.answer(offer).await;
                }
                _ = tick.tick() => {
                    if connected && self.speaking.load(Ordering::Relaxed) {
                        self.send_audio(from);
                    }
                }
            }
            while let Some(event) = self.pc.poll_event() {
                if let RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) = event
                {
                    connected = true;
                    if trace(self.id) {
                        eprintln!("trace {} {:?} connected", self.id, born.elapsed());
                    }
                    let _ = self.measured.connected.set(Instant::now());
                }
            }
            while self.pc.poll_read().is_some() {}
            self.flush();
        }
    }

    fn flush(&mut self) {
        while let Some(out) = self.pc.poll_write() {
            if trace(self.id) {
                eprintln!(
                    "trace {} out {:?} {}",
                    self.id,
                    demux::classify(&out.message),
                    out.message.len()
                );
            }
            let _ = self
                .socket
                .try_send_to(&out.message, out.transport.peer_addr);
        }
    }

    /// A forwarded RTP packet (not RTCP): counted, its delay taken from its timestamp.
    fn media(&mut self, data: &[u8]) -> bool {
        if demux::classify(data) != Kind::Rtp || (192..=223).contains(&data[1]) {
            return false;
        }
        let _ = self.measured.first_audio.set(Instant::now());
        let sent = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
        let delay = (now_us() as u32).wrapping_sub(sent);
        let mut delays = self.measured.delays_us.lock();
        if delays.len() < 1_000_000 {
            delays.push(delay);
        }
        true
    }

    /// One 60-byte Opus-sized packet to the server, sent time in the RTP timestamp.
    fn send_audio(&mut self, to: SocketAddr) {
        if self.srtp.is_none()
            && let Some(keys) = self.tap.keys()
        {
            self.srtp = Srtp::new(&keys, self.tap.inner()).ok();
        }
        let Some(srtp) = self.srtp.as_mut() else {
            return;
        };
        self.seq = self.seq.wrapping_add(1);
        let roc = self.rollover.roc(self.seq);
        let header_len = write_header(
            &mut self.out,
            false,
            111,
            self.seq,
            now_us() as u32,
            self.ssrc,
            None,
        );
        self.out.resize(header_len + 60, 0);
        if srtp
            .protect(&mut self.out, header_len, self.ssrc, self.seq, roc)
            .is_ok()
        {
            let _ = self.socket.try_send_to(&self.out, to);
        }
    }

    async fn answer(&mut self, offer: String) {
        let now = Instant::now();
        let Ok(offer) = RTCSessionDescription::offer(offer) else {
            return;
        };
        if self.pc.set_remote_description(now, offer).is_err() {
            return;
        }
        let Ok(answer) = self.pc.create_answer(None) else {
            return;
        };
        if self.pc.set_local_description(now, answer).is_err() {
            return;
        }
        let Some(sdp) = self.pc.local_description().map(|d| d.sdp) else {
            return;
        };
        self.flush();
        let channel = self.room.channel.clone();
        let id = self.id;
        // Not awaited here: the loop keeps driving the connection meanwhile.
        tokio::spawn(async move {
            let _ = channel.apply_answer(id, sdp).await;
        });
    }
}
