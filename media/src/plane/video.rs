//! Video in the media loop: which of a client's streams is which track (from its offer), the
//! payload types a leg forwards each codec under, keyframe requests (PLI) to publishers —
//! when a subscriber's video leg is ready, when a paused video resumes, and relayed from
//! subscribers' own PLI/FIR — rate-limited per track, and the bitrate cap written into the
//! server's descriptions. Video is forwarded like audio (`forward`): never decoded, one SRTP
//! packet per leg with the leg's SSRC and payload type.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::rtp_transceiver::rtp_sender::RTCRtpCodec;
use std::sync::atomic::Ordering;

use super::media_loop::Loop;
use crate::MediaError;
use crate::sfu::{PeerId, Track};

/// A codec the SFU forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    Opus,
    Vp8,
    Vp9,
    H264,
    Av1,
}

/// How many [`Codec`]s there are (a leg's payload types are an array by [`Codec::index`]).
const CODECS: usize = 5;

impl Codec {
    pub(super) fn from_name(name: &str) -> Option<Codec> {
        [
            ("opus", Codec::Opus),
            ("vp8", Codec::Vp8),
            ("vp9", Codec::Vp9),
            ("h264", Codec::H264),
            ("av1", Codec::Av1),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, c)| c)
    }

    fn index(self) -> usize {
        match self {
            Codec::Opus => 0,
            Codec::Vp8 => 1,
            Codec::Vp9 => 2,
            Codec::H264 => 3,
            Codec::Av1 => 4,
        }
    }

    /// Whether `codec` (as `rtc` negotiated it) is this one.
    pub(super) fn matches(self, codec: &RTCRtpCodec) -> bool {
        codec
            .mime_type
            .split_once('/')
            .and_then(|(_, name)| Codec::from_name(name))
            == Some(self)
    }

    /// Every codec.
    pub(super) const ALL: [Codec; CODECS] =
        [Codec::Opus, Codec::Vp8, Codec::Vp9, Codec::H264, Codec::Av1];
}

/// The payload types one leg carries each codec under (and their RTX formats), its RTX
/// stream, and its audio-level extension id.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LegParams {
    pts: [Option<u8>; CODECS],
    rtx: [Option<u8>; CODECS],
    /// The leg's RTX SSRC, if the subscriber took the RTX the server offered.
    pub(super) rtx_ssrc: Option<u32>,
    pub(super) level_id: Option<u8>,
}

impl LegParams {
    /// The negotiated payload type of `codec` (a subscriber that did not negotiate a codec
    /// is not sent packets of it).
    pub(super) fn pt(&self, codec: Codec) -> Option<u8> {
        self.pts[codec.index()]
    }

    /// The RTX payload type repairing `codec`, if the leg has an RTX stream.
    pub(super) fn rtx_pt(&self, codec: Codec) -> Option<u8> {
        self.rtx_ssrc.and(self.rtx[codec.index()])
    }

    pub(super) fn set(&mut self, codec: Codec, pt: Option<u8>, rtx: Option<u8>) {
        self.pts[codec.index()] = pt;
        self.rtx[codec.index()] = rtx.filter(|_| pt.is_some());
    }

    pub(super) fn any(&self) -> bool {
        self.pts.iter().any(Option::is_some)
    }
}

/// What a client's offer says about what it sends.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Offered {
    /// Its streams' SSRCs (`a=ssrc`) by the track their section stands for.
    pub(super) ssrcs: HashMap<u32, Track>,
    /// Payload type → codec (`a=rtpmap`), for the codecs the SFU forwards.
    pub(super) codecs: HashMap<u8, Codec>,
    /// It offered a second audio section (a screen share's audio).
    pub(super) screen_audio: bool,
    /// Its sections' `a=mid` values → the track the section stands for.
    pub(super) mids: HashMap<String, Track>,
    /// Simulcast: a section's `a=simulcast:send` RIDs → their layer (their place in that
    /// list, lowest first).
    pub(super) rids: HashMap<(Track, String), u8>,
    /// The header extension ids of the MID and the RID (`a=extmap`), which name a simulcast
    /// stream that no `a=ssrc` line does.
    pub(super) mid_ext: Option<u8>,
    pub(super) rid_ext: Option<u8>,
    /// RFC 4588: the RTX payload types (`a=rtpmap:<pt> rtx/90000`) …
    pub(super) rtx_pts: HashSet<u8>,
    /// … and every `apt=` of an `a=fmtp` line (checked when a packet comes, see `rtx_apt`).
    pub(super) apts: HashMap<u8, u8>,
    /// RTX streams (`a=ssrc-group:FID <media> <rtx>`): RTX SSRC → the media SSRC it repairs.
    pub(super) fid: HashMap<u32, u32>,
    /// The repaired-RID extension's id: a simulcast layer's RTX stream names its layer so.
    pub(super) repaired_rid_ext: Option<u8>,
    /// The transport-wide sequence number extension's id (see `twcc`).
    pub(super) transport_cc_ext: Option<u8>,
}

pub(crate) use crate::engine::{MID_URI, REPAIRED_RID_URI, RID_URI};

impl Offered {
    /// Reads the client's offer: sections in order (audio: microphone, screen audio; video:
    /// camera, screen), their `a=ssrc` and `a=rtpmap` lines. Anything else is ignored.
    pub(super) fn parse(sdp: &str) -> Offered {
        let mut offered = Offered::default();
        let (mut audio, mut video) = (0usize, 0usize);
        let mut current: Option<Track> = None;
        for line in sdp.lines() {
            let line = line.trim_end();
            if let Some(media) = line.strip_prefix("m=") {
                current = match media.split(' ').next() {
                    Some("audio") => {
                        audio += 1;
                        match audio {
                            1 => Some(Track::Mic),
                            2 => {
                                offered.screen_audio = true;
                                Some(Track::ScreenAudio)
                            }
                            _ => None,
                        }
                    }
                    Some("video") => {
                        video += 1;
                        match video {
                            1 => Some(Track::Camera),
                            2 => Some(Track::Screen),
                            _ => None,
                        }
                    }
                    _ => None,
                };
            } else if let Some(rest) = line.strip_prefix("a=ssrc:")
                && let Some(track) = current
                && let Some(Ok(ssrc)) = rest.split(' ').next().map(str::parse::<u32>)
            {
                offered.ssrcs.entry(ssrc).or_insert(track);
            } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
                && let Some((pt, codec)) = rest.split_once(' ')
                && let Ok(pt) = pt.parse::<u8>()
                && let Some(codec) = codec.split('/').next().and_then(Codec::from_name)
            {
                offered.codecs.insert(pt, codec);
            } else if let Some(mid) = line.strip_prefix("a=mid:")
                && let Some(track) = current
            {
                offered.mids.insert(mid.to_owned(), track);
            } else if let Some(list) = line.strip_prefix("a=simulcast:send ")
                && let Some(track) = current
            {
                // `q;h;f`, alternatives after commas, `~` for a paused one.
                let list = list.split(' ').next().unwrap_or_default();
                for (layer, rid) in list.split(';').enumerate().take(super::layers::LAYERS) {
                    let rid = rid.split(',').next().unwrap_or_default();
                    let rid = rid.trim_start_matches('~');
                    if !rid.is_empty() {
                        offered.rids.insert((track, rid.to_owned()), layer as u8);
                    }
                }
            } else if let Some(rest) = line.strip_prefix("a=extmap:")
                && let Some((id, uri)) = rest.split_once(' ')
                && let Some(Ok(id)) = id.split('/').next().map(str::parse::<u8>)
            {
                match uri.trim() {
                    MID_URI => offered.mid_ext = Some(id),
                    RID_URI => offered.rid_ext = Some(id),
                    REPAIRED_RID_URI => offered.repaired_rid_ext = Some(id),
                    super::twcc::TRANSPORT_CC_URI => offered.transport_cc_ext = Some(id),
                    _ => {}
                }
            } else if let Some(rest) = line.strip_prefix("a=rtpmap:")
                && let Some((pt, codec)) = rest.split_once(' ')
                && let Ok(pt) = pt.parse::<u8>()
                && codec
                    .split('/')
                    .next()
                    .is_some_and(|n| n.eq_ignore_ascii_case("rtx"))
            {
                offered.rtx_pts.insert(pt);
            } else if let Some(rest) = line.strip_prefix("a=fmtp:")
                && let Some((pt, params)) = rest.split_once(' ')
                && let Ok(pt) = pt.parse::<u8>()
                && let Some(apt) = params
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("apt="))
                    .and_then(|a| a.trim().parse::<u8>().ok())
            {
                offered.apts.insert(pt, apt);
            } else if let Some(group) = line.strip_prefix("a=ssrc-group:FID ") {
                let mut ssrcs = group.split(' ').map(str::parse::<u32>);
                if let (Some(Ok(media)), Some(Ok(rtx))) = (ssrcs.next(), ssrcs.next())
                    && media != rtx
                {
                    offered.fid.insert(rtx, media);
                }
            }
        }
        offered
    }

    /// The track and layer of a simulcast stream, by the MID and RID its packets carry.
    pub(super) fn simulcast_stream(&self, mid: &[u8], rid: &[u8]) -> Option<(Track, u8)> {
        let mid = std::str::from_utf8(mid).ok()?;
        let rid = std::str::from_utf8(rid).ok()?;
        let track = *self.mids.get(mid)?;
        let layer = *self.rids.get(&(track, rid.to_owned()))?;
        Some((track, layer))
    }

    /// For an RTX payload type of the offer, the payload type it repairs: `Err` if its `apt`
    /// is missing or names no video codec the SFU forwards; `None` for any other payload type.
    pub(super) fn rtx_apt(&self, pt: u8) -> Option<Result<u8, ()>> {
        if !self.rtx_pts.contains(&pt) {
            return None;
        }
        Some(
            self.apts
                .get(&pt)
                .copied()
                .filter(|apt| self.codecs.get(apt).is_some_and(|c| *c != Codec::Opus))
                .ok_or(()),
        )
    }

    /// Whether the client sends `track` as simulcast.
    pub(super) fn is_simulcast(&self, track: Track) -> bool {
        self.rids.keys().any(|(t, _)| *t == track)
    }

    /// The track and codec of a packet from this client; `None` for what the SFU does not
    /// forward (an unknown payload type). A stream the offer did not name goes by its codec:
    /// audio is the microphone, video the camera.
    pub(super) fn classify(&self, ssrc: u32, pt: u8) -> Option<(Track, Codec)> {
        let codec = *self.codecs.get(&pt)?;
        let track = match self.ssrcs.get(&ssrc) {
            Some(track) => *track,
            None if codec == Codec::Opus => Track::Mic,
            None => Track::Camera,
        };
        // A section's SSRC with a codec of the other kind: not forwarded.
        (track.is_video() == (codec != Codec::Opus)).then_some((track, codec))
    }
}

/// Keyframe requests to one participant's streams (by SSRC: a simulcast track has one per
/// layer), rate-limited per stream (`MediaConfig::keyframe_interval`): one asked for
/// meanwhile goes out when the interval is over (a subscriber that joined in between still
/// gets its keyframe).
#[derive(Debug, Default)]
pub(super) struct Keyframes {
    last: HashMap<u32, Instant>,
    pending: HashSet<u32>,
}

/// `b=AS:<kbps>` on every video section the server receives on (`recvonly`, `sendrecv`): a
/// browser caps what it sends on a section at the remote description's bandwidth.
pub(super) fn cap_video(sdp: String, kbps: u32) -> String {
    if kbps == 0 {
        return sdp;
    }
    let mut out = String::with_capacity(sdp.len() + 64);
    let mut section: Vec<&str> = Vec::new();
    let flush = |section: &mut Vec<&str>, out: &mut String| {
        let video = section.first().is_some_and(|l| l.starts_with("m=video"));
        let receives = section.iter().any(|l| {
            let l = l.trim_end();
            l == "a=recvonly" || l == "a=sendrecv"
        });
        let capped = section.iter().any(|l| l.starts_with("b="));
        for line in section.drain(..) {
            out.push_str(line);
            if video && receives && !capped && line.starts_with("c=") {
                out.push_str(&format!("b=AS:{kbps}\r\n"));
            }
        }
    };
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            flush(&mut section, &mut out);
        }
        section.push(line);
    }
    flush(&mut section, &mut out);
    out
}

impl Loop {
    /// Asks `key`'s client for a keyframe of `track`: of every layer it sends of it (now, or
    /// when the rate limit allows).
    pub(super) fn request_keyframe(&mut self, key: u64, track: Track, now: Instant) {
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        if !track.is_video() {
            return;
        }
        let mut ssrcs: Vec<u32> = peer
            .layers
            .get(&track)
            .map(|l| l.ssrcs().collect())
            .unwrap_or_default();
        if ssrcs.is_empty() {
            // Nothing received on it yet: the stream its offer names, if any (else its first
            // frame is a keyframe anyway).
            ssrcs.extend(
                peer.offered
                    .ssrcs
                    .iter()
                    .filter(|(_, t)| **t == track)
                    .map(|(s, _)| *s)
                    .min(),
            );
        }
        for ssrc in ssrcs {
            self.request_keyframe_ssrc(key, ssrc, now);
        }
    }

    /// Asks `key`'s client for a keyframe of its stream `ssrc` (now, or when the rate limit
    /// allows).
    pub(super) fn request_keyframe_ssrc(&mut self, key: u64, ssrc: u32, now: Instant) {
        let interval = self.config.keyframe_interval;
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if peer
            .keyframes
            .last
            .get(&ssrc)
            .is_some_and(|at| now.saturating_duration_since(*at) < interval)
        {
            peer.keyframes.pending.insert(ssrc);
            return;
        }
        peer.keyframes.pending.remove(&ssrc);
        peer.keyframes.last.insert(ssrc, now);
        let pli = PictureLossIndication {
            sender_ssrc: 0,
            media_ssrc: ssrc,
        };
        if peer.write_rtcp(now, Box::new(pli), "a keyframe request")
            && let Some(room) = self.rooms.get(&peer.channel)
        {
            room.open
                .counters
                .keyframe_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        self.drain(key, now);
    }

    /// Keyframe requests held back by the rate limit whose time has come.
    pub(super) fn due_keyframes(&mut self, now: Instant) {
        let interval = self.config.keyframe_interval;
        let due: Vec<(u64, u32)> = self
            .peers
            .iter()
            .flat_map(|(key, p)| {
                p.keyframes
                    .pending
                    .iter()
                    .filter(|s| {
                        p.keyframes
                            .last
                            .get(s)
                            .is_none_or(|at| now.saturating_duration_since(*at) >= interval)
                    })
                    .map(|s| (*key, *s))
                    .collect::<Vec<_>>()
            })
            .collect();
        for (key, ssrc) in due {
            self.request_keyframe_ssrc(key, ssrc, now);
        }
    }

    /// RTCP a subscriber sent about its legs: picture loss (PLI) and full intra requests
    /// (FIR) go to the publisher of the leg they name.
    pub(super) fn subscriber_rtcp(
        &mut self,
        key: u64,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        let mut asked: Vec<u32> = Vec::new();
        for packet in packets {
            let any = packet.as_any();
            if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                asked.push(pli.media_ssrc);
            } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                asked.extend(fir.fir.iter().map(|e| e.ssrc));
            } else if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                self.estimate(key, remb.bitrate, now);
            } else if let Some(nack) = any.downcast_ref::<TransportLayerNack>() {
                self.retransmit(key, nack);
            }
        }
        if asked.is_empty() {
            return;
        }
        let Some(peer) = self.peers.get(&key) else {
            return;
        };
        // The stream the leg forwards now (its simulcast layer's), if it forwards one.
        let wanted: Vec<(PeerId, Track, Option<u32>)> = peer
            .legs
            .iter()
            .filter(|(_, leg)| asked.contains(&leg.ssrc))
            .map(|(k, leg)| (k.0, k.1, leg.layers.rewriter.ssrc))
            .collect();
        let Some(room) = self.rooms.get(&peer.channel) else {
            return;
        };
        let targets: Vec<(u64, Track, Option<u32>)> = wanted
            .into_iter()
            .filter_map(|(publisher, track, ssrc)| {
                room.members.get(&publisher).map(|k| (*k, track, ssrc))
            })
            .collect();
        for (publisher, track, ssrc) in targets {
            match ssrc {
                Some(ssrc) => self.request_keyframe_ssrc(publisher, ssrc, now),
                None => self.request_keyframe(publisher, track, now),
            }
        }
    }

    /// A subscriber pauses or resumes a publisher's track.
    pub(super) fn subscribe(
        &mut self,
        channel: u64,
        peer: PeerId,
        publisher: PeerId,
        track: Track,
        paused: bool,
        now: Instant,
    ) -> Result<(), MediaError> {
        let key = self.key(channel, peer)?;
        let publisher_key = self.key(channel, publisher)?;
        let p = self.peers.get_mut(&key).ok_or(MediaError::NotJoined)?;
        let resumed = if paused {
            p.paused.insert((publisher, track));
            false
        } else {
            p.paused.remove(&(publisher, track))
        };
        if resumed {
            self.request_keyframe(publisher_key, track, now);
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "video_tests.rs"]
mod tests;
