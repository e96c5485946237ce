//! SWIM membership packets (`cluster.membership = "swim"`): the identity a node has in the
//! `foca` state machine and the compact binary codec of foca's packets. A packet travels
//! as the bytes of a [`super::PeerMsg::Swim`] frame (protocol 11) on the link's control
//! stream; this module is what both ends must agree on inside those bytes.
//!
//! Layout of an identity (16 or 28 bytes): node id `u16`, incarnation (start time, Unix ms)
//! `u64`, generation `u32` (bumped when the node rejoins after being declared down, or
//! starts draining), a flags byte (bit 0: leaving), then the QUIC address: `4` + 4 bytes or
//! `6` + 16 bytes, and the port `u16`. The address is part of the identity so that a member
//! learned through gossip can be dialled; the incarnation so that a restarted node (same id,
//! same address) is a new member that replaces the old one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Identity, Member, Message, State};

use super::NodeId;

/// A node as the SWIM state machine knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SwimId {
    /// Node id.
    pub node: NodeId,
    /// Start time (Unix ms), as in [`super::MemberInfo::incarnation`].
    pub incarnation: u64,
    /// Bumped on every identity change within one run (a rejoin after being declared down,
    /// the start of a drain).
    pub generation: u32,
    /// Draining: owns nothing, still hands off what it had.
    pub leaving: bool,
    /// Its QUIC address (where to dial it).
    pub addr: SocketAddr,
}

impl SwimId {
    /// A node's first identity of a run.
    pub fn new(node: NodeId, incarnation: u64, addr: SocketAddr) -> Self {
        SwimId {
            node,
            incarnation,
            generation: 0,
            leaving: false,
            addr,
        }
    }

    /// The order in which identities of one node replace each other.
    pub fn rank(&self) -> (u64, u32, bool) {
        (self.incarnation, self.generation, self.leaving)
    }
}

impl Identity for SwimId {
    type Addr = NodeId;

    fn renew(&self) -> Option<Self> {
        Some(SwimId {
            generation: self.generation.wrapping_add(1),
            ..*self
        })
    }

    fn addr(&self) -> NodeId {
        self.node
    }

    fn win_addr_conflict(&self, other: &Self) -> bool {
        self.rank() > other.rank()
    }
}

/// Why a SWIM packet did not decode (or encode).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SwimCodecError {
    /// The packet ended early.
    #[error("truncated packet")]
    Truncated,
    /// An unknown message, state or address tag.
    #[error("unknown tag {0}")]
    Tag(u8),
    /// No room left in the output buffer.
    #[error("buffer full")]
    Full,
}

/// foca's codec for [`SwimId`] packets.
#[derive(Debug, Default, Clone, Copy)]
pub struct SwimCodec;

/// The largest encoded identity.
const MAX_ID: usize = 2 + 8 + 4 + 1 + 1 + 16 + 2;

fn need(buf: &impl Buf, n: usize) -> Result<(), SwimCodecError> {
    if buf.remaining() < n {
        return Err(SwimCodecError::Truncated);
    }
    Ok(())
}

fn put_id(id: &SwimId, buf: &mut impl BufMut) {
    buf.put_u16(id.node);
    buf.put_u64(id.incarnation);
    buf.put_u32(id.generation);
    buf.put_u8(u8::from(id.leaving));
    match id.addr.ip() {
        IpAddr::V4(ip) => {
            buf.put_u8(4);
            buf.put_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.put_u8(6);
            buf.put_slice(&ip.octets());
        }
    }
    buf.put_u16(id.addr.port());
}

fn get_id(buf: &mut impl Buf) -> Result<SwimId, SwimCodecError> {
    need(buf, 2 + 8 + 4 + 1 + 1)?;
    let node = buf.get_u16();
    let incarnation = buf.get_u64();
    let generation = buf.get_u32();
    let leaving = match buf.get_u8() {
        0 => false,
        1 => true,
        other => return Err(SwimCodecError::Tag(other)),
    };
    let ip = match buf.get_u8() {
        4 => {
            need(buf, 4)?;
            let mut o = [0u8; 4];
            buf.copy_to_slice(&mut o);
            IpAddr::V4(Ipv4Addr::from(o))
        }
        6 => {
            need(buf, 16)?;
            let mut o = [0u8; 16];
            buf.copy_to_slice(&mut o);
            IpAddr::V6(Ipv6Addr::from(o))
        }
        other => return Err(SwimCodecError::Tag(other)),
    };
    need(buf, 2)?;
    let port = buf.get_u16();
    Ok(SwimId {
        node,
        incarnation,
        generation,
        leaving,
        addr: SocketAddr::new(ip, port),
    })
}

/// Writes a foca header with its ids through `put_id`: sender, its incarnation, recipient,
/// then the message ([`message_parts`]). Shared with the simulator's codec.
pub fn put_header<I, B: BufMut>(h: &Header<I>, buf: &mut B, put_id: impl Fn(&I, &mut B)) {
    put_id(&h.src, buf);
    buf.put_u16(h.src_incarnation);
    put_id(&h.dst, buf);
    let (tag, id, number) = message_parts(&h.message);
    buf.put_u8(tag);
    if let Some(id) = id {
        put_id(id, buf);
    }
    if let Some(number) = number {
        buf.put_u8(number);
    }
}

/// Reads what [`put_header`] wrote, ids through `get_id`; `truncated` and `bad_tag` make the
/// codec's errors.
pub fn get_header<I, B: Buf, E>(
    buf: &mut B,
    get_id: impl Fn(&mut B) -> Result<I, E>,
    truncated: impl Fn() -> E,
    bad_tag: impl Fn(u8) -> E,
) -> Result<Header<I>, E> {
    let src = get_id(buf)?;
    if buf.remaining() < 2 {
        return Err(truncated());
    }
    let src_incarnation = buf.get_u16();
    let dst = get_id(buf)?;
    let byte = |buf: &mut B| match buf.remaining() {
        0 => Err(truncated()),
        _ => Ok(buf.get_u8()),
    };
    let tag = byte(buf)?;
    let (has_id, has_number) = message_shape(tag).ok_or_else(|| bad_tag(tag))?;
    let id = if has_id { Some(get_id(buf)?) } else { None };
    let number = if has_number { Some(byte(buf)?) } else { None };
    let message = message_from_parts(tag, id, number).ok_or_else(|| bad_tag(tag))?;
    Ok(Header {
        src,
        src_incarnation,
        dst,
        message,
    })
}

/// A member's state as one byte (shared with the simulator's codec).
pub fn state_tag(state: State) -> u8 {
    match state {
        State::Alive => 0,
        State::Suspect => 1,
        State::Down => 2,
    }
}

/// The state of [`state_tag`]'s byte; `None` for an unknown one.
pub fn state_of(tag: u8) -> Option<State> {
    match tag {
        0 => Some(State::Alive),
        1 => Some(State::Suspect),
        2 => Some(State::Down),
        _ => None,
    }
}

/// The identity-free part of a foca message's encoding: its tag, the member it names (if
/// any) and its probe number (if any), written in that order. The simulator's codec, whose
/// identities carry no address, shares it.
pub fn message_parts<I>(message: &Message<I>) -> (u8, Option<&I>, Option<u8>) {
    match message {
        Message::Ping(n) => (0, None, Some(*n)),
        Message::Ack(n) => (1, None, Some(*n)),
        Message::PingReq {
            target,
            probe_number,
        } => (2, Some(target), Some(*probe_number)),
        Message::IndirectPing {
            origin,
            probe_number,
        } => (3, Some(origin), Some(*probe_number)),
        Message::IndirectAck {
            target,
            probe_number,
        } => (4, Some(target), Some(*probe_number)),
        Message::ForwardedAck {
            origin,
            probe_number,
        } => (5, Some(origin), Some(*probe_number)),
        Message::Announce => (6, None, None),
        Message::Feed => (7, None, None),
        Message::Gossip => (8, None, None),
        Message::Broadcast => (9, None, None),
        Message::TurnUndead => (10, None, None),
    }
}

/// What follows `tag` ([`message_parts`]): whether a member, whether a probe number; `None`
/// for an unknown tag.
pub fn message_shape(tag: u8) -> Option<(bool, bool)> {
    match tag {
        0 | 1 => Some((false, true)),
        2..=5 => Some((true, true)),
        6..=10 => Some((false, false)),
        _ => None,
    }
}

/// The message of `tag` with what [`message_shape`] said follows it; `None` when they do not
/// fit.
pub fn message_from_parts<I>(tag: u8, id: Option<I>, number: Option<u8>) -> Option<Message<I>> {
    Some(match (tag, id, number) {
        (0, None, Some(n)) => Message::Ping(n),
        (1, None, Some(n)) => Message::Ack(n),
        (2, Some(target), Some(probe_number)) => Message::PingReq {
            target,
            probe_number,
        },
        (3, Some(origin), Some(probe_number)) => Message::IndirectPing {
            origin,
            probe_number,
        },
        (4, Some(target), Some(probe_number)) => Message::IndirectAck {
            target,
            probe_number,
        },
        (5, Some(origin), Some(probe_number)) => Message::ForwardedAck {
            origin,
            probe_number,
        },
        (6, None, None) => Message::Announce,
        (7, None, None) => Message::Feed,
        (8, None, None) => Message::Gossip,
        (9, None, None) => Message::Broadcast,
        (10, None, None) => Message::TurnUndead,
        _ => return None,
    })
}

impl Codec<SwimId> for SwimCodec {
    type Error = SwimCodecError;

    fn encode_header(
        &mut self,
        h: &Header<SwimId>,
        mut buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        if buf.remaining_mut() < 3 * MAX_ID + 2 + 2 {
            return Err(SwimCodecError::Full);
        }
        put_header(h, &mut buf, |id, buf| put_id(id, buf));
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<SwimId>, Self::Error> {
        get_header(
            &mut buf,
            |buf| get_id(buf),
            || SwimCodecError::Truncated,
            SwimCodecError::Tag,
        )
    }

    fn encode_member(
        &mut self,
        m: &Member<SwimId>,
        mut buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        if buf.remaining_mut() < MAX_ID + 3 {
            return Err(SwimCodecError::Full);
        }
        put_id(m.id(), &mut buf);
        buf.put_u16(m.incarnation());
        buf.put_u8(state_tag(m.state()));
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<SwimId>, Self::Error> {
        let id = get_id(&mut buf)?;
        need(&buf, 3)?;
        let incarnation = buf.get_u16();
        let tag = buf.get_u8();
        let state = state_of(tag).ok_or(SwimCodecError::Tag(tag))?;
        Ok(Member::new(id, incarnation, state))
    }
}

/// The sender a packet names (its header's `src`), to check it against the link it came on.
pub fn packet_sender(packet: &[u8]) -> Result<SwimId, SwimCodecError> {
    SwimCodec.decode_header(packet).map(|h| h.src)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(node: NodeId, v6: bool) -> SwimId {
        let addr = if v6 {
            SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 4001))
        } else {
            SocketAddr::from(([127, 0, 0, 1], 4000 + node))
        };
        SwimId {
            node,
            incarnation: 1_700_000_000_000 + u64::from(node),
            generation: 3,
            leaving: node.is_multiple_of(2),
            addr,
        }
    }

    #[test]
    fn headers_and_members_round_trip() {
        let messages = [
            Message::Ping(1),
            Message::Ack(2),
            Message::PingReq {
                target: id(3, true),
                probe_number: 3,
            },
            Message::IndirectPing {
                origin: id(4, false),
                probe_number: 4,
            },
            Message::IndirectAck {
                target: id(5, false),
                probe_number: 5,
            },
            Message::ForwardedAck {
                origin: id(6, true),
                probe_number: 6,
            },
            Message::Announce,
            Message::Feed,
            Message::Gossip,
            Message::Broadcast,
            Message::TurnUndead,
        ];
        for message in messages {
            let header = Header {
                src: id(1, false),
                src_incarnation: 9,
                dst: id(2, true),
                message,
            };
            let mut buf = Vec::new();
            SwimCodec.encode_header(&header, &mut buf).expect("encodes");
            assert_eq!(SwimCodec.decode_header(&buf[..]), Ok(header.clone()));
            assert_eq!(packet_sender(&buf), Ok(id(1, false)));
            // Every strict prefix is refused, never a panic.
            for cut in 0..buf.len() {
                assert!(SwimCodec.decode_header(&buf[..cut]).is_err(), "{cut}");
            }
        }
        for state in [State::Alive, State::Suspect, State::Down] {
            let member = Member::new(id(7, false), 4, state);
            let mut buf = Vec::new();
            SwimCodec.encode_member(&member, &mut buf).expect("encodes");
            let back = SwimCodec.decode_member(&buf[..]).expect("decodes");
            assert_eq!(
                (back.id(), back.incarnation(), back.state()),
                (member.id(), 4, state)
            );
        }
    }

    #[test]
    fn unknown_tags_are_errors() {
        let mut buf = Vec::new();
        put_id(&id(1, false), &mut buf);
        buf[14] = 7; // flags
        assert_eq!(get_id(&mut &buf[..]), Err(SwimCodecError::Tag(7)));
        buf[14] = 0;
        buf[15] = 5; // address family
        assert_eq!(get_id(&mut &buf[..]), Err(SwimCodecError::Tag(5)));
    }

    #[test]
    fn a_restarted_node_wins_over_its_old_identity() {
        let old = id(1, false);
        let renewed = old.renew().expect("renews");
        assert!(renewed.win_addr_conflict(&old));
        let restarted = SwimId::new(1, old.incarnation + 1, old.addr);
        assert!(restarted.win_addr_conflict(&renewed));
        assert_eq!(restarted.addr(), old.addr());
    }
}
