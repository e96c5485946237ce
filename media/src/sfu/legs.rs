//! Outgoing tracks ("legs": a publisher's audio on a subscriber's connection) and the
//! forwarding of each received packet to them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;
use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::Unmarshal;
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;

use super::{Inner, Leg, Peer, PeerId, SfuEvent};
use crate::MediaError;
use crate::engine::{AUDIO_LEVEL_URI, opus_codec};

/// Adds and removes outgoing tracks so the participant receives exactly `wanted`; whether
/// anything changed.
pub(super) async fn sync_legs(peer: &Peer, wanted: &[PeerId]) -> Result<bool, MediaError> {
    let (stale, missing): (Vec<(PeerId, Arc<Leg>)>, Vec<PeerId>) = {
        let legs = peer.legs.lock();
        let stale = legs
            .iter()
            .filter(|(p, _)| !wanted.contains(p))
            .map(|(p, l)| (*p, l.clone()))
            .collect();
        let missing = wanted
            .iter()
            .copied()
            .filter(|p| !legs.contains_key(p))
            .collect();
        (stale, missing)
    };
    let changed = !stale.is_empty() || !missing.is_empty();
    for (publisher, leg) in stale {
        peer.legs.lock().remove(&publisher);
        peer.pc
            .remove_track(&leg.sender)
            .await
            .map_err(MediaError::webrtc)?;
    }
    for publisher in missing {
        let leg = new_leg(peer, publisher).await?;
        peer.legs.lock().insert(publisher, Arc::new(leg));
    }
    Ok(changed)
}

async fn new_leg(peer: &Peer, publisher: PeerId) -> Result<Leg, MediaError> {
    let ssrc: u32 = rand::random();
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("voice-{publisher}"),
        format!("audio-{publisher}"),
        format!("participant {publisher}"),
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
    let sender = peer
        .pc
        .add_track(track.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(MediaError::webrtc)?;
    // Each leg writes on its own task: a slow connection never holds up the others.
    let (queue, mut packets) = mpsc::channel::<rtc::rtp::Packet>(128);
    tokio::spawn(async move {
        while let Some(packet) = packets.recv().await {
            if track.write_rtp(packet).await.is_err() {
                break;
            }
        }
    });
    Ok(Leg {
        sender,
        ssrc,
        params: Mutex::new(None),
        queue,
    })
}

/// After a negotiation: the payload type and extension id each leg must use.
pub(super) async fn refresh_legs(peer: &Peer) {
    let legs: Vec<Arc<Leg>> = peer.legs.lock().values().cloned().collect();
    for leg in legs {
        let Ok(params) = leg.sender.get_parameters().await else {
            continue;
        };
        let pt = params
            .rtp_parameters
            .codecs
            .iter()
            .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case("audio/opus"))
            .map(|c| c.payload_type);
        let level_id = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|e| e.uri == AUDIO_LEVEL_URI)
            .and_then(|e| u8::try_from(e.id).ok());
        *leg.params.lock() = pt.map(|pt| (pt, level_id));
    }
}

impl Inner {
    /// One packet from `from`: speaking detection, then on to every subscriber.
    pub(super) fn forward(&self, from: &Peer, packet: &rtc::rtp::Packet, level_id: Option<u8>) {
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        from.received.fetch_add(1, Ordering::Relaxed);
        let level = level_id.and_then(|id| packet.header.get_extension(id));
        let rights = *from.rights.lock();
        if let Some(mut raw) = level.clone()
            && let Ok(al) =
                rtc::rtp::extension::audio_level_extension::AudioLevelExtension::unmarshal(&mut raw)
            && !rights.muted
            && rights.may_speak
            && let Some(speaking) = from
                .speaking
                .lock()
                .packet(al.level, al.voice, Instant::now())
        {
            let _ = self.events.send(SfuEvent::Speaking {
                peer: from.id,
                speaking,
            });
        }
        if rights.muted || !rights.may_speak {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let subscribers: Vec<Arc<Peer>> = self.peers.lock().values().cloned().collect();
        for to in subscribers {
            if to.id == from.id || to.rights.lock().deafened {
                continue;
            }
            let Some(leg) = to.legs.lock().get(&from.id).cloned() else {
                continue;
            };
            let Some((pt, out_level_id)) = *leg.params.lock() else {
                continue;
            };
            let out = rewrite(packet, leg.ssrc, pt, out_level_id.zip(level.clone()));
            let bytes = out.payload.len() as u64;
            match leg.queue.try_send(out) {
                Ok(()) => {
                    self.counters.forwarded.fetch_add(1, Ordering::Relaxed);
                    self.counters
                        .forwarded_bytes
                        .fetch_add(bytes, Ordering::Relaxed);
                }
                Err(_) => {
                    self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The packet as one subscriber's leg must carry it: its SSRC, its payload type, only the
/// audio-level extension under its id.
fn rewrite(
    src: &rtc::rtp::Packet,
    ssrc: u32,
    pt: u8,
    level: Option<(u8, Bytes)>,
) -> rtc::rtp::Packet {
    let mut header = rtc::rtp::Header {
        version: 2,
        marker: src.header.marker,
        payload_type: pt,
        sequence_number: src.header.sequence_number,
        timestamp: src.header.timestamp,
        ssrc,
        ..Default::default()
    };
    if let Some((id, bytes)) = level {
        let _ = header.set_extension(id, bytes);
    }
    rtc::rtp::Packet {
        header,
        payload: src.payload.clone(),
    }
}
