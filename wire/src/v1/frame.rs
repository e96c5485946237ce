//! Encoding server frames. A frame is encoded once into [`Frame`] (cheaply clonable bytes that
//! are guaranteed UTF-8 JSON) and the same bytes are handed to every recipient.

use bytes::Bytes;
use serde::Serialize;

use crate::error::ErrorBody;
use crate::v1::server::events;

/// One encoded server frame: UTF-8 JSON text, shared by reference count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame(Bytes);

impl Frame {
    /// The JSON bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // Frames are only built from `String`s below, so this never fails.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// Takes the bytes (for handing to a WebSocket writer).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    fn from_string(s: String) -> Frame {
        Frame(Bytes::from(s))
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

fn to_frame<T: Serialize>(value: &T) -> Frame {
    // Serializing plain data structs to a String cannot fail; fall back to an empty object.
    Frame::from_string(serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned()))
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
mod tests {
    use super::*;
    use crate::error::ErrorCode;

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
}
