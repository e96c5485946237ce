//! The media settings, and the codec every leg negotiates: Opus with the RFC 6464 audio-level
//! extension.

use std::net::IpAddr;
use std::time::Duration;

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use webrtc::peer_connection::{MediaEngine, Registry, register_default_interceptors};

use crate::MediaError;

/// RFC 8843's MID header extension (a simulcast stream's section).
pub const MID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
/// RFC 8852's RID header extension (a simulcast stream's layer).
pub const RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
/// RFC 8852's repaired RID (RTX of a layer; not negotiated for forwarding).
pub const REPAIRED_RID_URI: &str = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id";

/// The RFC 6464 client-to-mixer audio level header extension.
pub const AUDIO_LEVEL_URI: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";

/// Opus as every leg negotiates it.
pub fn opus_codec() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
        rtcp_feedback: vec![],
    }
}

/// The video codecs the SFU forwards (never decodes), with their payload types as the server
/// offers them: VP8 and H.264 (constrained baseline, packetization mode 1, what every browser
/// decodes). Feedback: PLI and FIR (keyframe requests, relayed to the publisher), generic NACK
/// (a subscriber's losses are retransmitted from the SFU's history; no RTX) and REMB (a
/// subscriber's estimate picks its simulcast layer). The server adds `transport-cc` (its
/// feedback to publishers, `plane::twcc`); the publisher's bitrate is capped with `b=AS`.
pub fn video_codecs() -> Vec<RTCRtpCodecParameters> {
    let feedback = vec![
        RTCPFeedback {
            typ: "ccm".to_owned(),
            parameter: "fir".to_owned(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: "pli".to_owned(),
        },
        RTCPFeedback {
            typ: "nack".to_owned(),
            parameter: String::new(),
        },
        RTCPFeedback {
            typ: "goog-remb".to_owned(),
            parameter: String::new(),
        },
    ];
    vec![
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: feedback.clone(),
            },
            payload_type: 96,
        },
        RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_H264.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line:
                    "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                        .to_owned(),
                rtcp_feedback: feedback,
            },
            payload_type: 102,
        },
    ]
}

/// VP8 as a video leg's track names it (the leg carries H.264 too when negotiated).
pub fn vp8_codec() -> RTCRtpCodec {
    video_codecs()
        .into_iter()
        .next()
        .map(|c| c.rtp_codec)
        .unwrap_or_default()
}

/// Where the node's media socket binds and the limits of its media loop (`[voice]`).
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The address the media socket binds to (and that the host candidate names).
    pub bind_ip: IpAddr,
    /// The address clients are told instead of `bind_ip` (a node behind 1:1 NAT).
    pub announced_ip: Option<IpAddr>,
    /// The one UDP port every participant's media goes through (0: any free port).
    pub udp_port: u16,
    /// Threads running the media loop (rooms are sharded across them).
    pub media_threads: usize,
    /// A connection not established within this long is given up.
    pub connect_timeout: Duration,
    /// Datagrams read from the socket in one go before the loop looks at its timers and
    /// commands again.
    pub recv_batch: usize,
    /// The most a participant may send per video track (camera, screen), kbit/s: the server's
    /// descriptions carry it as `b=AS` on the video sections the client sends on.
    pub video_max_kbps: u32,
    /// Keyframe requests (PLI) to one publisher stream at most this often; one asked for
    /// meanwhile goes out when the interval is over.
    pub keyframe_interval: Duration,
    /// Video packets kept per publisher stream to answer subscribers' NACKs (0: none).
    pub nack_history: usize,
    /// A subscriber's leg moves up a simulcast layer only after its bandwidth estimate
    /// allowed the higher layer for this long (down happens at once).
    pub layer_upgrade_after: Duration,
}

impl MediaConfig {
    /// `text` (an SDP or a candidate) as clients should see it: naming the announced address.
    pub fn announce(&self, text: String) -> String {
        match self.announced_ip {
            Some(public) => crate::announce::announce(&text, public),
            None => text,
        }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::from([127, 0, 0, 1]),
            announced_ip: None,
            udp_port: 0,
            media_threads: 1,
            connect_timeout: Duration::from_secs(15),
            recv_batch: 64,
            video_max_kbps: 2_500,
            keyframe_interval: Duration::from_millis(500),
            nack_history: 512,
            layer_upgrade_after: Duration::from_secs(3),
        }
    }
}

/// A media engine with Opus and the audio-level extension (and the SFU's video codecs if
/// `video`), and its interceptors: a test or benchmark client's.
pub fn opus_engine(video: bool) -> Result<(MediaEngine, Registry), MediaError> {
    let mut engine = MediaEngine::default();
    if video {
        for codec in video_codecs() {
            engine
                .register_codec(codec, RtpCodecKind::Video)
                .map_err(MediaError::webrtc)?;
        }
        // What a simulcast publisher names its layers' streams with.
        for uri in [MID_URI, RID_URI] {
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
    }
    engine
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus_codec(),
                payload_type: 111,
            },
            RtpCodecKind::Audio,
        )
        .map_err(MediaError::webrtc)?;
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(MediaError::webrtc)?;
    // After the codecs: the defaults add feedback to the codecs registered so far (and the
    // transport-wide sequence number extension, whose numbers a browser writes: the client
    // numbers its packets too, so the SFU's feedback to publishers is exercised).
    let registry =
        register_default_interceptors(Registry::new(), &mut engine).map_err(MediaError::webrtc)?;
    let registry = registry.with(
        rtc::interceptor::Slot::TwccSender,
        rtc::interceptor::TwccSenderBuilder::new().build(),
    );
    Ok((engine, registry))
}
