//! Telling apart what arrives on the node's one media port (RFC 7983: STUN, DTLS and RTP/RTCP
//! by their first byte) and finding whose it is from a STUN request's USERNAME, before any
//! peer connection sees it. Pure functions over byte slices: nothing here trusts its input.

/// What a datagram is, by its first byte (RFC 7983 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 0–3: STUN (ICE connectivity checks, consent).
    Stun,
    /// 20–63: DTLS (the handshake, alerts).
    Dtls,
    /// 128–191: RTP or RTCP (SRTP/SRTCP once keyed).
    Rtp,
    /// Anything else, or too short to be any of them.
    Garbage,
}

/// The STUN magic cookie (RFC 5389 §6).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xa4, 0x42];
/// STUN header length.
const STUN_HEADER: usize = 20;
/// The USERNAME attribute.
const ATTR_USERNAME: u16 = 0x0006;
/// Longest USERNAME (RFC 5389 §15.3: under 513 bytes).
const MAX_USERNAME: usize = 512;

/// Classifies `datagram` by its first byte and minimum length.
pub fn classify(datagram: &[u8]) -> Kind {
    let Some(&first) = datagram.first() else {
        return Kind::Garbage;
    };
    match first {
        0..=3 if datagram.len() >= STUN_HEADER && datagram[4..8] == MAGIC_COOKIE => Kind::Stun,
        20..=63 if datagram.len() >= 13 => Kind::Dtls,
        128..=191 if datagram.len() >= 12 => Kind::Rtp,
        _ => Kind::Garbage,
    }
}

/// The local (server) ufrag named by a STUN request's USERNAME (`local:remote`), if the
/// message is well formed and has one.
pub fn local_ufrag(stun: &[u8]) -> Option<&str> {
    let declared = usize::from(u16::from_be_bytes([*stun.get(2)?, *stun.get(3)?]));
    let body = stun.get(STUN_HEADER..STUN_HEADER.checked_add(declared)?)?;
    let mut at = 0usize;
    while at + 4 <= body.len() {
        let kind = u16::from_be_bytes([body[at], body[at + 1]]);
        let len = usize::from(u16::from_be_bytes([body[at + 2], body[at + 3]]));
        let value = body.get(at + 4..at + 4 + len)?;
        if kind == ATTR_USERNAME {
            if len > MAX_USERNAME {
                return None;
            }
            let name = std::str::from_utf8(value).ok()?;
            let (local, _) = name.split_once(':')?;
            return (!local.is_empty()).then_some(local);
        }
        // Attributes are padded to 4 bytes.
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (kind, value) in attrs {
            body.extend_from_slice(&kind.to_be_bytes());
            body.extend_from_slice(&(value.len() as u16).to_be_bytes());
            body.extend_from_slice(value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        let mut m = vec![0x00, 0x01];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn first_bytes_tell_stun_dtls_and_rtp_apart() {
        assert_eq!(classify(&stun(&[])), Kind::Stun);
        assert_eq!(classify(&[22; 40]), Kind::Dtls);
        assert_eq!(classify(&[0x80; 40]), Kind::Rtp);
        assert_eq!(classify(&[]), Kind::Garbage);
        assert_eq!(classify(&[0x80; 4]), Kind::Garbage, "too short for RTP");
        assert_eq!(classify(&[0x00; 40]), Kind::Garbage, "no magic cookie");
        assert_eq!(classify(&[200; 40]), Kind::Garbage);
        assert_eq!(classify(&[64; 40]), Kind::Garbage);
    }

    #[test]
    fn the_local_ufrag_comes_from_the_username_after_other_attributes() {
        let m = stun(&[(0x8022, b"agent"), (ATTR_USERNAME, b"server1:client")]);
        assert_eq!(local_ufrag(&m), Some("server1"));
        let m = stun(&[(0x0024, &[0, 0, 0, 1]), (ATTR_USERNAME, b"abc:d")]);
        assert_eq!(local_ufrag(&m), Some("abc"));
    }

    #[test]
    fn malformed_usernames_name_nobody() {
        assert_eq!(local_ufrag(&stun(&[])), None, "no USERNAME");
        assert_eq!(local_ufrag(&stun(&[(ATTR_USERNAME, b"nocolon")])), None);
        assert_eq!(local_ufrag(&stun(&[(ATTR_USERNAME, b":x")])), None);
        assert_eq!(
            local_ufrag(&stun(&[(ATTR_USERNAME, &[0xff, b':', 1])])),
            None
        );
        let mut m = stun(&[(ATTR_USERNAME, b"abc:d")]);
        m[3] = 200; // declares more than there is
        assert_eq!(local_ufrag(&m), None);
        let mut m = stun(&[(ATTR_USERNAME, b"abc:d")]);
        m[23] = 90; // the attribute runs past the message
        assert_eq!(local_ufrag(&m), None);
        assert_eq!(local_ufrag(&[0, 1]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = classify(&bytes);
            let _ = local_ufrag(&bytes);
        }
    }
}
