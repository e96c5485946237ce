//! A participant's outgoing tracks ("legs"): one per publisher track it receives, each a
//! send-only section of its connection. Legs are added and removed as publishers come and go
//! (`sync_legs`), a section left behind is kept for the next leg of its kind (`Spare`), and
//! after each negotiation the payload types a leg must use are read back (`refresh_legs`).

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_RTX;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::peer::Peer;
use super::srtp::Rollover;
use super::video::{Codec, LegParams};
use crate::MediaError;
use crate::engine::{AUDIO_LEVEL_URI, opus_codec, rtx_codecs, video_codecs};
use crate::sfu::{PeerId, Track};

/// One outgoing track: a publisher's track on a subscriber's connection.
pub(super) struct Leg {
    pub(super) sender: RTCRtpSenderId,
    pub(super) ssrc: u32,
    /// Payload types and audio-level extension id negotiated on this leg; `None` until the
    /// subscriber's answer came back.
    pub(super) params: Option<LegParams>,
    /// The rollover counter of this leg's SSRC on the fast path.
    pub(super) rollover: Rollover,
    /// The leg's RTX stream (a video leg's, announced in the server's offer; used once the
    /// answer kept it, see `LegParams::rtx_ssrc`): its next sequence number and rollover.
    pub(super) rtx_seq: u16,
    pub(super) rtx_rollover: Rollover,
    /// Video: the layer forwarded, the one to switch to, the renumbering across switches.
    pub(super) layers: super::simulcast::LegLayers,
}

/// A section of the connection whose leg is gone, kept (inactive) to carry the next leg of
/// its kind. Without reuse every leg ever made would stay a section: a participant in a
/// channel with people coming and going, or cameras toggled, would get ever longer
/// descriptions until its answers passed the front door's frame limit.
pub(super) struct Spare {
    sender: RTCRtpSenderId,
    video: bool,
}

impl Leg {
    /// A leg sending on `sender` as `ssrc`, before the subscriber's answer (no parameters
    /// yet), numbering from scratch.
    fn new(sender: RTCRtpSenderId, ssrc: u32) -> Leg {
        Leg {
            sender,
            ssrc,
            params: None,
            rollover: Rollover::default(),
            rtx_seq: rand::random(),
            rtx_rollover: Rollover::default(),
            layers: Default::default(),
        }
    }
}

impl Peer {
    /// Adds and removes outgoing tracks so the participant receives exactly `wanted`;
    /// whether anything changed.
    pub(super) fn sync_legs(&mut self, wanted: &[(PeerId, Track)]) -> Result<bool, MediaError> {
        let stale: Vec<(PeerId, Track)> = self
            .legs
            .keys()
            .copied()
            .filter(|p| !wanted.contains(p))
            .collect();
        let missing: Vec<(PeerId, Track)> = wanted
            .iter()
            .copied()
            .filter(|p| !self.legs.contains_key(p))
            .collect();
        let changed = !stale.is_empty() || !missing.is_empty();
        for key in stale {
            self.paused.remove(&key);
            self.wanted.remove(&key);
            if let Some(leg) = self.legs.remove(&key) {
                // The section goes inactive (the client's track ends) and waits for the next
                // leg of its kind.
                if let Some(mut transceiver) = self.pc.rtp_transceiver(leg.sender.into()) {
                    transceiver.set_direction(RTCRtpTransceiverDirection::Inactive);
                }
                self.spare.push(Spare {
                    sender: leg.sender,
                    video: key.1.is_video(),
                });
            }
        }
        for (publisher, which) in missing {
            let ssrc: u32 = rand::random();
            let rtx_ssrc: u32 = rand::random();
            let (kind, codecs) = if which.is_video() {
                let codecs: Vec<_> = video_codecs().into_iter().map(|c| c.rtp_codec).collect();
                (RtpCodecKind::Video, codecs)
            } else {
                (RtpCodecKind::Audio, vec![opus_codec()])
            };
            // The stream id names the publisher, the track id what it is: clients lay out
            // tiles by them.
            let track = |codec| {
                MediaStreamTrack::new(
                    format!("voice-{publisher}"),
                    format!("{}-{publisher}", which.as_str()),
                    format!("participant {publisher}"),
                    kind,
                    vec![RTCRtpEncodingParameters {
                        rtp_coding_parameters: RTCRtpCodingParameters {
                            ssrc: Some(ssrc),
                            // Video legs offer an RTX stream of their own
                            // (`a=ssrc-group:FID`); `rtc` drops it if the subscriber does not
                            // take the format.
                            rtx: which
                                .is_video()
                                .then_some(RTCRtpRtxParameters { ssrc: rtx_ssrc }),
                            ..Default::default()
                        },
                        codec,
                        ..Default::default()
                    }],
                )
            };
            let reused = self
                .spare
                .iter()
                .position(|s| s.video == which.is_video())
                .map(|i| self.spare.swap_remove(i));
            if let (Some(spare), Some(codec)) = (reused, codecs.first()) {
                // Its section carries this leg now: sending again (`rtc` hands out a sender
                // only then), the new publisher's stream and track ids (the client sees a new
                // track) and new SSRCs (a client stack that keys its receivers by SSRC
                // would not notice the new publisher otherwise). Its codecs stay those the
                // section negotiated.
                if let Some(mut transceiver) = self.pc.rtp_transceiver(spare.sender.into()) {
                    transceiver.set_direction(RTCRtpTransceiverDirection::Sendonly);
                }
                let mut sender = self.pc.rtp_sender(spare.sender).ok_or_else(|| {
                    MediaError::WebRtc("a spare section without its sender".into())
                })?;
                sender
                    .replace_track(track(codec.clone()))
                    .map_err(MediaError::webrtc)?;
                let mut parameters = sender.get_parameters().clone();
                for encoding in &mut parameters.encodings {
                    let coding = &mut encoding.rtp_coding_parameters;
                    coding.ssrc = Some(ssrc);
                    if let Some(rtx) = coding.rtx.as_mut() {
                        rtx.ssrc = rtx_ssrc;
                    }
                }
                sender
                    .set_parameters(parameters, None)
                    .map_err(MediaError::webrtc)?;
                self.legs
                    .insert((publisher, which), Leg::new(spare.sender, ssrc));
                continue;
            }
            // A section of its own, always: `add_track` would reuse a section the client
            // offered to send on (its camera, its screen's sound), where the browser does
            // not receive.
            let init = || RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Sendonly,
                streams: vec![],
                send_encodings: vec![],
            };
            // The track names one codec, which the connection must know: once the client's
            // own offer negotiated video, only the codecs in common are (a client that
            // offered no VP8 refuses a VP8 track), so the first one it takes.
            let mut added = Err(MediaError::WebRtc("no codec for a leg".into()));
            for codec in codecs {
                added = self
                    .pc
                    .add_transceiver_from_track(track(codec), Some(init()))
                    .map_err(MediaError::webrtc);
                if added.is_ok() {
                    break;
                }
            }
            let transceiver = added?;
            // `rtc` offers a new track's section only the codec its encoding names (VP8):
            // offer every video codec the SFU forwards, with their RTX formats, so the leg
            // can carry whichever codec the publisher sends if the subscriber takes it. Once
            // the client's own offer negotiated video, `rtc` accepts only the codecs it had
            // in common with it: each is tried in turn and kept if accepted.
            if which.is_video()
                && let Some(mut t) = self.pc.rtp_transceiver(transceiver)
            {
                let mut accepted = Vec::new();
                for codec in video_codecs().into_iter().chain(rtx_codecs()) {
                    accepted.push(codec);
                    if t.set_codec_preferences(accepted.clone()).is_err() {
                        accepted.pop();
                    }
                }
                if !accepted.is_empty() {
                    t.set_codec_preferences(accepted)
                        .map_err(MediaError::webrtc)?;
                }
            }
            let sender = self
                .pc
                .rtp_transceiver(transceiver)
                .and_then(|t| t.sender())
                .ok_or_else(|| MediaError::WebRtc("a new transceiver without a sender".into()))?;
            self.legs.insert((publisher, which), Leg::new(sender, ssrc));
        }
        Ok(changed)
    }

    /// After a negotiation: the payload types and extension id each leg must use; the video
    /// legs that became ready.
    pub(super) fn refresh_legs(&mut self) -> Vec<(PeerId, Track)> {
        let mut ready = Vec::new();
        for (key, leg) in self.legs.iter_mut() {
            let Some(mut sender) = self.pc.rtp_sender(leg.sender) else {
                continue;
            };
            let params = sender.get_parameters();
            let pt = |codec: Codec| {
                params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| codec.matches(&c.rtp_codec))
                    .map(|c| c.payload_type)
            };
            // RFC 4588: the RTX format whose `apt` is the codec's payload type.
            let rtx = |pt: u8| {
                params
                    .rtp_parameters
                    .codecs
                    .iter()
                    .filter(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(MIME_TYPE_RTX))
                    .find(|c| {
                        c.rtp_codec
                            .sdp_fmtp_line
                            .split(';')
                            .any(|p| p.trim().strip_prefix("apt=") == Some(&pt.to_string()))
                    })
                    .map(|c| c.payload_type)
            };
            let mut negotiated = LegParams::default();
            for codec in Codec::ALL {
                let pt = pt(codec);
                negotiated.set(codec, pt, pt.and_then(rtx));
            }
            // The RTX stream announced in the server's offer, if the answer kept RTX (`rtc`
            // drops a sender's RTX when the remote did not take the format).
            negotiated.rtx_ssrc = params
                .encodings
                .first()
                .and_then(|e| e.rtp_coding_parameters.rtx.as_ref())
                .map(|r| r.ssrc)
                .filter(|_| key.1.is_video());
            negotiated.level_id = params
                .rtp_parameters
                .header_extensions
                .iter()
                .find(|e| e.uri == AUDIO_LEVEL_URI)
                .and_then(|e| u8::try_from(e.id).ok());
            let params = negotiated;
            if key.1.is_video() && leg.params.is_none() && params.any() {
                ready.push(*key);
            }
            leg.params = params.any().then_some(params);
        }
        ready
    }
}
