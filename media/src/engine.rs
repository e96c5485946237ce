//! The media settings, and the codec every leg negotiates: Opus with the RFC 6464 audio-level
//! extension.

use std::net::IpAddr;
use std::time::Duration;

use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_AV1, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8, MIME_TYPE_VP9,
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
/// offers them: VP8, VP9 (profile 0, what every browser decodes), H.264 (constrained
/// baseline, packetization mode 1) and AV1. Feedback: PLI and FIR (keyframe requests,
/// relayed to the publisher), generic NACK (a subscriber's losses are retransmitted from the
/// SFU's history, on the leg's RTX stream when it negotiated one) and REMB (a subscriber's
/// estimate picks its simulcast layer). The server adds `transport-cc` (its feedback to
/// publishers, `plane::twcc`); the publisher's bitrate is capped with `b=AS`.
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
    let codec = |mime: &str, fmtp: &str, payload_type: u8| RTCRtpCodecParameters {
        rtp_codec: RTCRtpCodec {
            mime_type: mime.to_owned(),
            clock_rate: 90_000,
            channels: 0,
            sdp_fmtp_line: fmtp.to_owned(),
            rtcp_feedback: feedback.clone(),
        },
        payload_type,
    };
    vec![
        codec(MIME_TYPE_VP8, "", 96),
        codec(MIME_TYPE_VP9, "profile-id=0", 98),
        codec(
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        codec(MIME_TYPE_AV1, "", 45),
    ]
}

/// RFC 4588 retransmission formats, one per video codec (`apt` = the codec's payload type):
/// the server receives a publisher's retransmissions on their own stream and sends a
/// subscriber's on the leg's RTX stream, so a retransmission never looks like a replay of
/// the media stream to SRTP, and the receiver can tell a late packet from a repair.
pub fn rtx_codecs() -> Vec<RTCRtpCodecParameters> {
    video_codecs()
        .iter()
        .map(|c| RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_RTX.to_owned(),
                clock_rate: 90_000,
                channels: 0,
                sdp_fmtp_line: format!("apt={}", c.payload_type),
                rtcp_feedback: vec![],
            },
            payload_type: c.payload_type + 1,
        })
        .collect()
}

/// The SFU's video codec of MIME type `mime` (`video/VP8`, …), as a track names it.
pub fn video_codec(mime: &str) -> RTCRtpCodec {
    video_codecs()
        .into_iter()
        .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(mime))
        .map(|c| c.rtp_codec)
        .unwrap_or_default()
}

/// VP8 as a video leg's track names it (the leg carries the other codecs too when
/// negotiated).
pub fn vp8_codec() -> RTCRtpCodec {
    video_codec(MIME_TYPE_VP8)
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
/// `video`, without RTX), and its interceptors: a test or benchmark client's.
pub fn opus_engine(video: bool) -> Result<(MediaEngine, Registry), MediaError> {
    let codecs = if video { video_codecs() } else { Vec::new() };
    client_engine(&codecs, false, Registry::new())
}

/// A test client's media engine: Opus with the audio-level extension, the video `codecs`
/// (with their RTX formats if `rtx`), the MID and RID extensions, and `registry` with the
/// default interceptors (NACK generator and responder, reports).
pub fn client_engine(
    codecs: &[RTCRtpCodecParameters],
    rtx: bool,
    registry: Registry,
) -> Result<(MediaEngine, Registry), MediaError> {
    let mut engine = MediaEngine::default();
    if !codecs.is_empty() {
        let repairs: Vec<RTCRtpCodecParameters> = if rtx {
            rtx_codecs()
                .into_iter()
                .filter(|r| {
                    codecs
                        .iter()
                        .any(|c| r.rtp_codec.sdp_fmtp_line == format!("apt={}", c.payload_type))
                })
                .collect()
        } else {
            Vec::new()
        };
        for codec in codecs.iter().chain(&repairs) {
            engine
                .register_codec(codec.clone(), RtpCodecKind::Video)
                .map_err(MediaError::webrtc)?;
        }
        // What a simulcast publisher names its layers' streams with.
        let mut uris = vec![MID_URI, RID_URI];
        if rtx {
            uris.push(REPAIRED_RID_URI);
        }
        for uri in uris {
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
        register_default_interceptors(registry, &mut engine).map_err(MediaError::webrtc)?;
    let registry = registry.with(
        rtc::interceptor::Slot::TwccSender,
        rtc::interceptor::TwccSenderBuilder::new().build(),
    );
    Ok((engine, registry))
}
