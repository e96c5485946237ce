//! Building and reading TURN messages (STUN encoding from `rtc-stun`, TURN attributes from
//! `rtc-turn`), and the ChannelData framing (RFC 8656 §12.4).

use std::net::SocketAddr;

use rtc::crypto::RTCCrypto;
use rtc::stun::attributes::{ATTR_NONCE, ATTR_REALM, ATTR_USERNAME};
use rtc::stun::error_code::{ErrorCode, ErrorCodeAttribute};
use rtc::stun::fingerprint::FINGERPRINT;
use rtc::stun::integrity::MessageIntegrity;
use rtc::stun::message::{
    CLASS_ERROR_RESPONSE, CLASS_SUCCESS_RESPONSE, Message, MessageType, Method, Setter,
};
use rtc::stun::textattrs::TextAttribute;
use rtc::stun::xoraddr::XorMappedAddress;

/// Header of a ChannelData message: channel number and length.
pub const CHANNEL_HEADER: usize = 4;

/// Parses a STUN message; `None` for anything else.
pub fn parse(data: &[u8]) -> Option<Message> {
    if !rtc::stun::message::is_stun_message(data) {
        return None;
    }
    let mut m = Message::new();
    m.raw = data.to_vec();
    m.decode().ok()?;
    Some(m)
}

/// A text attribute of `m` (USERNAME, REALM, NONCE).
pub fn text(m: &Message, attr: rtc::stun::attributes::AttrType) -> Option<String> {
    TextAttribute::get_from_as(m, attr).ok().map(|t| t.text)
}

/// A success response to `req` with `attrs`, signed with `key` and fingerprinted.
pub fn success(
    req: &Message,
    method: Method,
    attrs: Vec<Box<dyn Setter>>,
    key: &[u8],
    crypto: &dyn RTCCrypto,
) -> Option<Vec<u8>> {
    let mut setters: Vec<Box<dyn Setter + '_>> = vec![
        Box::new(req.transaction_id),
        Box::new(MessageType::new(method, CLASS_SUCCESS_RESPONSE)),
    ];
    setters.extend(attrs);
    if !key.is_empty() {
        setters.push(Box::new(MessageIntegrity::new_raw_integrity_with_provider(
            key.to_vec(),
            crypto,
        )));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).ok()?;
    Some(m.raw)
}

/// An error response to `req`; a 401 or 438 carries the realm and a fresh nonce.
pub fn error(
    req: &Message,
    method: Method,
    code: ErrorCode,
    reason: &str,
    challenge: Option<(&str, &str)>,
) -> Option<Vec<u8>> {
    let mut setters: Vec<Box<dyn Setter>> = vec![
        Box::new(req.transaction_id),
        Box::new(MessageType::new(method, CLASS_ERROR_RESPONSE)),
        Box::new(ErrorCodeAttribute {
            code,
            reason: reason.as_bytes().to_vec(),
        }),
    ];
    if let Some((realm, nonce)) = challenge {
        setters.push(Box::new(TextAttribute::new(ATTR_REALM, realm.to_owned())));
        setters.push(Box::new(TextAttribute::new(ATTR_NONCE, nonce.to_owned())));
    }
    setters.push(Box::new(FINGERPRINT));
    let mut m = Message::new();
    m.build(&setters).ok()?;
    Some(m.raw)
}

/// An XOR-MAPPED-ADDRESS-like attribute of type `attr` (XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS).
pub struct XorAddr(pub rtc::stun::attributes::AttrType, pub SocketAddr);

impl Setter for XorAddr {
    fn add_to(&self, m: &mut Message) -> rtc::shared::error::Result<()> {
        XorMappedAddress {
            ip: self.1.ip(),
            port: self.1.port(),
        }
        .add_to_as(m, self.0)
    }
}

/// Every XOR-PEER-ADDRESS of `m` (CreatePermission may carry several).
pub fn peer_addresses(m: &Message) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for a in &m.attributes.0 {
        if a.typ != rtc::stun::attributes::ATTR_XOR_PEER_ADDRESS {
            continue;
        }
        let mut one = Message::new();
        one.transaction_id = m.transaction_id;
        one.add(a.typ, &a.value);
        let mut x = XorMappedAddress::default();
        if x.get_from_as(&one, a.typ).is_ok() {
            out.push(SocketAddr::new(x.ip, x.port));
        }
    }
    out
}

/// The USERNAME, REALM and NONCE of a signed request.
pub fn credentials(m: &Message) -> Option<(String, String, String)> {
    Some((
        text(m, ATTR_USERNAME)?,
        text(m, ATTR_REALM)?,
        text(m, ATTR_NONCE)?,
    ))
}

/// A ChannelData message: its channel and payload, if `data` is one.
pub fn channel_data(data: &[u8]) -> Option<(u16, &[u8])> {
    if data.len() < CHANNEL_HEADER {
        return None;
    }
    let number = u16::from_be_bytes([data[0], data[1]]);
    if !(0x4000..=0x7FFF).contains(&number) {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([data[2], data[3]]));
    let payload = data.get(CHANNEL_HEADER..CHANNEL_HEADER + len)?;
    Some((number, payload))
}

/// Encodes a ChannelData message; over TCP it is padded to a multiple of four bytes.
pub fn encode_channel_data(number: u16, payload: &[u8], pad: bool) -> Option<Vec<u8>> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut out = Vec::with_capacity(CHANNEL_HEADER + payload.len() + 3);
    out.extend_from_slice(&number.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    if pad {
        while !out.len().is_multiple_of(4) {
            out.push(0);
        }
    }
    Some(out)
}

/// How long the next frame on a TCP stream is, from its first four bytes: a STUN message
/// (header + length) or a padded ChannelData message; `None` for neither.
pub fn tcp_frame_len(head: [u8; 4]) -> Option<usize> {
    let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
    match head[0] >> 6 {
        0 => Some(20 + len),
        1 => Some((CHANNEL_HEADER + len).div_ceil(4) * 4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_data_round_trips_and_pads_on_tcp() {
        let udp = encode_channel_data(0x4001, b"abcde", false).unwrap_or_default();
        assert_eq!(udp.len(), 9);
        assert_eq!(channel_data(&udp), Some((0x4001, &b"abcde"[..])));
        let tcp = encode_channel_data(0x4001, b"abcde", true).unwrap_or_default();
        assert_eq!(tcp.len(), 12);
        assert_eq!(tcp_frame_len([0x40, 0x01, 0, 5]), Some(12));
        assert_eq!(channel_data(&tcp), Some((0x4001, &b"abcde"[..])));
        // Channel numbers outside 0x4000..=0x7FFF and short payloads are not ChannelData.
        assert_eq!(channel_data(&[0x80, 0, 0, 0]), None);
        assert_eq!(channel_data(&[0x40, 0, 0, 9, 1]), None);
        assert_eq!(tcp_frame_len([0x00, 0x01, 0, 8]), Some(28));
        assert_eq!(tcp_frame_len([0xC0, 0, 0, 0]), None);
    }

    #[test]
    fn garbage_is_not_stun() {
        assert!(parse(b"").is_none());
        assert!(parse(&[0u8; 19]).is_none());
        assert!(parse(&[0xFFu8; 64]).is_none());
    }
}
