//! Building peer connections: Opus with the RFC 6464 audio-level extension, the default
//! interceptors (receiver/sender reports feed the loss and jitter figures), no mDNS, and a UDP
//! port from the configured range.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rtc::ice::mdns::MulticastDnsMode;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler,
    RTCConfigurationBuilder, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::MediaError;

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

/// Where and how peer connections bind.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The address UDP sockets bind to (and that host candidates announce).
    pub bind_ip: IpAddr,
    /// The address clients are told instead of `bind_ip` (a node behind 1:1 NAT).
    pub announced_ip: Option<IpAddr>,
    /// Ports to use, inclusive; `None`: any free port.
    pub port_range: Option<(u16, u16)>,
    /// A connection not established within this long is given up.
    pub connect_timeout: Duration,
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
            port_range: None,
            connect_timeout: Duration::from_secs(15),
        }
    }
}

/// The ports of the configured range in use.
#[derive(Debug, Default)]
pub struct PortPool {
    used: Mutex<BTreeSet<u16>>,
}

impl PortPool {
    /// A free port of `range` (marked used), or `None` when all are taken.
    pub fn take(&self, range: (u16, u16)) -> Option<u16> {
        let mut used = self.used.lock();
        let port = (range.0..=range.1).find(|p| !used.contains(p))?;
        used.insert(port);
        Some(port)
    }

    /// Gives a port back.
    pub fn give(&self, port: u16) {
        self.used.lock().remove(&port);
    }

    /// Ports in use.
    pub fn in_use(&self) -> usize {
        self.used.lock().len()
    }
}

/// A media engine with Opus and the audio-level extension, and its interceptors.
pub fn opus_engine() -> Result<(MediaEngine, Registry), MediaError> {
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
    engine
        .register_header_extension(
            RTCRtpHeaderExtensionCapability {
                uri: AUDIO_LEVEL_URI.to_owned(),
            },
            RtpCodecKind::Audio,
            None,
        )
        .map_err(MediaError::webrtc)?;
    // After the codecs: the defaults add feedback to the codecs registered so far.
    let registry =
        register_default_interceptors(Registry::new(), &mut engine).map_err(MediaError::webrtc)?;
    Ok((engine, registry))
}

/// A peer connection bound to `addr` ("ip:port").
pub async fn peer_connection(
    addr: String,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let (engine, registry) = opus_engine()?;
    let settings = SettingEngineBuilder::new()
        .with_multicast_dns_mode(MulticastDnsMode::Disabled)
        .with_ice_timeouts(
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(10)),
            Some(Duration::from_secs(2)),
        )
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(engine)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .with_handler(handler)
        .with_udp_addrs(vec![addr])
        .build()
        .await
        .map_err(MediaError::webrtc)?;
    Ok(Arc::new(pc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_handed_out_once_and_come_back() {
        let pool = PortPool::default();
        assert_eq!(pool.take((5000, 5001)), Some(5000));
        assert_eq!(pool.take((5000, 5001)), Some(5001));
        assert_eq!(pool.take((5000, 5001)), None, "range exhausted");
        pool.give(5000);
        assert_eq!(pool.take((5000, 5001)), Some(5000));
        assert_eq!(pool.in_use(), 2);
    }
}
