//! Free-form JSON (an ICE candidate a client sent, an error's details) inside the cluster
//! protocol's bincode: carried as its JSON text, because its shape is the client's, not the
//! protocol's. Decoding goes through `serde_json`, whose recursion limit keeps a deeply nested
//! value from a peer from exhausting the stack.

use bincode::de::Decoder;
use bincode::enc::Encoder;
use bincode::error::{DecodeError, EncodeError};
use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// A JSON value whose shape the protocol does not define: JSON text in binary frames,
/// the value itself in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OpaqueJson(pub serde_json::Value);

/// Encodes `value` as its JSON text.
pub fn encode<E: Encoder>(value: &serde_json::Value, encoder: &mut E) -> Result<(), EncodeError> {
    // Serializing a `Value` to text cannot fail (its map keys are strings).
    let text = serde_json::to_string(value).map_err(|e| EncodeError::OtherString(e.to_string()))?;
    text.encode(encoder)
}

/// Decodes what [`encode`] wrote.
pub fn decode<C, D: Decoder<Context = C>>(
    decoder: &mut D,
) -> Result<serde_json::Value, DecodeError> {
    let text = String::decode(decoder)?;
    serde_json::from_str(&text).map_err(|e| DecodeError::OtherString(format!("bad JSON: {e}")))
}

impl Encode for OpaqueJson {
    fn encode<E: Encoder>(&self, encoder: &mut E) -> Result<(), EncodeError> {
        encode(&self.0, encoder)
    }
}

impl<C> Decode<C> for OpaqueJson {
    fn decode<D: Decoder<Context = C>>(decoder: &mut D) -> Result<Self, DecodeError> {
        decode(decoder).map(OpaqueJson)
    }
}

bincode::impl_borrow_decode!(OpaqueJson);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_bad_text() {
        let config = bincode::config::standard();
        let value = OpaqueJson(serde_json::json!({"candidate": "a", "sdpMLineIndex": 0}));
        let bytes = bincode::encode_to_vec(&value, config).expect("encodes");
        let (back, _): (OpaqueJson, usize) =
            bincode::decode_from_slice(&bytes, config).expect("decodes");
        assert_eq!(back, value);
        let bad = bincode::encode_to_vec("{", config).expect("encodes");
        assert!(bincode::decode_from_slice::<OpaqueJson, _>(&bad, config).is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let deep = bincode::encode_to_vec(deep, config).expect("encodes");
        assert!(bincode::decode_from_slice::<OpaqueJson, _>(&deep, config).is_err());
    }
}
