//! One participant inside the media loop: their sans-IO peer connection (ICE-lite, the node's
//! shared DTLS certificate, Opus with the audio-level extension, RTCP reports only) and the
//! signalling steps on it. Nothing here touches the socket or another participant.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::crypto::SignatureScheme;
use rtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc::interceptor::Registry;
use rtc::peer_connection::certificate::{CertificateParams, RTCCertificate};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::configure_rtcp_reports;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};

use super::inbound::Inbound;
use super::legs::{Leg, Spare};
use super::srtp::{KeyTap, Srtp};
use super::twcc::TwccRecorder;
use super::video::{Keyframes, Offered};
use crate::MediaError;
use crate::engine::{AUDIO_LEVEL_URI, opus_codec, rtx_codecs, video_codecs};
use crate::sfu::{PeerId, Rights, Track};
use crate::speaking::{SpeakingConfig, SpeakingDetector};

/// A participant of a channel.
pub(super) struct Peer {
    pub(super) id: PeerId,
    pub(super) channel: u64,
    pub(super) pc: RTCPeerConnection,
    /// The server ufrag of this connection (how STUN checks find it).
    pub(super) ufrag: String,
    /// The address the connection was established with (as the peer connection knows it).
    pub(super) pc_addr: Option<SocketAddr>,
    /// Where the client is now (a later authenticated check from elsewhere moves it).
    pub(super) addr: Option<SocketAddr>,
    /// Every source address routed to this participant.
    pub(super) addrs: Vec<SocketAddr>,
    pub(super) rights: Rights,
    /// Outgoing tracks by publisher and track.
    pub(super) legs: HashMap<(PeerId, Track), Leg>,
    /// Sections of legs gone, for the next legs (see `Spare`).
    pub(super) spare: Vec<Spare>,
    /// Publishers' tracks this participant paused (not forwarded to them).
    pub(super) paused: HashSet<(PeerId, Track)>,
    /// What the client's offer said it sends: its streams' tracks and payload types.
    pub(super) offered: Offered,
    /// Keyframe requests to this participant, rate-limited per track.
    pub(super) keyframes: Keyframes,
    pub(super) in_flight: bool,
    pub(super) again: bool,
    pub(super) connected: bool,
    /// Given up on if not connected by then.
    pub(super) deadline: Option<Instant>,
    pub(super) speaking: SpeakingDetector,
    /// The audio-level extension id the client sends under.
    pub(super) level_id: Option<u8>,
    /// The peer connection's next timeout, as last armed.
    pub(super) timer: Option<Instant>,
    /// Where the connection's local SRTP keys show up once DTLS is done.
    pub(super) tap: Arc<KeyTap>,
    /// The fast path's encryption, built from the tapped keys on first use.
    pub(super) srtp: Option<Srtp>,
    /// The fast path's decryption of what the client sends, likewise.
    pub(super) srtp_in: Option<Srtp>,
    /// The client's streams read on the fast path, by SSRC.
    pub(super) inbound: HashMap<u32, Inbound>,
    /// Simulcast streams of the client, by SSRC, as their MID and RID named them.
    pub(super) streams: HashMap<u32, (Track, u8)>,
    /// The client's RTX streams learnt from their repaired RID: RTX SSRC → media SSRC.
    pub(super) rtx_streams: HashMap<u32, u32>,
    /// The layers of each video track the client sends.
    pub(super) layers: HashMap<Track, super::simulcast::Layers>,
    /// Its video packets, per stream, for retransmissions to subscribers.
    pub(super) history: HashMap<u32, super::nack::History>,
    /// The highest layer this participant wants of publishers' video tracks (`set_layer`;
    /// the highest if not said).
    pub(super) wanted: HashMap<(PeerId, Track), u8>,
    /// When the participant, as a video publisher, was last sent a REMB.
    pub(super) remb_at: Option<Instant>,
    /// Arrivals of its packets to report (`twcc`), if its offer numbered them transport-wide.
    pub(super) twcc: Option<TwccRecorder>,
    /// The subscriber's latest bandwidth estimate (REMB), bit/s, and when it came.
    pub(super) estimate: Option<(u64, Instant)>,
}

impl Peer {
    /// Sends one RTCP packet (PLI, NACK, REMB) to the client through the connection's first
    /// receiver: `rtc` writes a receiver's RTCP on the connection's one transport whatever
    /// SSRCs it names. False (logged, naming `what`) if it could not.
    pub(super) fn write_rtcp(
        &mut self,
        now: Instant,
        packet: Box<dyn rtc::rtcp::Packet>,
        what: &str,
    ) -> bool {
        let receiver = self
            .pc
            .get_transceivers()
            .collect::<Vec<_>>()
            .into_iter()
            .find_map(|id| self.pc.rtp_transceiver(id).and_then(|t| t.receiver()));
        let Some(mut receiver) = receiver.and_then(|id| self.pc.rtp_receiver(id)) else {
            return false;
        };
        match receiver.write_rtcp(now, vec![packet]) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "voice: cannot send {what}");
                false
            }
        }
    }
}

/// How often a connecting participant's ICE agent runs.
const ICE_TICK_CONNECTING: Duration = Duration::from_millis(10);

/// A random string of `n` ICE characters.
fn ice_chars(n: usize) -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
        .collect()
}

/// The node's DTLS certificate: made once per media loop, not per connection. (`rtc` makes
/// one for every connection built without one — a key pair and a signed X.509 each — and
/// moves the one it was given out of the connection's configuration, so it cannot be read
/// back from the first connection either.)
pub(crate) fn node_certificate() -> Result<RTCCertificate, MediaError> {
    let provider = rtc::crypto::default_provider().map_err(MediaError::webrtc)?;
    let params = CertificateParams::new(vec![ice_chars(16)]).map_err(MediaError::webrtc)?;
    RTCCertificate::generate(provider.crypto(), SignatureScheme::EcdsaP256Sha256, params)
        .map_err(MediaError::webrtc)
}

/// The server's media engine: Opus (payload type 111) and the audio-level extension, the
/// video codecs (see [`video_codecs`]) and their RTX formats ([`rtx_codecs`]).
fn engine() -> Result<MediaEngine, MediaError> {
    let mut engine = MediaEngine::default();
    // Transport-wide congestion control feedback (see `twcc`) for every codec.
    let transport_cc = || RTCPFeedback {
        typ: "transport-cc".to_owned(),
        parameter: String::new(),
    };
    for mut codec in video_codecs() {
        codec.rtp_codec.rtcp_feedback.push(transport_cc());
        engine
            .register_codec(codec, RtpCodecKind::Video)
            .map_err(MediaError::webrtc)?;
    }
    for codec in rtx_codecs() {
        engine
            .register_codec(codec, RtpCodecKind::Video)
            .map_err(MediaError::webrtc)?;
    }
    let mut opus = opus_codec();
    opus.rtcp_feedback.push(transport_cc());
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus,
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(MediaError::webrtc)?;
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: super::twcc::TRANSPORT_CC_URI.to_owned(),
                },
                kind,
                None,
            )
            .map_err(MediaError::webrtc)?;
    }
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(MediaError::webrtc)?;
    // Simulcast: a client's layers are streams no `a=ssrc` line names; their packets carry
    // the section's MID and the layer's RID.
    for uri in [
        super::video::MID_URI,
        super::video::RID_URI,
        super::video::REPAIRED_RID_URI,
    ] {
        engine
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: uri.to_owned(),
                },
                RtpCodecKind::Video,
                None,
            )
            .map_err(MediaError::webrtc)?;
    }
    Ok(engine)
}

/// The id the offer's audio-level `a=extmap` line gives the extension.
fn offered_level_id(sdp: &str) -> Option<u8> {
    sdp.lines().find_map(|line| {
        let rest = line.strip_prefix("a=extmap:")?;
        let (id, uri) = rest.split_once(' ')?;
        let id = id.split('/').next()?;
        (uri.trim() == AUDIO_LEVEL_URI).then(|| id.parse().ok())?
    })
}

/// What a new participant's connection is built from.
pub(super) struct NewPeer<'a> {
    pub(super) id: PeerId,
    pub(super) channel: u64,
    pub(super) rights: Rights,
    /// The socket's address as the host candidate names it.
    pub(super) local: SocketAddr,
    /// The node's DTLS certificate (one for all: no key generation per join).
    pub(super) certificate: Option<&'a RTCCertificate>,
    pub(super) connect_timeout: Duration,
    /// Server ufrags in use (the new one must differ).
    pub(super) taken: &'a dyn Fn(&str) -> bool,
}

impl Peer {
    /// A participant's connection, answering `offer`; returns it and the answer SDP.
    pub(super) fn answer(
        new: NewPeer<'_>,
        offer: String,
        now: Instant,
    ) -> Result<(Peer, String), MediaError> {
        let level_id = offered_level_id(&offer);
        let offered = Offered::parse(&offer);
        let twcc = offered
            .transport_cc_ext
            .filter(|id| (1..=14).contains(id))
            .map(TwccRecorder::new);
        let offer = RTCSessionDescription::offer(offer).map_err(MediaError::sdp)?;
        let ufrag = loop {
            let ufrag = ice_chars(16);
            if !(new.taken)(&ufrag) {
                break ufrag;
            }
        };
        let tap = KeyTap::new().map_err(MediaError::webrtc)?;
        let settings = SettingEngineBuilder::new()
            .with_lite(true)
            .with_crypto_provider(tap.clone())
            // The two profiles the fast path can key from the tap (see `srtp`).
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            .with_ice_credentials(ufrag.clone(), ice_chars(32))
            .with_ice_timeouts(
                Some(Duration::from_secs(5)),
                Some(Duration::from_secs(10)),
                Some(Duration::from_secs(2)),
            )
            // The agent only notices it is connected (and DTLS, which the server starts as the
            // answerer, only begins) on its next tick: every 200 ms by default while
            // connecting, which was most of a join on an idle server. Ticks at this pace last
            // only until the connection is up (then the 2 s keepalive).
            .with_ice_connection_attempts(Some(ICE_TICK_CONNECTING), None)
            .build();
        let mut configuration = RTCConfigurationBuilder::new();
        if let Some(certificate) = new.certificate {
            configuration = configuration.with_certificates(vec![certificate.clone()]);
        }
        let mut pc = RTCPeerConnectionBuilder::new()
            .with_configuration(configuration.build())
            .with_media_engine(engine()?)
            .with_setting_engine(settings)
            .with_interceptor_registry(configure_rtcp_reports(
                // Application-ward of the reports (the chain's own work is done first).
                Registry::new().with(
                    rtc::interceptor::Slot::from(14_000),
                    super::feedback::DeliverFeedback::default(),
                ),
            ))
            .build(now)
            .map_err(MediaError::webrtc)?;
        pc.set_remote_description(now, offer)
            .map_err(MediaError::sdp)?;
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: new.local.ip().to_string(),
                port: new.local.port(),
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
        let answer = pc.create_answer(None).map_err(MediaError::sdp)?;
        pc.set_local_description(now, answer)
            .map_err(MediaError::sdp)?;
        let sdp = pc.local_description().ok_or(MediaError::NoDescription)?.sdp;
        let peer = Peer {
            id: new.id,
            channel: new.channel,
            pc,
            ufrag,
            pc_addr: None,
            addr: None,
            addrs: Vec::new(),
            rights: new.rights,
            legs: HashMap::new(),
            spare: Vec::new(),
            paused: HashSet::new(),
            offered,
            keyframes: Keyframes::default(),
            in_flight: false,
            again: false,
            connected: false,
            deadline: Some(now + new.connect_timeout),
            speaking: SpeakingDetector::new(SpeakingConfig::default()),
            level_id,
            timer: None,
            tap,
            srtp: None,
            srtp_in: None,
            inbound: HashMap::new(),
            streams: HashMap::new(),
            rtx_streams: HashMap::new(),
            layers: HashMap::new(),
            history: HashMap::new(),
            wanted: HashMap::new(),
            remb_at: None,
            estimate: None,
            twcc,
        };
        Ok((peer, sdp))
    }

    /// A new offer for the participant's current tracks.
    pub(super) fn offer(&mut self, now: Instant) -> Result<String, MediaError> {
        let offer = self.pc.create_offer(None).map_err(MediaError::sdp)?;
        self.pc
            .set_local_description(now, offer)
            .map_err(MediaError::sdp)?;
        Ok(self
            .pc
            .local_description()
            .ok_or(MediaError::NoDescription)?
            .sdp)
    }

    /// The client's answer to the server's offer; the video legs it made ready (their
    /// publishers are asked for a keyframe).
    pub(super) fn apply_answer(
        &mut self,
        sdp: String,
        now: Instant,
    ) -> Result<Vec<(PeerId, Track)>, MediaError> {
        if !self.in_flight {
            return Err(MediaError::NoOfferPending);
        }
        let answer = RTCSessionDescription::answer(sdp).map_err(MediaError::sdp)?;
        self.pc
            .set_remote_description(now, answer)
            .map_err(MediaError::sdp)?;
        self.in_flight = false;
        Ok(self.refresh_legs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offered_audio_level_id_is_read_from_its_extmap_line() {
        let sdp = "v=0\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n\
                   a=extmap:1/sendrecv urn:ietf:params:rtp-hdrext:ssrc-audio-level\r\n";
        assert_eq!(offered_level_id(sdp), Some(1));
        assert_eq!(
            offered_level_id("a=extmap:x urn:ietf:params:rtp-hdrext:ssrc-audio-level"),
            None
        );
        assert_eq!(offered_level_id(""), None);
    }

    #[test]
    fn ice_strings_are_long_and_plain() {
        let u = ice_chars(16);
        assert_eq!(u.len(), 16);
        assert!(u.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(u, ice_chars(16));
    }
}
