//! Simulcast for test peers: a publisher whose camera sends three layers (RIDs `q`, `h`,
//! `f`, lowest first, each its own SSRC, every packet naming its MID and RID as a browser's
//! first packets do), and every video packet a subscriber received, per track, with the
//! track itself (to send RTCP about it: REMB, NACK).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::TrackRemote;

use super::Client;
use super::codecs::{Options, Wire};
use crate::MediaError;
use crate::engine::{MID_URI, RID_URI, vp8_codec};
use crate::sfu::PeerId;

/// The layers' RIDs, lowest first.
pub const RIDS: [&str; 3] = ["q", "h", "f"];

/// One video packet as a subscriber received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoPacket {
    /// The leg's SSRC.
    pub ssrc: u32,
    /// The payload type it came with (the leg's for its codec).
    pub pt: u8,
    pub seq: u16,
    pub timestamp: u32,
    /// It starts a keyframe (of its codec).
    pub keyframe: bool,
    /// The first payload byte (the codec's descriptor or aggregation header).
    pub first: u8,
    /// The third payload byte: the layer a [`SimulcastCamera`] sent it in.
    pub layer: u8,
}

/// Most packets kept per track.
const MAX_LOGGED: usize = 100_000;

/// What one received video track brought, and the track.
pub struct TrackLog {
    track: Arc<dyn TrackRemote>,
    packets: Mutex<Vec<VideoPacket>>,
}

impl TrackLog {
    pub(super) fn push(&self, packet: &rtc::rtp::Packet, keyframe: bool) {
        let mut packets = self.packets.lock();
        if packets.len() < MAX_LOGGED {
            packets.push(VideoPacket {
                ssrc: packet.header.ssrc,
                pt: packet.header.payload_type,
                seq: packet.header.sequence_number,
                timestamp: packet.header.timestamp,
                keyframe,
                first: packet.payload.first().copied().unwrap_or(0),
                layer: packet.payload.get(2).copied().unwrap_or(0xff),
            });
        }
    }
}

/// Every video track a client received, by track id (`camera-<publisher>`).
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<HashMap<String, Arc<TrackLog>>>>);

impl Seen {
    pub(super) fn open(&self, id: &str, track: Arc<dyn TrackRemote>) -> Arc<TrackLog> {
        let log = Arc::new(TrackLog {
            track,
            packets: Mutex::new(Vec::new()),
        });
        self.0.lock().insert(id.to_owned(), log.clone());
        log
    }

    /// The packets received on `track_id` so far, in arrival order.
    pub fn packets(&self, track_id: &str) -> Vec<VideoPacket> {
        self.0
            .lock()
            .get(track_id)
            .map(|l| l.packets.lock().clone())
            .unwrap_or_default()
    }

    /// Sends RTCP about the received track `track_id` (a REMB, a NACK) to the server.
    pub async fn send_rtcp(
        &self,
        track_id: &str,
        packets: Vec<Box<dyn rtc::rtcp::Packet>>,
    ) -> Result<(), MediaError> {
        let track = self
            .0
            .lock()
            .get(track_id)
            .map(|l| l.track.clone())
            .ok_or_else(|| MediaError::WebRtc(format!("no track {track_id}")))?;
        track.write_rtcp(packets).await.map_err(MediaError::webrtc)
    }
}

/// A camera sending three simulcast layers.
pub struct SimulcastCamera {
    track: Arc<TrackLocalStaticRTP>,
    ssrcs: [u32; 3],
    /// A layer sends a keyframe next (a test stands in for a keyframe request: the client
    /// stack keeps RTCP to its interceptors).
    pub keyframe: [AtomicBool; 3],
    /// Each layer sends a keyframe every this many frames anyway (staggered).
    pub keyframe_every: AtomicU32,
    /// The low layer's next packet is lost before it is sent (its number is skipped).
    pub lose_one: AtomicBool,
}

impl Client {
    /// A client with a microphone and a simulcast camera (three encodings with RIDs).
    pub async fn with_simulcast_camera(
        id: PeerId,
    ) -> Result<(Arc<Client>, Arc<SimulcastCamera>), MediaError> {
        let client = Client::build(id, None, false).await?;
        let camera = SimulcastCamera::add(&client).await?;
        Ok((client, camera))
    }

    /// [`Client::with_simulcast_camera`] with `options` (RTX, codecs) and a [`Wire`].
    pub async fn with_simulcast_camera_and_wire(
        id: PeerId,
        options: Options,
    ) -> Result<(Arc<Client>, Arc<SimulcastCamera>, Arc<Wire>), MediaError> {
        let (client, wire) = Client::with_options(id, options).await?;
        let camera = SimulcastCamera::add(&client).await?;
        Ok((client, camera, wire))
    }
}

impl SimulcastCamera {
    /// Adds a three-layer camera track to `client`.
    async fn add(client: &Arc<Client>) -> Result<Arc<SimulcastCamera>, MediaError> {
        let id = client.id;
        let ssrcs: [u32; 3] = [rand::random(), rand::random(), rand::random()];
        let encodings = RIDS
            .iter()
            .zip(ssrcs)
            .map(|(rid, ssrc)| RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    rid: (*rid).to_owned(),
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: vp8_codec(),
                ..Default::default()
            })
            .collect();
        let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
            format!("client-{id}"),
            "camera".into(),
            "camera".into(),
            RtpCodecKind::Video,
            encodings,
        )));
        client
            .pc
            .add_track(track.clone() as Arc<dyn TrackLocal>)
            .await
            .map_err(MediaError::webrtc)?;
        let camera = Arc::new(SimulcastCamera {
            track,
            ssrcs,
            keyframe: [
                AtomicBool::new(true),
                AtomicBool::new(true),
                AtomicBool::new(true),
            ],
            keyframe_every: AtomicU32::new(30),
            lose_one: AtomicBool::new(false),
        });
        Ok(camera)
    }

    /// The SSRC of layer `layer` (0: lowest).
    pub fn ssrc(&self, layer: usize) -> Option<u32> {
        self.ssrcs.get(layer).copied()
    }
}

/// The id `offer` gives the header extension `uri`.
pub fn offered(offer: &str, uri: &str) -> Option<u8> {
    offer.lines().find_map(|line| {
        let (id, rest) = line.strip_prefix("a=extmap:")?.split_once(' ')?;
        (rest.trim() == uri).then(|| id.split('/').next()?.parse().ok())?
    })
}

/// The MID of `offer`'s first video section.
pub fn video_mid(offer: &str) -> Option<String> {
    let mut video = false;
    for line in offer.lines() {
        if line.starts_with("m=") {
            video = line.starts_with("m=video");
        } else if video && let Some(mid) = line.strip_prefix("a=mid:") {
            return Some(mid.trim().to_owned());
        }
    }
    None
}

impl SimulcastCamera {
    /// Sends a frame every 33 ms in every layer until the connection closes: layer `i` in
    /// `i + 1` packets of 1,000 bytes (so the layers' bitrates differ: ~0.25, 0.5 and
    /// 0.75 Mbit/s), the layer's index in the third payload byte.
    pub fn send(self: &Arc<Self>, client: &Arc<Client>, offer: &str) {
        let (Some(mid_id), Some(rid_id), Some(mid)) = (
            offered(offer, MID_URI),
            offered(offer, RID_URI),
            video_mid(offer),
        ) else {
            tracing::warn!("test client: the offer names no MID/RID extension");
            return;
        };
        let (me, client) = (self.clone(), client.clone());
        tokio::spawn(async move {
            let mut seq = [1u16, 1000, 2000];
            let mut ts = 0u32;
            let mut frame = 0u32;
            let mut tick = tokio::time::interval(Duration::from_millis(33));
            loop {
                tick.tick().await;
                let every = me.keyframe_every.load(Ordering::Relaxed).max(1);
                let mut failed = false;
                for layer in 0..3usize {
                    let periodic = (frame + 10 * layer as u32).is_multiple_of(every);
                    let key = me.keyframe[layer].swap(false, Ordering::Relaxed) || periodic;
                    for i in 0..=layer {
                        let mut payload = if i == 0 {
                            vec![0x10, if key { 0x00 } else { 0x01 }]
                        } else {
                            vec![0x00, 0x00]
                        };
                        payload.push(layer as u8);
                        payload.extend_from_slice(&[0xab; 1000]);
                        let mut header = rtc::rtp::Header {
                            version: 2,
                            marker: i == layer,
                            payload_type: 96,
                            sequence_number: seq[layer],
                            timestamp: ts,
                            ssrc: me.ssrcs[layer],
                            ..Default::default()
                        };
                        let _ = header.set_extension(mid_id, Bytes::from(mid.clone()));
                        let _ = header
                            .set_extension(rid_id, Bytes::from_static(RIDS[layer].as_bytes()));
                        let packet = rtc::rtp::Packet {
                            header,
                            payload: Bytes::from(payload),
                        };
                        let lost = layer == 0 && me.lose_one.swap(false, Ordering::Relaxed);
                        if !lost {
                            failed |= me.track.write_rtp(packet).await.is_err();
                        }
                        seq[layer] = seq[layer].wrapping_add(1);
                    }
                }
                if failed && client.connected.load(Ordering::Acquire) {
                    break;
                }
                frame += 1;
                ts = ts.wrapping_add(3000);
            }
        });
    }
}
