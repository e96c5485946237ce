//! Checks on the signalling a client hands the SFU, before webrtc-rs sees it.
//!
//! SDP is parsed by webrtc-rs itself ([`RTCSessionDescription::offer`] and `answer` parse
//! eagerly and return errors, which the SFU turns into [`MediaError::Sdp`]). Trickled ICE
//! candidates need one check of our own: webrtc-rs answers a remote ICE-TCP candidate of type
//! `tcptype passive` by opening a TCP connection to the address it names, so a client could
//! make the node connect to any host and port it likes (an internal service, say). The SFU
//! binds UDP sockets only, so only UDP candidates can ever be used: anything else is refused
//! with a clear error.
//!
//! [`RTCSessionDescription::offer`]: webrtc::peer_connection::RTCSessionDescription::offer

use webrtc::peer_connection::RTCIceCandidateInit;

use crate::MediaError;

/// Checks a client's ICE candidate: an empty one (the end of candidates) or a well-formed UDP
/// candidate.
pub fn check_candidate(candidate: &RTCIceCandidateInit) -> Result<(), MediaError> {
    let text = candidate.candidate.as_str();
    let value = text.strip_prefix("candidate:").unwrap_or(text);
    if value.is_empty() {
        return Ok(());
    }
    let parsed = rtc::ice::candidate::unmarshal_candidate(value).map_err(MediaError::candidate)?;
    if !parsed.network_type().is_udp() {
        return Err(MediaError::Candidate(
            "only UDP candidates are accepted (the server does not do ICE over TCP)".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn init(candidate: &str) -> RTCIceCandidateInit {
        RTCIceCandidateInit {
            candidate: candidate.to_owned(),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            ..Default::default()
        }
    }

    #[test]
    fn udp_candidates_and_the_end_of_candidates_pass() {
        for ok in [
            "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host",
            "candidate:2 1 UDP 1694498815 198.51.100.1 40000 typ srflx raddr 10.0.0.5 rport 4",
            "1 1 udp 2130706431 ::1 9 typ host",
            "",
            "candidate:",
        ] {
            check_candidate(&init(ok)).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn tcp_and_malformed_candidates_are_refused() {
        for bad in [
            "candidate:1 1 tcp 2130706431 127.0.0.1 6379 typ host tcptype passive",
            "candidate:1 1 TCP 2130706431 10.0.0.5 22 typ host tcptype active",
            "candidate:1 1 udp",
            "candidate:1 x udp 1 127.0.0.1 9 typ host",
            "candidate:1 1 udp 1 127.0.0.1 99999 typ host",
            "candidate:1 1 udp 1 127.0.0.1 9 typ nonsense",
            " ",
        ] {
            assert!(
                matches!(check_candidate(&init(bad)), Err(MediaError::Candidate(_))),
                "{bad}"
            );
        }
    }
}
