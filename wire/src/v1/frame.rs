//! Encoding server frames. A frame is encoded once, as the complete WebSocket frame (RFC 6455
//! §5.2: server frames are unmasked, so the bytes are the same for every recipient), into a
//! [`Frame`]: cheaply clonable shared bytes. A room concatenates a committed batch into one
//! [`Frame`] holding many WebSocket frames, so each recipient costs one queue entry and one
//! socket write per batch, not per message.

use bytes::{BufMut, Bytes, BytesMut};
use serde::Serialize;

use crate::error::ErrorBody;
use crate::v1::server::events;

/// One or more encoded WebSocket text frames, each carrying one JSON server event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    count: u32,
}

/// Encodes `json` as one final, unmasked WebSocket text frame.
fn ws_text_frame(json: &[u8]) -> Bytes {
    let len = json.len();
    let mut out = BytesMut::with_capacity(len + 10);
    out.put_u8(0x81); // FIN + opcode 1 (text)
    if len < 126 {
        out.put_u8(len as u8);
    } else if len <= u16::MAX as usize {
        out.put_u8(126);
        out.put_u16(len as u16);
    } else {
        out.put_u8(127);
        out.put_u64(len as u64);
    }
    out.put_slice(json);
    out.freeze()
}

/// The first encoded frame of `wire`: (header byte, payload, rest); `None` if it is cut short.
fn split_frame(wire: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (len, header) = match *wire.get(1)? {
        126 => (
            u16::from_be_bytes([*wire.get(2)?, *wire.get(3)?]) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(wire.get(2..10)?.try_into().ok()?) as usize,
            10,
        ),
        n if n < 126 => (n as usize, 2usize),
        // The mask bit: server frames are never masked.
        _ => return None,
    };
    let end = header.checked_add(len)?;
    Some((*wire.first()?, wire.get(header..end)?, &wire[end..]))
}

/// Splits encoded frames into their payloads; `None` if the bytes are not frames we made.
fn payloads(mut wire: &[u8]) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let (_, payload, rest) = split_frame(wire)?;
        out.push(std::str::from_utf8(payload).ok()?);
        wire = rest;
    }
    Some(out)
}

impl Frame {
    /// The bytes to write to the socket as they are.
    pub fn wire_bytes(&self) -> &Bytes {
        &self.wire
    }

    /// How many WebSocket frames (server events) this holds.
    pub fn count(&self) -> usize {
        self.count as usize
    }

    /// The JSON text of each event, in order.
    pub fn texts(&self) -> Vec<&str> {
        payloads(&self.wire).unwrap_or_default()
    }

    /// The request ids this frame acknowledges: events written by [`ack_ok`] and [`ack_err`]
    /// (`{"type":"ack","id":N,…}`, in that field order).
    pub fn ack_ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.texts().into_iter().filter_map(|text| {
            let rest = text.strip_prefix(r#"{"type":"ack","id":"#)?;
            let end = rest.find(|c: char| !c.is_ascii_digit())?;
            rest[..end].parse().ok()
        })
    }

    /// The JSON text of the first event (the only one for a single frame).
    pub fn as_str(&self) -> &str {
        self.texts().first().copied().unwrap_or("")
    }

    /// Frames received from another node as raw bytes: accepted only if they are whole, final,
    /// unmasked WebSocket text frames with UTF-8 payloads (what [`event`] makes), so a
    /// misbehaving peer cannot make a node write garbage to its clients.
    pub fn from_wire(wire: Bytes) -> Option<Frame> {
        let mut rest: &[u8] = &wire;
        let mut count = 0u32;
        while !rest.is_empty() {
            let (first, payload, after) = split_frame(rest)?;
            if first != 0x81 {
                return None;
            }
            std::str::from_utf8(payload).ok()?;
            rest = after;
            count += 1;
        }
        Some(Frame { wire, count })
    }

    /// The events after the first `n` (none if `n` is at least [`Frame::count`]); shares the
    /// bytes.
    pub fn skip(&self, n: usize) -> Frame {
        if n == 0 {
            return self.clone();
        }
        let mut rest: &[u8] = &self.wire;
        for _ in 0..n.min(self.count()) {
            match split_frame(rest) {
                Some((_, _, after)) => rest = after,
                None => break,
            }
        }
        let start = self.wire.len() - rest.len();
        Frame {
            wire: self.wire.slice(start..),
            count: self
                .count
                .saturating_sub(u32::try_from(n).unwrap_or(u32::MAX)),
        }
    }

    /// Concatenates frames into one, preserving order.
    pub fn concat(frames: &[Frame]) -> Frame {
        if let [one] = frames {
            return one.clone();
        }
        let mut out = BytesMut::with_capacity(frames.iter().map(|f| f.wire.len()).sum());
        for f in frames {
            out.put_slice(&f.wire);
        }
        Frame {
            wire: out.freeze(),
            count: frames.iter().map(|f| f.count).sum(),
        }
    }

    fn from_json(json: &[u8]) -> Frame {
        Frame {
            wire: ws_text_frame(json),
            count: 1,
        }
    }
}

#[derive(Serialize)]
struct EventOut<'a, T: Serialize> {
    #[serde(rename = "type")]
    event: &'a str,
    data: &'a T,
}

#[derive(Serialize)]
struct AckOut<'a, T: Serialize> {
    #[serde(rename = "type")]
    event: &'static str,
    id: u64,
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorBody>,
}

/// Any serializable frame value (an event, an ack) as a frame.
pub(crate) fn encode<T: Serialize>(value: &T) -> Frame {
    to_frame(value)
}

fn to_frame<T: Serialize>(value: &T) -> Frame {
    // Serializing plain data structs cannot fail; fall back to an empty object.
    Frame::from_json(&serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()))
}

/// `{"type": event, "data": data}`.
pub fn event<T: Serialize>(event: &str, data: &T) -> Frame {
    to_frame(&EventOut { event, data })
}

/// `{"type":"ack","id":id,"ok":true,"data":data}`.
pub fn ack_ok<T: Serialize>(id: u64, data: &T) -> Frame {
    to_frame(&AckOut::<T> {
        event: events::ACK,
        id,
        ok: true,
        data: Some(data),
        error: None,
    })
}

/// `{"type":"ack","id":id,"ok":false,"error":{...}}`.
pub fn ack_err(id: u64, error: &ErrorBody) -> Frame {
    to_frame(&AckOut::<()> {
        event: events::ACK,
        id,
        ok: false,
        data: None,
        error: Some(error),
    })
}

/// A failed ack when the request had an id, else an `error` event.
pub fn failure(id: Option<u64>, error: &ErrorBody) -> Frame {
    match id {
        Some(id) => ack_err(id, error),
        None => event(events::ERROR, error),
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn frames_from_a_peer_are_checked() {
        let made = Frame::concat(&[event("a", &1), event("b", &"x".repeat(300))]);
        let back = Frame::from_wire(made.wire_bytes().clone()).expect("valid frames");
        assert_eq!(back, made);
        assert_eq!(back.count(), 2);
        let mut cut = made.wire_bytes().to_vec();
        cut.pop();
        assert!(Frame::from_wire(Bytes::from(cut)).is_none(), "truncated");
        assert!(
            Frame::from_wire(Bytes::from_static(b"\x82\x01a")).is_none(),
            "binary"
        );
        assert!(
            Frame::from_wire(Bytes::from_static(b"\x81\x81abcda")).is_none(),
            "masked"
        );
        assert!(
            Frame::from_wire(Bytes::from_static(b"\x81\x02\xff\xfe")).is_none(),
            "utf-8"
        );
        assert_eq!(Frame::from_wire(Bytes::new()).map(|f| f.count()), Some(0));
    }

    #[test]
    fn frames_carry_websocket_headers_for_every_length() {
        for len in [0usize, 1, 125, 126, 127, 65_535, 65_536, 200_000] {
            let text = "a".repeat(len);
            let f = Frame::from_json(text.as_bytes());
            let wire = f.wire_bytes();
            assert_eq!(wire[0], 0x81);
            let header = if len < 126 {
                2
            } else if len <= 65_535 {
                4
            } else {
                10
            };
            assert_eq!(wire.len(), header + len);
            assert_eq!(f.as_str(), text);
        }
        let joined = Frame::concat(&[event("a", &1), event("b", &2), event("c", &3)]);
        assert_eq!(joined.count(), 3);
        assert_eq!(
            joined.texts(),
            [
                r#"{"type":"a","data":1}"#,
                r#"{"type":"b","data":2}"#,
                r#"{"type":"c","data":3}"#
            ]
        );
    }

    #[test]
    fn frames_have_the_documented_shape() {
        let f = event("pong", &serde_json::json!({"serverTime": 1}));
        assert_eq!(f.as_str(), r#"{"type":"pong","data":{"serverTime":1}}"#);
        let f = ack_ok(5, &serde_json::json!({"a": 1}));
        assert_eq!(
            f.as_str(),
            r#"{"type":"ack","id":5,"ok":true,"data":{"a":1}}"#
        );
        let e = ErrorBody::new(ErrorCode::RoomFull, "full");
        let f = failure(Some(9), &e);
        assert_eq!(
            f.as_str(),
            r#"{"type":"ack","id":9,"ok":false,"error":{"code":"ROOM_FULL","message":"full"}}"#
        );
        let f = failure(None, &e);
        assert_eq!(
            f.as_str(),
            r#"{"type":"error","data":{"code":"ROOM_FULL","message":"full"}}"#
        );
    }

    #[test]
    fn skipping_events_keeps_the_rest_whole() {
        let long = "x".repeat(300);
        let joined = Frame::concat(&[event("a", &1), event("b", &long), event("c", &3)]);
        assert_eq!(joined.skip(0), joined);
        let rest = joined.skip(1);
        assert_eq!(rest.count(), 2);
        assert_eq!(rest.texts()[1], r#"{"type":"c","data":3}"#);
        assert_eq!(Frame::from_wire(rest.wire_bytes().clone()), Some(rest));
        assert_eq!(joined.skip(2).texts(), [r#"{"type":"c","data":3}"#]);
        for n in [3, 4, usize::MAX] {
            assert_eq!(joined.skip(n).count(), 0);
            assert!(joined.skip(n).wire_bytes().is_empty());
        }
    }
}
