//! A client peer for tests: one connection with a microphone track that sends synthetic Opus
//! packets with audio levels, counting what it receives per publisher. Used by this crate's
//! tests and the node's voice tests (real WebRTC on loopback, no browser).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp::extension::audio_level_extension::AudioLevelExtension;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::Marshal;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState, RTCSessionDescription,
};
use webrtc::rtp_transceiver::RtpSender;

use crate::MediaError;
use crate::engine::{AUDIO_LEVEL_URI, opus_codec, opus_engine};
use crate::sfu::PeerId;

pub mod codecs;
mod harness;
pub mod procfs;
pub mod relay;
pub mod simulcast;

pub use harness::Harness;

/// A client's camera.
#[derive(Clone)]
struct Camera {
    track: Arc<TrackLocalStaticRTP>,
    ssrc: u32,
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodec,
    sender: Arc<dyn RtpSender>,
}

/// Packets received per publisher (from the track's stream id `voice-<publisher>`).
pub type Received = Arc<Mutex<HashMap<u64, Arc<AtomicU32>>>>;

/// Video received per track id (`camera-<publisher>`, `screen-<publisher>`): packets, and
/// VP8 keyframes among them.
pub type VideoReceived = Arc<Mutex<HashMap<String, Arc<[AtomicU32; 2]>>>>;

/// Whether a VP8 RTP payload starts a keyframe (RFC 7741), as the SFU tells.
pub fn vp8_keyframe(payload: &[u8]) -> bool {
    crate::plane::vp8_keyframe(payload)
}

/// What a client measured: one-way delays (µs) of received packets, and when the first one
/// arrived.
#[derive(Debug, Default)]
pub struct Measured {
    /// Sender clock to receiver clock, microseconds (same host: same clock).
    pub delays_us: Mutex<Vec<u32>>,
    /// When the first forwarded packet arrived.
    pub first_audio: std::sync::OnceLock<std::time::Instant>,
    /// When the connection (ICE and DTLS) came up, as the client saw it.
    pub connected: std::sync::OnceLock<std::time::Instant>,
}

/// Microseconds since the Unix epoch (the timestamp a test packet carries).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The client's peer-connection callbacks.
pub struct ClientHandler {
    gathered: Arc<tokio::sync::Notify>,
    connected: Arc<AtomicBool>,
    received: Received,
    video: VideoReceived,
    measured: Arc<Measured>,
    seen: simulcast::Seen,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            self.gathered.notify_one();
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.measured.connected.set(std::time::Instant::now());
            self.connected.store(true, Ordering::Release);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let id = track.track_id().await;
        if id.starts_with("camera-") || id.starts_with("screen-") {
            let counters = self.video.lock().entry(id.clone()).or_default().clone();
            let log = self.seen.open(&id, track.clone());
            tokio::spawn(async move {
                // The codec of each payload type, as the track's stream negotiated it.
                let mut mimes: HashMap<u8, String> = HashMap::new();
                while let Some(event) = track.poll().await {
                    if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                        let pt = packet.header.payload_type;
                        let mime = match mimes.get(&pt) {
                            Some(mime) => mime.clone(),
                            None => {
                                let codec = track.codec(packet.header.ssrc).await;
                                let mime = codec.map(|c| c.mime_type).unwrap_or_default();
                                mimes.insert(pt, mime.clone());
                                mime
                            }
                        };
                        let keyframe = crate::plane::keyframe(&mime, &packet.payload);
                        log.push(&packet, keyframe);
                        counters[0].fetch_add(1, Ordering::Relaxed);
                        if keyframe {
                            counters[1].fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
            return;
        }
        let stream = track.stream_id().await;
        let publisher: u64 = stream
            .strip_prefix("voice-")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let counter = self
            .received
            .lock()
            .entry(publisher)
            .or_insert_with(|| Arc::new(AtomicU32::new(0)))
            .clone();
        let measured = self.measured.clone();
        tokio::spawn(async move {
            while let Some(event) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = event {
                    counter.fetch_add(1, Ordering::Relaxed);
                    let _ = measured.first_audio.set(std::time::Instant::now());
                    if let Some(sent) = packet.payload.get(1..9) {
                        let mut raw = [0u8; 8];
                        raw.copy_from_slice(sent);
                        let delay = now_us().saturating_sub(u64::from_be_bytes(raw));
                        let mut delays = measured.delays_us.lock();
                        if delays.len() < 1_000_000 {
                            delays.push(u32::try_from(delay).unwrap_or(u32::MAX));
                        }
                    }
                }
            }
        });
    }
}

/// A participant's client: one connection, a microphone track.
pub struct Client {
    /// The participant id.
    pub id: PeerId,
    /// The connection.
    pub pc: Arc<dyn PeerConnection>,
    mic: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    ssrc: u32,
    /// Set once the connection is up.
    pub connected: Arc<AtomicBool>,
    received: Received,
    video: VideoReceived,
    /// Every video packet received, per track id, and the tracks (to send RTCP about them).
    pub seen: simulcast::Seen,
    /// The camera track, its SSRC, its codec and its sender.
    camera: Option<Camera>,
    /// The camera sends a keyframe next (the test stands in for a keyframe request).
    pub keyframe: Arc<AtomicBool>,
    /// RTP packets per video frame (1 unless told; `sfubench_video` sends more).
    pub video_packets: Arc<AtomicU32>,
    /// Delays and first-audio time of what this client received.
    pub measured: Arc<Measured>,
    /// Audio level the microphone sends (127: silence).
    pub level: Arc<AtomicU32>,
    gathered: Arc<tokio::sync::Notify>,
}

impl Client {
    /// A client bound to 127.0.0.1 with a microphone track.
    pub async fn new(id: PeerId) -> Result<Arc<Client>, MediaError> {
        Client::build(id, None, false).await
    }

    /// A client with a microphone and a camera track (VP8; its offer's first video section).
    pub async fn with_camera(id: PeerId) -> Result<Arc<Client>, MediaError> {
        Client::build(id, None, true).await
    }

    /// A client that may only use relay candidates of these TURN servers
    /// (`iceTransportPolicy: relay`): its UDP never reaches the SFU directly.
    pub async fn relayed(
        id: PeerId,
        turn: Vec<rtc::peer_connection::configuration::RTCIceServer>,
    ) -> Result<Arc<Client>, MediaError> {
        let configuration = rtc::peer_connection::configuration::RTCConfigurationBuilder::new()
            .with_ice_servers(turn)
            .with_ice_transport_policy(
                rtc::peer_connection::configuration::RTCIceTransportPolicy::Relay,
            )
            .build();
        Client::build(id, Some(configuration), false).await
    }

    async fn build(
        id: PeerId,
        configuration: Option<rtc::peer_connection::configuration::RTCConfiguration>,
        camera: bool,
    ) -> Result<Arc<Client>, MediaError> {
        // Every client can receive video; only a camera client sends it.
        let camera = camera.then(crate::engine::vp8_codec);
        Client::build_with(id, configuration, camera, opus_engine(true)?).await
    }

    /// A client with `engine`, and a camera sending `camera` if given.
    pub(crate) async fn build_with(
        id: PeerId,
        configuration: Option<rtc::peer_connection::configuration::RTCConfiguration>,
        camera: Option<rtc::rtp_transceiver::rtp_sender::RTCRtpCodec>,
        (engine, registry): (
            webrtc::peer_connection::MediaEngine,
            webrtc::peer_connection::Registry,
        ),
    ) -> Result<Arc<Client>, MediaError> {
        let video: VideoReceived = Arc::default();
        let gathered = Arc::new(tokio::sync::Notify::new());
        let connected = Arc::new(AtomicBool::new(false));
        let received: Received = Arc::default();
        let measured = Arc::new(Measured::default());
        let seen = simulcast::Seen::default();
        let handler = Arc::new(ClientHandler {
            seen: seen.clone(),
            gathered: gathered.clone(),
            connected: connected.clone(),
            received: received.clone(),
            video: video.clone(),
            measured: measured.clone(),
        });
        let mut builder = PeerConnectionBuilder::new();
        if let Some(configuration) = configuration {
            builder = builder.with_configuration(configuration);
        }
        let pc = builder
            .with_media_engine(engine)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec!["127.0.0.1:0".to_owned()])
            .build()
            .await
            .map_err(MediaError::webrtc)?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        let ssrc: u32 = rand::random();
        let mic = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("client-{id}"),
            "mic".into(),
            "mic".into(),
            RtpCodecKind::Audio,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: opus_codec(),
                ..Default::default()
            }],
        )));
        let sender = pc
            .add_track(mic.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(MediaError::webrtc)?;
        let camera = if let Some(codec) = camera {
            let ssrc: u32 = rand::random();
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("client-{id}"),
                "camera".into(),
                "camera".into(),
                RtpCodecKind::Video,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec.clone(),
                    ..Default::default()
                }],
            )));
            let sender = pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(MediaError::webrtc)?;
            Some(Camera {
                track,
                ssrc,
                codec,
                sender,
            })
        } else {
            None
        };
        Ok(Arc::new(Client {
            video,
            seen,
            camera,
            keyframe: Arc::new(AtomicBool::new(true)),
            video_packets: Arc::new(AtomicU32::new(1)),
            gathered,
            id,
            pc,
            mic,
            sender,
            ssrc,
            connected,
            received,
            measured,
            level: Arc::new(AtomicU32::new(127)),
        }))
    }

    /// The client's offer (with its host candidates).
    pub async fn offer(&self) -> Result<String, MediaError> {
        let offer = self.pc.create_offer(None).await.map_err(MediaError::sdp)?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(MediaError::sdp)?;
        // Host candidates are gathered at once on loopback.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let local = self
            .pc
            .local_description()
            .await
            .ok_or(MediaError::NoDescription)?;
        Ok(local.sdp)
    }

    /// The client's offer once candidate gathering is complete (relay candidates need the
    /// TURN allocation first), or after `wait`.
    pub async fn offer_gathered(&self, wait: Duration) -> Result<String, MediaError> {
        let offer = self.pc.create_offer(None).await.map_err(MediaError::sdp)?;
        self.pc
            .set_local_description(offer)
            .await
            .map_err(MediaError::sdp)?;
        let _ = tokio::time::timeout(wait, self.gathered.notified()).await;
        let local = self
            .pc
            .local_description()
            .await
            .ok_or(MediaError::NoDescription)?;
        Ok(local.sdp)
    }

    /// Applies the server's answer to the offer.
    pub async fn accept(&self, answer: String) -> Result<(), MediaError> {
        let answer = RTCSessionDescription::answer(answer).map_err(MediaError::sdp)?;
        self.pc
            .set_remote_description(answer)
            .await
            .map_err(MediaError::sdp)
    }

    /// A candidate the server trickled (`{candidate, sdpMid, sdpMLineIndex}` JSON).
    pub async fn add_candidate(&self, candidate: serde_json::Value) -> Result<(), MediaError> {
        let candidate = serde_json::from_value(candidate).map_err(MediaError::candidate)?;
        self.pc
            .add_ice_candidate(candidate)
            .await
            .map_err(MediaError::candidate)
    }

    /// Closes the connection (and its sockets).
    pub async fn close(&self) -> Result<(), MediaError> {
        self.pc.close().await.map_err(MediaError::webrtc)
    }

    /// Answers a server offer (renegotiation); returns the answer SDP.
    pub async fn answer(&self, offer: String) -> Result<String, MediaError> {
        let offer = RTCSessionDescription::offer(offer).map_err(MediaError::sdp)?;
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(MediaError::sdp)?;
        let answer = self.pc.create_answer(None).await.map_err(MediaError::sdp)?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(MediaError::sdp)?;
        let local = self
            .pc
            .local_description()
            .await
            .ok_or(MediaError::NoDescription)?;
        Ok(local.sdp)
    }

    /// The camera's SSRC, if the client has a camera.
    pub fn camera_ssrc(&self) -> Option<u32> {
        self.camera.as_ref().map(|c| c.ssrc)
    }

    /// Packets received so far from `publisher`.
    pub fn from(&self, publisher: PeerId) -> u32 {
        self.received
            .lock()
            .get(&publisher)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Packets and VP8 keyframes received so far on the track `track_id`
    /// (`camera-<publisher>`).
    pub fn video_from(&self, track_id: &str) -> (u32, u32) {
        self.video.lock().get(track_id).map_or((0, 0), |c| {
            (c[0].load(Ordering::Relaxed), c[1].load(Ordering::Relaxed))
        })
    }

    /// Sends a frame (`video_packets` packets) every 33 ms on the camera track until the
    /// connection closes, in the camera's codec under its negotiated payload type: a keyframe
    /// first and whenever `keyframe` is set, delta frames otherwise.
    pub fn send_video(self: &Arc<Self>) {
        let Some(camera) = self.camera.clone() else {
            return;
        };
        let me = self.clone();
        tokio::spawn(async move {
            let pt = match camera.sender.get_parameters().await {
                Ok(params) => params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| {
                        c.rtp_codec
                            .mime_type
                            .eq_ignore_ascii_case(&camera.codec.mime_type)
                    })
                    .map_or(96, |c| c.payload_type),
                Err(_) => 96,
            };
            let (mut seq, mut ts) = (1u16, 0u32);
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            loop {
                tick.tick().await;
                let key = me.keyframe.swap(false, Ordering::Relaxed);
                let packets = me.video_packets.load(Ordering::Relaxed).max(1);
                let mut failed = false;
                for i in 0..packets {
                    let mut payload = codecs::descriptor(&camera.codec.mime_type, i == 0, key);
                    payload.extend_from_slice(&[0xab; 1000]);
                    let packet = rtc::rtp::Packet {
                        header: rtc::rtp::Header {
                            version: 2,
                            marker: i + 1 == packets,
                            payload_type: pt,
                            sequence_number: seq,
                            timestamp: ts,
                            ssrc: camera.ssrc,
                            ..Default::default()
                        },
                        payload: Bytes::from(payload),
                    };
                    failed |= camera.track.write_rtp(packet).await.is_err();
                    seq = seq.wrapping_add(1);
                }
                if failed && me.connected.load(Ordering::Acquire) {
                    break;
                }
                ts = ts.wrapping_add(3000);
            }
        });
    }

    /// Sends 20 ms Opus frames with the current audio level until the connection closes.
    pub fn speak(self: &Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            let Ok(params) = me.sender.get_parameters().await else {
                return;
            };
            let Some(pt) = params.rtp_parameters.codecs.first().map(|c| c.payload_type) else {
                return;
            };
            let level_id = params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
            let (mut seq, mut ts) = (1u16, 0u32);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            loop {
                tick.tick().await;
                let level = me.level.load(Ordering::Relaxed) as u8;
                let mut header = rtc::rtp::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: seq,
                    timestamp: ts,
                    ssrc: me.ssrc,
                    ..Default::default()
                };
                if let Some(id) = level_id
                    && let Ok(bytes) = (AudioLevelExtension {
                        level,
                        voice: level < 127,
                    })
                    .marshal()
                {
                    let _ = header.set_extension(id, bytes.freeze());
                }
                let packet = rtc::rtp::Packet {
                    header,
                    // An Opus TOC byte, then the send time (for delay measurements).
                    payload: {
                        let mut p = Vec::with_capacity(12);
                        p.push(0xfc);
                        p.extend_from_slice(&now_us().to_be_bytes());
                        p.extend_from_slice(&[0xff, 0xfe]);
                        Bytes::from(p)
                    },
                };
                if me.mic.write_rtp(packet).await.is_err() {
                    break;
                }
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(960);
            }
        });
    }
}
