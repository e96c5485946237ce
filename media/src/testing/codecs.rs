//! Test peers with a choice of video codecs and RTX, and a lossy wire: a client may register
//! only some of the SFU's codecs (under payload types of its own), send its camera in any of
//! them, negotiate RTX (RFC 4588, `webrtc-rs`'s NACK responder then repairs on its RTX
//! stream), and have an interceptor next to the wire that drops one outgoing packet (so the
//! SFU must NACK it), injects packets of the test's making (padding-only RTX probes as
//! Chrome's bandwidth probing sends them, malformed RTX), and logs every RTP packet that crosses it before any RTX is unwrapped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use rtc::interceptor::{Interceptor, Packet, Registry, Slot, StreamInfo, TaggedPacket};
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters};
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

use super::Client;
use crate::MediaError;
use crate::engine::client_engine;
use crate::sfu::PeerId;

/// The first payload bytes of a test frame's packet in `mime`: the codec's descriptor (VP8,
/// VP9) or aggregation header (AV1), or NAL header (H.264), saying whether it starts the
/// frame and whether the frame is a keyframe.
pub fn descriptor(mime: &str, first: bool, key: bool) -> Vec<u8> {
    let name = mime.split_once('/').map_or(mime, |(_, n)| n);
    match (name.to_ascii_lowercase().as_str(), first) {
        // S=1 (partition 0), then the payload header's inverse key-frame bit.
        ("vp8", true) => vec![0x10, if key { 0x00 } else { 0x01 }],
        ("vp8", false) => vec![0x00],
        // B (start of frame), P unless a keyframe.
        ("vp9", true) => vec![if key { 0x08 } else { 0x48 }],
        ("vp9", false) => vec![if key { 0x00 } else { 0x40 }],
        // W=1; N on a keyframe's first packet; Z on the packets after the first.
        ("av1", true) => vec![if key { 0x18 } else { 0x10 }],
        ("av1", false) => vec![0x90],
        // An IDR or a non-IDR slice (FU-A middles after the first).
        ("h264", true) => vec![if key { 0x65 } else { 0x41 }],
        ("h264", false) => vec![0x7c, 0x05],
        _ => vec![0x00],
    }
}

/// An RTP packet as it crossed a client's wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossed {
    pub ssrc: u32,
    pub pt: u8,
    pub seq: u16,
    /// The payload's first two bytes (an RTX packet's original sequence number), if any.
    pub osn: Option<u16>,
    /// Payload bytes (after padding).
    pub len: usize,
}

impl Crossed {
    fn of(packet: &rtc::rtp::Packet) -> Crossed {
        let p = &packet.payload;
        Crossed {
            ssrc: packet.header.ssrc,
            pt: packet.header.payload_type,
            seq: packet.header.sequence_number,
            osn: (p.len() >= 2).then(|| u16::from_be_bytes([p[0], p[1]])),
            len: p.len(),
        }
    }
}

/// What a test does to a client's wire, and what crossed it.
#[derive(Default)]
pub struct Wire {
    /// The next outgoing packet of this SSRC is lost.
    drop_next: Mutex<Option<u32>>,
    /// The sequence numbers lost so far.
    pub dropped: Mutex<Vec<u16>>,
    /// Packets to send as they are (a padding-only RTX probe, a malformed RTX packet): one
    /// after each outgoing media packet.
    pub inject: Mutex<VecDeque<rtc::rtp::Packet>>,
    /// The RTX stream (SSRC, payload type) of the client's camera, once bound.
    rtx: Mutex<Option<(u32, u8)>>,
    /// Every RTP packet sent and received, as it crossed (RTX not unwrapped yet).
    pub sent: Mutex<Vec<Crossed>>,
    pub received: Mutex<Vec<Crossed>>,
}

impl Wire {
    /// Loses the next packet the client sends on `ssrc`.
    pub fn lose_next(&self, ssrc: u32) {
        *self.drop_next.lock() = Some(ssrc);
    }

    /// The next number of the camera's RTX stream after those sent so far.
    pub fn next_rtx_seq(&self) -> u16 {
        let rtx = self.rtx().map(|(ssrc, _)| ssrc);
        self.sent
            .lock()
            .iter()
            .rev()
            .find(|c| Some(c.ssrc) == rtx)
            .map_or(0, |c| c.seq.wrapping_add(1))
    }

    /// The camera's RTX stream (SSRC, payload type), once the connection bound it.
    pub fn rtx(&self) -> Option<(u32, u8)> {
        *self.rtx.lock()
    }
}

/// Most packets a wire logs each way.
const MAX_CROSSED: usize = 100_000;

/// The interceptor of a [`Wire`]: next to the wire, below the NACK responder (so what it
/// drops is in the responder's history, as a packet lost on the network would be).
struct WireInterceptor {
    wire: Arc<Wire>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

fn log(to: &Mutex<Vec<Crossed>>, packet: &rtc::rtp::Packet) {
    let mut to = to.lock();
    if to.len() < MAX_CROSSED {
        to.push(Crossed::of(packet));
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for WireInterceptor {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(packet) = &msg.message.packet {
            log(&self.wire.received, packet);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.reads.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(packet) = &msg.message.packet else {
            self.writes.push_back(msg);
            return Ok(());
        };
        let ssrc = packet.header.ssrc;
        {
            let mut drop_next = self.wire.drop_next.lock();
            if *drop_next == Some(ssrc) {
                *drop_next = None;
                self.wire.dropped.lock().push(packet.header.sequence_number);
                return Ok(());
            }
        }
        log(&self.wire.sent, packet);
        let probe = if self.wire.rtx().is_some_and(|(rtx, _)| rtx != ssrc) {
            self.wire.inject.lock().pop_front()
        } else {
            None
        };
        let mut probe_msg = None;
        if let Some(probe) = probe {
            log(&self.wire.sent, &probe);
            probe_msg = Some(TaggedPacket {
                now: msg.now,
                transport: msg.transport,
                message: rtc::interceptor::AttributedPacket::new(Packet::Rtp(probe)),
            });
        }
        self.writes.push_back(msg);
        self.writes.extend(probe_msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.writes.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl Interceptor for WireInterceptor {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let (Some(ssrc), Some(pt)) = (info.ssrc_rtx, info.payload_type_rtx)
            && info.clock_rate == 90_000
        {
            *self.wire.rtx.lock() = Some((ssrc, pt));
        }
    }
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// What a test client negotiates.
#[derive(Debug, Clone)]
pub struct Options {
    /// The video codecs it registers (the SFU's by default), with their payload types.
    pub codecs: Vec<RTCRtpCodecParameters>,
    /// It registers the RTX format of each.
    pub rtx: bool,
    /// It sends a camera in this codec (its offer's first video section).
    pub camera: Option<RTCRtpCodec>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            codecs: crate::engine::video_codecs(),
            rtx: false,
            camera: None,
        }
    }
}

impl Client {
    /// A client as `options` say, with a [`Wire`] of its own.
    pub async fn with_options(
        id: PeerId,
        options: Options,
    ) -> Result<(Arc<Client>, Arc<Wire>), MediaError> {
        let wire = Arc::new(Wire::default());
        let registry = Registry::new().with(
            // Below the NACK responder (4,000), above the pacer (3,000): closest to the wire
            // of what a test needs.
            Slot::from(3_500),
            WireInterceptor {
                wire: wire.clone(),
                reads: VecDeque::new(),
                writes: VecDeque::new(),
            },
        );
        let engine = client_engine(&options.codecs, options.rtx, registry)?;
        let client = Client::build_with(id, None, options.camera, engine).await?;
        Ok((client, wire))
    }
}
