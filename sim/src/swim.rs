//! SWIM membership (the `foca` crate): each probe period a node pings one member (round
//! robin over a shuffled list); without an answer within `probe_rtt` it asks
//! `num_indirect_probes` others to ping it; still nothing and the member is *suspected*, and
//! declared down if it does not refute the suspicion (by bumping its incarnation) within
//! `suspect_to_down_after`. Membership updates ride on the probes (piggybacked gossip), so a
//! node sends O(1) messages per period whatever N is.
//!
//! On top of foca, the fencing rules that keep today's quorum-and-lease semantics:
//! - **quorum**: a node serves only while it sees a strict majority of the members alive
//!   and *not suspected* (Down members still count in the total; Left ones do not);
//! - **lease**: a node that received nothing at all for `lease` fences itself. Any member
//!   declaring it down first had a probe fail *after* its last message and then waited
//!   `suspect_to_down_after` ≥ `lease`, so a cut-off node has stopped before anyone decides
//!   it is down; its rooms start elsewhere `write_timeout` after that (its last write landed).

use bytes::{Buf, BufMut, Bytes};
use foca::{
    Codec, Config, Foca, Header, Identity, Member as FocaMember, NoCustomBroadcast, Notification,
    OwnedNotification, Runtime, State, Timer,
};
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::cluster::swim::{get_header, put_header, state_of, state_tag};

use crate::engine::{MS, Member, Nanos, Outbox};
use crate::rng::{SimRng, derive};

/// A SWIM identity: the node, its generation (bumped on rejoin) and whether it is draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwimId {
    /// Node id.
    pub node: NodeId,
    /// Generation: a node declared down rejoins as the next one.
    pub generation: u32,
    /// Draining: owns nothing, still hands off what it had.
    pub leaving: bool,
}

impl SwimId {
    /// The first identity of `node`.
    pub fn new(node: NodeId) -> Self {
        SwimId {
            node,
            generation: 0,
            leaving: false,
        }
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
        (self.generation, self.leaving) > (other.generation, other.leaving)
    }
}

/// Why a SWIM packet did not decode.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The packet ended early.
    #[error("truncated packet")]
    Truncated,
    /// An unknown message or state tag.
    #[error("unknown tag {0}")]
    Tag(u8),
    /// No room left in the output buffer.
    #[error("buffer full")]
    Full,
}

/// A compact binary codec (7-byte identities).
#[derive(Debug, Default, Clone, Copy)]
pub struct SwimCodec;

fn need(buf: &impl Buf, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        return Err(CodecError::Truncated);
    }
    Ok(())
}

fn put_id(id: &SwimId, buf: &mut impl BufMut) {
    buf.put_u16(id.node);
    buf.put_u32(id.generation);
    buf.put_u8(u8::from(id.leaving));
}

fn get_id(buf: &mut impl Buf) -> Result<SwimId, CodecError> {
    need(buf, 7)?;
    Ok(SwimId {
        node: buf.get_u16(),
        generation: buf.get_u32(),
        leaving: buf.get_u8() != 0,
    })
}

impl Codec<SwimId> for SwimCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        h: &Header<SwimId>,
        mut buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        if buf.remaining_mut() < 7 + 2 + 7 + 1 + 8 {
            return Err(CodecError::Full);
        }
        put_header(h, &mut buf, |id, buf| put_id(id, buf));
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<SwimId>, Self::Error> {
        get_header(
            &mut buf,
            |buf| get_id(buf),
            || CodecError::Truncated,
            CodecError::Tag,
        )
    }

    fn encode_member(
        &mut self,
        m: &FocaMember<SwimId>,
        mut buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        if buf.remaining_mut() < 10 {
            return Err(CodecError::Full);
        }
        put_id(m.id(), &mut buf);
        buf.put_u16(m.incarnation());
        buf.put_u8(state_tag(m.state()));
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<FocaMember<SwimId>, Self::Error> {
        let id = get_id(&mut buf)?;
        need(&buf, 3)?;
        let incarnation = buf.get_u16();
        let tag = buf.get_u8();
        let state = state_of(tag).ok_or(CodecError::Tag(tag))?;
        Ok(FocaMember::new(id, incarnation, state))
    }
}

/// Settings of the SWIM membership.
#[derive(Debug, Clone)]
pub struct SwimConfig {
    /// A node that received nothing for this long fences itself (≤ the suspicion timeout).
    pub lease: Nanos,
    /// How often the fencing rules are re-checked.
    pub fence_check: Nanos,
    /// After starting, or regaining a quorum, a node owns nothing for this long: its view
    /// misses members it has not heard from yet, whom an acquire would not ask.
    pub catch_up: Nanos,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            lease: 3000 * MS,
            fence_check: 250 * MS,
            catch_up: 3000 * MS,
        }
    }
}

/// foca's settings for a cluster of `n`: memberlist's LAN defaults (1 s probe period, 500 ms
/// probe RTT, 3 indirect probes, suspicion 4 × log10(n) periods, gossip to 3 every 200 ms)
/// with updates sent twice as many times (8 × log10(n + 1)) and an anti-entropy announce
/// (a member answers with its member list) every 10 s instead of 30 s: with the defaults a
/// joiner stayed unknown to some nodes until it happened to probe them (20 s at N = 20).
pub fn foca_config(n: usize) -> Config {
    let size = std::num::NonZeroU32::new(n.max(2) as u32).unwrap_or(std::num::NonZeroU32::MIN);
    let mut config = Config::new_lan(size);
    let doubled = config.max_transmissions.get().saturating_mul(2);
    config.max_transmissions =
        std::num::NonZeroU8::new(doubled).unwrap_or(config.max_transmissions);
    if let Some(announce) = config.periodic_announce.as_mut() {
        announce.frequency = std::time::Duration::from_secs(10);
    }
    config
}

/// A member as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Unknown,
    Up,
    Leaving,
    Down(Nanos),
    Left,
}

/// A timer.
#[derive(Debug, Clone)]
pub enum SwimTimer {
    /// foca's own timers.
    Foca(Timer<SwimId>),
    /// Re-check the fencing rules.
    Fence,
}

/// One node running SWIM.
pub struct SwimNode {
    me: NodeId,
    cfg: SwimConfig,
    foca: Foca<SwimId, SwimCodec, SimRng, NoCustomBroadcast>,
    seen: Vec<(u32, Seen)>,
    suspected: Vec<bool>,
    last_received: Nanos,
    serving: bool,
    quorate: bool,
    catching_up_until: Option<Nanos>,
    leaving: bool,
    view_changed: bool,
}

struct Rt<'a> {
    out: &'a mut Outbox<SwimNode>,
    notes: Vec<OwnedNotification<SwimId>>,
}

impl Runtime<SwimId> for Rt<'_> {
    fn notify(&mut self, notification: Notification<'_, SwimId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        self.out
            .sends
            .push((to.node, Bytes::copy_from_slice(data), data.len() as u32));
    }

    fn submit_after(&mut self, event: Timer<SwimId>, after: std::time::Duration) {
        self.out
            .timers
            .push((after.as_nanos() as Nanos, SwimTimer::Foca(event)));
    }
}

impl SwimNode {
    /// A node of a cluster expected to hold about `n` members.
    pub fn new(me: NodeId, capacity: usize, n: usize, cfg: SwimConfig, seed: u64) -> Self {
        let foca = Foca::new(
            SwimId::new(me),
            foca_config(n),
            derive(seed, 0x5000 + u64::from(me)),
            SwimCodec,
        );
        SwimNode {
            me,
            cfg,
            foca,
            seen: vec![(0, Seen::Unknown); capacity],
            suspected: vec![false; capacity],
            last_received: 0,
            serving: false,
            quorate: false,
            catching_up_until: None,
            leaving: false,
            view_changed: true,
        }
    }

    /// Runs one foca call with a runtime, then follows its notifications.
    fn drive(
        &mut self,
        now: Nanos,
        out: &mut Outbox<Self>,
        call: impl FnOnce(&mut Foca<SwimId, SwimCodec, SimRng, NoCustomBroadcast>, &mut Rt<'_>),
    ) {
        let mut rt = Rt {
            out,
            notes: Vec::new(),
        };
        call(&mut self.foca, &mut rt);
        let notes = std::mem::take(&mut rt.notes);
        for note in notes {
            self.follow(note, now, out);
        }
        self.refresh(now, out);
    }

    fn follow(&mut self, note: OwnedNotification<SwimId>, now: Nanos, out: &mut Outbox<Self>) {
        match note {
            OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id) => {
                let slot = &mut self.seen[id.node as usize];
                if id.generation >= slot.0 || slot.1 == Seen::Unknown {
                    let state = if id.leaving { Seen::Leaving } else { Seen::Up };
                    let active = self.foca.iter_members().any(|m| m.id() == &id);
                    if active || matches!(slot.1, Seen::Unknown | Seen::Up | Seen::Leaving) {
                        *slot = (id.generation, state);
                        self.view_changed = true;
                    }
                }
            }
            OwnedNotification::MemberDown(id) => {
                let slot = &mut self.seen[id.node as usize];
                if id.generation >= slot.0 && matches!(slot.1, Seen::Up | Seen::Leaving) {
                    *slot = (
                        id.generation,
                        if id.leaving {
                            Seen::Left
                        } else {
                            Seen::Down(now)
                        },
                    );
                    self.view_changed = true;
                    out.downs.push(id.node);
                }
            }
            OwnedNotification::Active
            | OwnedNotification::Idle
            | OwnedNotification::Defunct
            | OwnedNotification::Rejoin(_) => {}
        }
    }

    /// Re-reads suspicions and re-applies the fencing rules.
    fn refresh(&mut self, now: Nanos, out: &mut Outbox<Self>) {
        let mut suspected = vec![false; self.suspected.len()];
        for m in self.foca.iter_membership_state() {
            if m.state() == State::Suspect {
                let n = m.id().node as usize;
                if n < suspected.len() {
                    suspected[n] = true;
                    if !self.suspected[n] {
                        out.suspects.push(m.id().node);
                    }
                }
            }
        }
        self.suspected = suspected;
        let (mut alive, mut total) = (1usize, 1usize);
        for (n, (_, seen)) in self.seen.iter().enumerate() {
            if n == self.me as usize {
                continue;
            }
            match seen {
                Seen::Up | Seen::Leaving => {
                    total += 1;
                    if !self.suspected[n] {
                        alive += 1;
                    }
                }
                Seen::Down(_) => total += 1,
                Seen::Unknown | Seen::Left => {}
            }
        }
        let leased = now.saturating_sub(self.last_received) < self.cfg.lease;
        let quorate = alive * 2 > total && leased;
        if quorate && !self.quorate {
            self.catching_up_until = Some(now + self.cfg.catch_up);
        }
        self.quorate = quorate;
        if self.catching_up_until.is_some_and(|until| now >= until) {
            self.catching_up_until = None;
        }
        let serving = quorate && self.catching_up_until.is_none();
        if serving != self.serving {
            self.serving = serving;
            self.view_changed = true;
        }
    }

    /// Starts: fence checks, and either a formed cluster (`all`) or an announce to `seed`.
    pub fn start(
        &mut self,
        all: &[NodeId],
        seed: Option<NodeId>,
        now: Nanos,
        out: &mut Outbox<Self>,
    ) {
        self.last_received = now;
        out.timers.push((self.cfg.fence_check, SwimTimer::Fence));
        let me = self.me;
        let members: Vec<FocaMember<SwimId>> = all
            .iter()
            .filter(|n| **n != me)
            .map(|n| FocaMember::alive(SwimId::new(*n)))
            .collect();
        self.drive(now, out, |foca, rt| {
            if !members.is_empty() {
                let _ = foca.apply_many(members.into_iter(), false, &mut *rt);
            }
            if let Some(seed) = seed {
                let _ = foca.announce(SwimId::new(seed), rt);
            }
        });
    }
}

impl Member for SwimNode {
    type Msg = Bytes;
    type Timer = SwimTimer;
    const RELIABLE: bool = false;

    fn id(&self) -> NodeId {
        self.me
    }

    fn on_timer(&mut self, timer: SwimTimer, now: Nanos, out: &mut Outbox<Self>) {
        match timer {
            SwimTimer::Foca(t) => self.drive(now, out, |foca, rt| {
                let _ = foca.handle_timer(t, rt);
            }),
            SwimTimer::Fence => {
                out.timers.push((self.cfg.fence_check, SwimTimer::Fence));
                self.refresh(now, out);
            }
        }
    }

    fn on_message(&mut self, _from: NodeId, msg: Bytes, now: Nanos, out: &mut Outbox<Self>) {
        self.last_received = now;
        self.drive(now, out, |foca, rt| {
            let _ = foca.handle_data(&msg, rt);
        });
    }

    fn owners(&self) -> Vec<NodeId> {
        if !self.serving {
            return Vec::new();
        }
        let mut owners: Vec<NodeId> = self
            .seen
            .iter()
            .enumerate()
            .filter(|(n, (_, s))| *n != self.me as usize && *s == Seen::Up)
            .map(|(n, _)| n as NodeId)
            .collect();
        if !self.leaving {
            owners.push(self.me);
            owners.sort_unstable();
        }
        owners
    }

    fn peers(&self) -> Vec<NodeId> {
        self.seen
            .iter()
            .enumerate()
            .filter(|(_, (_, s))| matches!(s, Seen::Up | Seen::Leaving))
            .map(|(n, _)| n as NodeId)
            .collect()
    }

    fn take_view_changed(&mut self) -> bool {
        std::mem::take(&mut self.view_changed)
    }

    fn settle_deadline(&self, write_timeout: Nanos) -> Option<Nanos> {
        self.seen
            .iter()
            .filter_map(|(_, s)| match s {
                Seen::Down(at) => Some(*at + write_timeout),
                _ => None,
            })
            .max()
    }

    fn begin_leave(&mut self, now: Nanos, out: &mut Outbox<Self>) {
        self.leaving = true;
        self.view_changed = true;
        let id = *self.foca.identity();
        let next = SwimId {
            generation: id.generation.wrapping_add(1),
            leaving: true,
            ..id
        };
        self.drive(now, out, |foca, rt| {
            let _ = foca.change_identity(next, rt);
        });
    }

    fn finish_leave(&mut self, now: Nanos, out: &mut Outbox<Self>) {
        self.drive(now, out, |foca, rt| {
            let _ = foca.leave_cluster(rt);
        });
    }
}
