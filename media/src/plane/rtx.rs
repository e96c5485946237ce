//! RFC 4588 retransmissions from publishers: an RTX packet mapped back to the packet it
//! repairs (its stream by `a=ssrc-group:FID` or, for a simulcast layer, by its repaired RID;
//! its payload type by the RTX format's `apt`; its sequence number from the 2-byte OSN), so it
//! takes the original's path (history, legs); padding-only probes and what cannot be mapped
//! are dropped and counted.

use super::inbound::Header;
use super::peer::Peer;

/// RTX streams learnt from their repaired RID per publisher at most.
const MAX_RTX_STREAMS: usize = 16;

/// What an RTX packet of a publisher stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repair {
    /// The original packet: its stream, payload type and sequence number; its payload is the
    /// RTX payload after the OSN.
    Original { ssrc: u32, pt: u8, seq: u16 },
    /// Nothing to forward: padding only, or no payload after the OSN (a bandwidth probe).
    Padding,
    /// Cannot be mapped back: too short, an RTX stream nobody announced, a bad `apt`.
    Invalid,
}

/// The original sequence number of an RTX payload (padding already stripped), and whether
/// something follows it.
pub(super) fn osn(payload: &[u8]) -> Result<Option<u16>, ()> {
    match payload {
        [] | [_, _] => Ok(None),
        [_] => Err(()),
        [a, b, ..] => Ok(Some(u16::from_be_bytes([*a, *b]))),
    }
}

impl Peer {
    /// The media stream an RTX stream repairs: announced with `a=ssrc-group:FID`, learnt
    /// before, or named now by the packet's MID and repaired RID (a simulcast layer's, whose
    /// own stream was learnt from its RID).
    fn repaired_stream(&mut self, header: &Header, packet: &[u8]) -> Option<u32> {
        if let Some(media) = self.offered.fid.get(&header.ssrc) {
            return Some(*media);
        }
        if let Some(media) = self.rtx_streams.get(&header.ssrc) {
            return Some(*media);
        }
        let ext = |id: Option<u8>| id.and_then(|id| header.extension_bytes(packet, id));
        let mid = ext(self.offered.mid_ext)?;
        let rid = ext(self.offered.repaired_rid_ext)?;
        let layer = self.offered.simulcast_stream(mid, rid)?;
        let media = self
            .streams
            .iter()
            .find(|(_, named)| **named == layer)
            .map(|(ssrc, _)| *ssrc)?;
        if self.rtx_streams.len() < MAX_RTX_STREAMS {
            self.rtx_streams.insert(header.ssrc, media);
        }
        Some(media)
    }

    /// What the decrypted packet `packet` (header `header`, payload up to `end` with padding
    /// stripped) is, if it is RTX: `None` for a packet that is not (neither an RTX payload
    /// type nor an announced RTX stream).
    pub(super) fn repair(&mut self, header: &Header, packet: &[u8], end: usize) -> Option<Repair> {
        let apt = match self.offered.rtx_apt(header.pt) {
            Some(apt) => apt,
            // Media on a stream announced as RTX: not what the offer said.
            None if self.offered.fid.contains_key(&header.ssrc) => return Some(Repair::Invalid),
            None => return None,
        };
        let payload = packet.get(header.len..end).unwrap_or_default();
        let seq = match osn(payload) {
            Ok(Some(seq)) => seq,
            Ok(None) => return Some(Repair::Padding),
            Err(()) => return Some(Repair::Invalid),
        };
        let (Ok(pt), Some(ssrc)) = (apt, self.repaired_stream(header, packet)) else {
            return Some(Repair::Invalid);
        };
        // An RTX stream repairing an RTX stream is nonsense.
        if ssrc == header.ssrc || self.offered.fid.contains_key(&ssrc) {
            return Some(Repair::Invalid);
        }
        Some(Repair::Original { ssrc, pt, seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_osn_leads_the_payload() {
        assert_eq!(osn(&[]), Ok(None), "padding only");
        assert_eq!(osn(&[1, 2]), Ok(None), "nothing after the OSN");
        assert_eq!(osn(&[1]), Err(()), "shorter than an OSN");
        assert_eq!(osn(&[1, 2, 3]), Ok(Some(0x0102)));
    }
}
