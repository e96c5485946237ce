//! Framing and the versioned encodings: `[u32 big-endian length][u8 version][body]`, the body
//! bincode-encoded natively (versions 11, 10, 9 and 8, see [`super::v10`], [`super::v9`] and [`super::v8`]) or with serde as version 7
//! did (see [`super::v7`]). A message is written at a version only if that version can carry
//! it ([`super::v8::needs`]), or its older form can ([`super::v10::downgrade`]): `TooNew`
//! otherwise.

use std::ops::RangeInclusive;

use super::{MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, PeerFrameError, PeerMsg, v7, v8, v10};

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a message as one length-prefixed frame of the current version.
pub fn encode(msg: &PeerMsg) -> Vec<u8> {
    frame(PROTOCOL_VERSION, bincode::encode_to_vec(msg, config()))
}

/// Encodes a message as one length-prefixed frame of `version` (what the link negotiated);
/// a version this build does not speak is refused.
pub fn encode_at(msg: &PeerMsg, version: u8) -> Result<Vec<u8>, PeerFrameError> {
    let needs = v8::needs(msg);
    if version < needs && (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
        // A focus report or push offer goes to version 10 without its time.
        return match v10::downgrade(msg) {
            Some(older) if v8::needs(&older) <= version => encode_at(&older, version),
            Some(_) | None => Err(PeerFrameError::TooNew { version, needs }),
        };
    }
    match version {
        PROTOCOL_VERSION => Ok(encode(msg)),
        // The same bytes: versions 9, 10 and 11 only appended what `needs` refused above.
        v @ (8..=10) => Ok(frame(v, bincode::encode_to_vec(msg, config()))),
        7 => Ok(frame(
            7,
            bincode::serde::encode_to_vec(v7::downgrade(msg), config()),
        )),
        other => Err(PeerFrameError::Version(other)),
    }
}

fn frame(version: u8, body: Result<Vec<u8>, bincode::error::EncodeError>) -> Vec<u8> {
    // Plain data: encoding into a Vec cannot fail.
    let body = body.unwrap_or_default();
    let len = (body.len() + 1) as u32;
    let mut out = Vec::with_capacity(body.len() + 5);
    out.extend_from_slice(&len.to_be_bytes());
    out.push(version);
    out.extend_from_slice(&body);
    out
}

/// Checks a frame's announced length (the 4-byte prefix) against `limit`.
pub fn check_len(prefix: [u8; 4], limit: usize) -> Result<usize, PeerFrameError> {
    let len = u32::from_be_bytes(prefix) as usize;
    if len > limit {
        return Err(PeerFrameError::TooLarge { len, limit });
    }
    if len == 0 {
        return Err(PeerFrameError::Empty);
    }
    Ok(len)
}

/// How much memory decoding a frame may claim, as a multiple of the frame's length.
///
/// bincode sizes a string from its announced length before reading it, so without a budget
/// a 14-byte frame announcing a string of 2^40 bytes aborts the process. Under this budget
/// (rounded up to a power of 16 from 64 KiB) such a claim fails as `LimitExceeded` instead;
/// legitimate frames claim at most 8 times their length (a one-byte varint decodes to a `u64`).
const DECODE_BUDGET_FACTOR: usize = 16;

/// How one version's body decodes under a bincode limit (a const generic, hence a trait).
trait Body: Sized {
    fn decode<const LIMIT: usize>(
        body: &[u8],
    ) -> Result<(Self, usize), bincode::error::DecodeError>;
}

impl Body for PeerMsg {
    fn decode<const LIMIT: usize>(
        body: &[u8],
    ) -> Result<(Self, usize), bincode::error::DecodeError> {
        bincode::decode_from_slice(body, config().with_limit::<LIMIT>())
    }
}

impl Body for v7::PeerMsg {
    fn decode<const LIMIT: usize>(
        body: &[u8],
    ) -> Result<(Self, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(body, config().with_limit::<LIMIT>())
    }
}

/// Decodes a frame body within the [`DECODE_BUDGET_FACTOR`] budget; trailing bytes are an
/// error.
fn decode_body<T: Body>(body: &[u8]) -> Result<T, PeerFrameError> {
    // Pick the smallest limit tier that fits the budget.
    let decoded = match body.len().saturating_mul(DECODE_BUDGET_FACTOR) {
        n if n <= 1 << 16 => T::decode::<{ 1 << 16 }>(body),
        n if n <= 1 << 20 => T::decode::<{ 1 << 20 }>(body),
        n if n <= 1 << 24 => T::decode::<{ 1 << 24 }>(body),
        n if n <= 1 << 28 => T::decode::<{ 1 << 28 }>(body),
        n if n <= 1 << 30 => T::decode::<{ 1 << 30 }>(body),
        // Only frames over 64 MiB get here (the default frame limit is 16 MiB).
        _ => T::decode::<{ usize::MAX }>(body),
    };
    let (msg, used) = decoded.map_err(|e| PeerFrameError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(PeerFrameError::Decode(format!(
            "{} trailing bytes",
            body.len() - used
        )));
    }
    Ok(msg)
}

/// Decodes a frame's contents (the bytes after the length prefix), of any version this build
/// speaks.
pub fn decode(frame: &[u8]) -> Result<PeerMsg, PeerFrameError> {
    decode_within(frame, MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION)
}

/// Decodes a frame's contents if its version is in `versions` (the node's configured range);
/// a version 7 frame is upgraded to the current types.
pub fn decode_within(
    frame: &[u8],
    versions: RangeInclusive<u8>,
) -> Result<PeerMsg, PeerFrameError> {
    let (&version, body) = frame.split_first().ok_or(PeerFrameError::Empty)?;
    if !versions.contains(&version) {
        return Err(PeerFrameError::Version(version));
    }
    match version {
        // Version 8, 9 and 10 frames are version 11 frames without their additions.
        PROTOCOL_VERSION | 8..=10 => decode_body(body),
        7 => v7::upgrade(decode_body(body)?),
        other => Err(PeerFrameError::Version(other)),
    }
}
