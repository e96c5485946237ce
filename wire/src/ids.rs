//! Snowflake ids: 42 bits of milliseconds since [`EPOCH_MS`], 10 bits of node id, 12 bits of
//! sequence. Unique without coordination across up to 1024 nodes, ordered by creation time,
//! rendered as decimal strings on the wire (JavaScript numbers cannot hold 64 bits).

use std::fmt;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 2024-01-01T00:00:00Z: ids start counting here, which leaves 139 years of range.
pub const EPOCH_MS: u64 = 1_704_067_200_000;
const NODE_BITS: u32 = 10;
const SEQ_BITS: u32 = 12;
/// The largest node id a snowflake can carry.
pub const MAX_NODE_ID: u16 = (1 << NODE_BITS) - 1;

/// A 64-bit time-ordered id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Snowflake(pub u64);

impl Snowflake {
    /// Unix milliseconds at which this id was made.
    pub fn timestamp_ms(self) -> u64 {
        (self.0 >> (NODE_BITS + SEQ_BITS)) + EPOCH_MS
    }

    /// The smallest id made at or after `unix_ms` (a cursor bound for time ranges).
    pub fn lower_bound_for(unix_ms: u64) -> Snowflake {
        Snowflake(unix_ms.saturating_sub(EPOCH_MS) << (NODE_BITS + SEQ_BITS))
    }

    /// Parses the decimal wire form; `None` for anything else.
    pub fn parse(s: &str) -> Option<Snowflake> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok().map(Snowflake)
    }
}

impl std::str::FromStr for Snowflake {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Snowflake::parse(s).ok_or(InvalidId)
    }
}

/// A string that is not a snowflake id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidId;

impl fmt::Display for InvalidId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a valid id")
    }
}

impl std::error::Error for InvalidId {}

impl fmt::Display for Snowflake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Snowflake {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A string for JSON clients (JavaScript numbers cannot hold 64 bits); binary formats,
        // which only nodes read, take the number as it is.
        if s.is_human_readable() {
            s.collect_str(&self.0)
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Snowflake {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if !d.is_human_readable() {
            // Binary formats are not self-describing: the untagged form below cannot work.
            return u64::deserialize(d).map(Snowflake);
        }
        // Accept the string form (canonical) and, leniently, a JSON integer.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Str(&'a str),
            String(String),
            Num(u64),
        }
        match Repr::deserialize(d)? {
            Repr::Str(s) => {
                Snowflake::parse(s).ok_or_else(|| serde::de::Error::custom("invalid id"))
            }
            Repr::String(s) => {
                Snowflake::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid id"))
            }
            Repr::Num(n) => Ok(Snowflake(n)),
        }
    }
}

// The cluster protocol's native bincode encoding: the plain number (a varint).
impl bincode::Encode for Snowflake {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        encoder: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.0.encode(encoder)
    }
}

impl<C> bincode::Decode<C> for Snowflake {
    fn decode<D: bincode::de::Decoder<Context = C>>(
        decoder: &mut D,
    ) -> Result<Self, bincode::error::DecodeError> {
        u64::decode(decoder).map(Snowflake)
    }
}

bincode::impl_borrow_decode!(Snowflake);

/// Makes ids for one node. Thread-safe; cheap enough to call per message.
#[derive(Debug)]
pub struct SnowflakeGenerator {
    node_id: u64,
    /// (last millisecond used, next sequence in it)
    state: Mutex<(u64, u64)>,
}

impl SnowflakeGenerator {
    /// A generator for `node_id` (0..=1023; larger values are masked).
    pub fn new(node_id: u16) -> Self {
        SnowflakeGenerator {
            node_id: u64::from(node_id & MAX_NODE_ID),
            state: Mutex::new((0, 0)),
        }
    }

    /// The next id: strictly greater than every id this generator made before, even if the
    /// wall clock steps back (then it keeps counting in the last millisecond it saw).
    pub fn next_id(&self) -> Snowflake {
        let now = now_ms().saturating_sub(EPOCH_MS);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (mut ms, mut seq) = *state;
        if now > ms {
            ms = now;
            seq = 0;
        }
        if seq >= (1 << SEQ_BITS) {
            // 4096 ids in one millisecond: borrow from the next one.
            ms += 1;
            seq = 0;
        }
        *state = (ms, seq + 1);
        Snowflake((ms << (NODE_BITS + SEQ_BITS)) | (self.node_id << SEQ_BITS) | seq)
    }
}

impl SnowflakeGenerator {
    /// An id of this node greater than `floor` (another node's id, from a clock ahead of ours):
    /// this generator continues from the millisecond after `floor`'s.
    pub fn next_id_after(&self, floor: Snowflake) -> Snowflake {
        let floor_ms = floor.0 >> (NODE_BITS + SEQ_BITS);
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if state.0 <= floor_ms {
                *state = (floor_ms + 1, 0);
            }
        }
        self.next_id()
    }
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_strictly_increasing_and_carry_time() {
        let generator = SnowflakeGenerator::new(7);
        let mut last = Snowflake(0);
        for _ in 0..20_000 {
            let id = generator.next_id();
            assert!(id > last);
            last = id;
        }
        let skew = last.timestamp_ms() as i64 - now_ms() as i64;
        assert!(skew.abs() < 10_000, "timestamp off by {skew} ms");
    }

    #[test]
    fn wire_form_is_a_string_and_round_trips() {
        let id = Snowflake(1234567890123456789);
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, "\"1234567890123456789\"");
        let back: Snowflake = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, id);
        assert!(serde_json::from_str::<Snowflake>("\"12a\"").is_err());
        assert!(serde_json::from_str::<Snowflake>("\"-1\"").is_err());
        assert!(serde_json::from_str::<Snowflake>("\"99999999999999999999999\"").is_err());
    }

    #[test]
    fn binary_forms_are_the_plain_number() {
        let id = Snowflake(1234567890123456789);
        let config = bincode::config::standard();
        let serde_bytes = bincode::serde::encode_to_vec(id, config).expect("serde");
        let native_bytes = bincode::encode_to_vec(id, config).expect("native");
        assert_eq!(
            serde_bytes,
            bincode::encode_to_vec(id.0, config).expect("u64")
        );
        assert_eq!(native_bytes, serde_bytes);
        let (back, _): (Snowflake, usize) =
            bincode::serde::decode_from_slice(&serde_bytes, config).expect("serde back");
        assert_eq!(back, id);
        let (back, _): (Snowflake, usize) =
            bincode::decode_from_slice(&native_bytes, config).expect("native back");
        assert_eq!(back, id);
    }
}
