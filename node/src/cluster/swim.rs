//! SWIM membership (`cluster.membership = "swim"`): pure logic, no sockets, time passed in.
//!
//! Failure detection is the `foca` crate's SWIM, as in the simulator (`sim/src/swim.rs`,
//! whose figures chose it): each probe period a node pings one member (round robin over a
//! shuffled list); without an ack within the probe RTT it asks others to ping it; still
//! nothing and the member is *suspected*, and declared down unless it refutes the suspicion
//! within the suspicion timeout. Updates ride on the probes (piggybacked gossip), so a node
//! sends O(1) messages per period whatever the cluster's size. Two of foca's defaults are
//! changed as in the simulator: updates are sent twice as many times, and the anti-entropy
//! announce runs every 10 s instead of 30 s.
//!
//! On top of foca, the fencing rules that keep the all-to-all membership's semantics:
//! - **quorum**: a node serves only while it sees a strict majority of the members alive and
//!   *not suspected* (Down members still count in the total; Left ones do not);
//! - **lease**: a node that received no SWIM packet at all for the lease (two thirds of the
//!   suspicion timeout) fences itself. A member declaring it down had a probe fail after its
//!   last packet and then waited the whole suspicion timeout, so a cut-off node stopped
//!   before anyone decides it is down;
//! - **catch-up**: after starting, or regaining a quorum, a node owns nothing for a third of
//!   the suspicion timeout (its view may miss members it has not heard from yet);
//! - **settle**: rooms of a node declared down start elsewhere once it was declared down
//!   (it fenced itself before that; storage epochs fence a write still landing).
//!
//! The tokio side (`mod.rs`) feeds packets in ([`Swim::on_packet`]), calls [`Swim::tick`]
//! at [`Swim::next_deadline`], and sends what [`Swim::take_packets`] returns.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{
    Config, Error as FocaError, Foca, NoCustomBroadcast, Notification, OwnedNotification,
    PeriodicParams, Runtime, State, Timer,
};
use rand_core::SeedableRng;
use voiceflow_wire::cluster::swim::{SwimCodec, SwimId};
use voiceflow_wire::cluster::{MemberInfo, MemberState, NodeId};

use super::membership::Change;

type Rng = rand_pcg::Pcg64Mcg;
type Machine = Foca<SwimId, SwimCodec, Rng, NoCustomBroadcast>;

/// Timings of the SWIM membership.
#[derive(Debug, Clone)]
pub struct SwimSettings {
    /// How often a node probes one member (`cluster.heartbeat_interval_ms`).
    pub probe_period: Duration,
    /// A member suspected for this long is declared down (`cluster.failure_timeout_ms`).
    pub suspect_to_down: Duration,
}

impl SwimSettings {
    /// How long a node may go without receiving anything before it fences itself.
    pub fn lease(&self) -> Duration {
        self.suspect_to_down * 2 / 3
    }

    /// How long a node that (re)gained a quorum owns nothing.
    pub fn catch_up(&self) -> Duration {
        self.suspect_to_down / 3
    }

    /// foca's settings: memberlist's LAN defaults with this node's timings, updates sent twice
    /// as many times, an anti-entropy announce every 10 s, and members declared down
    /// re-announced to every suspicion timeout (a healed partition meets again in seconds,
    /// not the default 65 s).
    fn foca_config(&self, members: usize) -> Config {
        let size = u32::try_from(members.max(2)).unwrap_or(u32::MAX);
        let size = std::num::NonZeroU32::new(size).unwrap_or(std::num::NonZeroU32::MIN);
        let mut config = Config::new_lan(size);
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_period / 2;
        config.suspect_to_down_after = self.suspect_to_down;
        let doubled = config.max_transmissions.get().saturating_mul(2);
        config.max_transmissions =
            std::num::NonZeroU8::new(doubled).unwrap_or(config.max_transmissions);
        if let Some(announce) = config.periodic_announce.as_mut() {
            announce.frequency = Duration::from_secs(10);
        }
        config.periodic_announce_to_down_members = Some(PeriodicParams {
            frequency: self.suspect_to_down.max(Duration::from_millis(500)),
            num_members: std::num::NonZeroUsize::new(2).unwrap_or(std::num::NonZeroUsize::MIN),
        });
        config
    }
}

/// A member as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Up,
    Leaving,
    /// Declared down at that instant.
    Down(Instant),
    Left,
}

#[derive(Debug, Clone)]
struct Peer {
    id: SwimId,
    seen: Seen,
}

/// The SWIM membership view of one node.
pub struct Swim {
    me: MemberInfo,
    settings: SwimSettings,
    foca: Machine,
    peers: BTreeMap<NodeId, Peer>,
    /// What each node's latest hello said (HTTP address, versions, counts).
    hellos: BTreeMap<NodeId, MemberInfo>,
    suspected: BTreeSet<NodeId>,
    timers: BTreeMap<(Instant, u64), Timer<SwimId>>,
    timer_seq: u64,
    outbox: Vec<(SwimId, Vec<u8>)>,
    last_received: Instant,
    quorate: bool,
    catching_up_until: Option<Instant>,
    serving: bool,
    /// Members foca was last configured for (its gossip fan-out grows with the cluster).
    sized_for: usize,
    /// When this node last announced itself to a peer that said hello (at most once per
    /// probe period each).
    announced: BTreeMap<NodeId, Instant>,
    /// Pending change, returned by the next call.
    change: Change,
}

/// foca's runtime for one call: what it sends and schedules, and what it notices.
struct Rt<'a> {
    now: Instant,
    outbox: &'a mut Vec<(SwimId, Vec<u8>)>,
    timers: &'a mut BTreeMap<(Instant, u64), Timer<SwimId>>,
    timer_seq: &'a mut u64,
    notes: Vec<OwnedNotification<SwimId>>,
}

impl Runtime<SwimId> for Rt<'_> {
    fn notify(&mut self, notification: Notification<'_, SwimId>) {
        self.notes.push(notification.to_owned());
    }

    fn send_to(&mut self, to: SwimId, data: &[u8]) {
        self.outbox.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<SwimId>, after: Duration) {
        *self.timer_seq += 1;
        self.timers
            .insert((self.now + after, *self.timer_seq), event);
    }
}

impl Swim {
    /// A view holding only this node (`me`, reachable at `addr`); `seed` seeds foca's
    /// randomness (which member to probe next).
    pub fn new(
        me: MemberInfo,
        addr: SocketAddr,
        settings: SwimSettings,
        seed: u64,
        now: Instant,
    ) -> Self {
        let id = SwimId::new(me.node_id, me.incarnation, addr);
        let foca = Foca::new(
            id,
            settings.foca_config(2),
            Rng::seed_from_u64(seed),
            SwimCodec,
        );
        let mut swim = Swim {
            me,
            settings,
            foca,
            peers: BTreeMap::new(),
            hellos: BTreeMap::new(),
            suspected: BTreeSet::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            outbox: Vec::new(),
            last_received: now,
            quorate: false,
            catching_up_until: None,
            serving: false,
            sized_for: 2,
            announced: BTreeMap::new(),
            change: Change::default(),
        };
        swim.refresh(now);
        swim
    }

    /// Runs one foca call with a runtime, follows its notifications, re-applies the rules.
    fn drive(&mut self, now: Instant, call: impl FnOnce(&mut Machine, &mut Rt<'_>)) -> Change {
        let mut rt = Rt {
            now,
            outbox: &mut self.outbox,
            timers: &mut self.timers,
            timer_seq: &mut self.timer_seq,
            notes: Vec::new(),
        };
        call(&mut self.foca, &mut rt);
        let notes = std::mem::take(&mut rt.notes);
        for note in notes {
            self.follow(note, now);
        }
        self.refresh(now);
        std::mem::take(&mut self.change)
    }

    fn follow(&mut self, note: OwnedNotification<SwimId>, now: Instant) {
        match note {
            OwnedNotification::MemberUp(id) | OwnedNotification::Rename(_, id) => self.up(id),
            OwnedNotification::MemberDown(id) => {
                let Some(peer) = self.peers.get_mut(&id.node) else {
                    return;
                };
                if id.rank() >= peer.id.rank() && matches!(peer.seen, Seen::Up | Seen::Leaving) {
                    peer.id = id;
                    peer.seen = if id.leaving {
                        Seen::Left
                    } else {
                        Seen::Down(now)
                    };
                    self.change.placement = true;
                    self.change.down.push(id.node);
                }
            }
            // This node's own standing: it was declared down and rejoined under a renewed
            // identity, or lost every member; the fencing rules cover both.
            OwnedNotification::Active
            | OwnedNotification::Idle
            | OwnedNotification::Defunct
            | OwnedNotification::Rejoin(_) => {}
        }
    }

    fn up(&mut self, id: SwimId) {
        if id.node == self.me.node_id {
            return;
        }
        let seen = if id.leaving { Seen::Leaving } else { Seen::Up };
        match self.peers.get_mut(&id.node) {
            Some(peer) if id.rank() < peer.id.rank() => {}
            Some(peer) => {
                let restarted = id.incarnation > peer.id.incarnation;
                let was_alive = matches!(peer.seen, Seen::Up | Seen::Leaving);
                self.change.placement |= peer.seen != seen || restarted;
                peer.id = id;
                peer.seen = seen;
                if restarted || !was_alive {
                    self.change.dial.push(info_of(peer, &self.hellos));
                }
            }
            None => {
                let peer = Peer { id, seen };
                self.change.placement = true;
                self.change.dial.push(info_of(&peer, &self.hellos));
                self.peers.insert(id.node, peer);
            }
        }
    }

    /// Re-reads suspicions and re-applies the fencing rules.
    fn refresh(&mut self, now: Instant) {
        self.suspected = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| m.id().node)
            .collect();
        let (mut alive, mut total) = (1usize, 1usize);
        for (node, peer) in &self.peers {
            match peer.seen {
                Seen::Up | Seen::Leaving => {
                    total += 1;
                    if !self.suspected.contains(node) {
                        alive += 1;
                    }
                }
                Seen::Down(_) => total += 1,
                Seen::Left => {}
            }
        }
        // Alone (no other member known) there is nobody to hear from.
        let leased =
            total == 1 || now.saturating_duration_since(self.last_received) < self.settings.lease();
        let quorate = alive * 2 > total && leased;
        if quorate && !self.quorate {
            self.catching_up_until = Some(now + self.settings.catch_up());
        }
        self.quorate = quorate;
        if self.catching_up_until.is_some_and(|until| now >= until) {
            self.catching_up_until = None;
        }
        let serving = quorate && self.catching_up_until.is_none();
        if serving != self.serving {
            self.serving = serving;
            self.change.placement = true;
        }
        // foca's gossip fan-out and transmissions grow with the cluster.
        if total > self.sized_for * 2 {
            self.sized_for = total;
            let _ = self.foca.set_config(self.settings.foca_config(total));
        }
    }

    /// A SWIM packet from `from` (the node the link's certificate names).
    pub fn on_packet(
        &mut self,
        from: NodeId,
        packet: &[u8],
        now: Instant,
    ) -> Result<Change, String> {
        let sender =
            voiceflow_wire::cluster::swim::packet_sender(packet).map_err(|e| e.to_string())?;
        if sender.node != from {
            return Err(format!(
                "a SWIM packet of node {from} names node {}",
                sender.node
            ));
        }
        self.last_received = now;
        let mut error = None;
        let change = self.drive(now, |foca, rt| {
            if let Err(e) = foca.handle_data(packet, rt) {
                error = Some(e);
            }
        });
        match error {
            // Junk from a peer: its connection is closed, as for any bad frame.
            Some(
                e @ (FocaError::Decode(_) | FocaError::MalformedPacket | FocaError::DataTooBig),
            ) => Err(e.to_string()),
            // Refused by foca's own rules (a packet naming this node as its sender, an
            // indirect probe for itself): nothing to act on.
            Some(
                e @ (FocaError::NotUndead
                | FocaError::SameIdentity
                | FocaError::NotConnected
                | FocaError::IncompleteProbeCycle
                | FocaError::DataFromOurselves
                | FocaError::IndirectForOurselves
                | FocaError::Encode(_)
                | FocaError::CustomBroadcast(_)
                | FocaError::InvalidConfig),
            ) => {
                tracing::debug!(peer = from, error = %e, "SWIM packet ignored");
                Ok(change)
            }
            None => Ok(change),
        }
    }

    /// A peer said hello on a stream: remember what it says about itself, and announce this
    /// node to it if SWIM does not count it alive (a joiner introducing itself to a seed, or
    /// a peer across a healed partition).
    pub fn heard(&mut self, info: MemberInfo, now: Instant) -> Change {
        let Ok(addr) = info.quic_addr.parse::<SocketAddr>() else {
            return Change::default();
        };
        if info.node_id == self.me.node_id {
            return Change::default();
        }
        let id = SwimId::new(info.node_id, info.incarnation, addr);
        if self
            .hellos
            .get(&info.node_id)
            .is_some_and(|known| known.incarnation > info.incarnation)
        {
            return Change::default();
        }
        self.hellos.insert(info.node_id, info.clone());
        let alive = self.peers.get(&info.node_id).is_some_and(|peer| {
            peer.id.incarnation >= info.incarnation && matches!(peer.seen, Seen::Up | Seen::Leaving)
        });
        let recently = self
            .announced
            .get(&id.node)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.settings.probe_period);
        if alive || recently {
            return Change::default();
        }
        self.announced.insert(id.node, now);
        let mut change = self.drive(now, |foca, rt| {
            let _ = foca.announce(id, rt);
        });
        // Dial it, so the answer to the announce has a link.
        change.dial.push(info);
        change
    }

    /// Fires due timers and re-checks the lease and catch-up.
    pub fn tick(&mut self, now: Instant) -> Change {
        let mut change = Change::default();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            change.merge(self.drive(now, |foca, rt| {
                let _ = foca.handle_timer(timer, rt);
            }));
        }
        self.refresh(now);
        change.merge(std::mem::take(&mut self.change));
        change
    }

    /// When [`tick`](Self::tick) must run next: a foca timer, the lease, catch-up ending.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let lease = (!self.peers.is_empty()).then(|| self.last_received + self.settings.lease());
        self.timers
            .keys()
            .next()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(lease.filter(|at| *at > now))
            .chain(self.catching_up_until)
            .min()
    }

    /// Packets to send: (to whom, bytes).
    pub fn take_packets(&mut self) -> Vec<(SwimId, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// This node starts draining: it owns nothing from now on, and tells the others (a new
    /// identity marked leaving).
    pub fn set_leaving(&mut self, now: Instant) -> Change {
        if self.me.state == MemberState::Leaving {
            return Change::default();
        }
        self.me.state = MemberState::Leaving;
        let id = *self.foca.identity();
        let next = SwimId {
            generation: id.generation.wrapping_add(1),
            leaving: true,
            ..id
        };
        let mut change = self.drive(now, |foca, rt| {
            let _ = foca.change_identity(next, rt);
        });
        change.placement = true;
        change
    }

    /// Final goodbye: members mark this node Left at once.
    pub fn leave(&mut self, now: Instant) {
        let _ = self.drive(now, |foca, rt| {
            let _ = foca.leave_cluster(rt);
        });
    }

    /// This node's own entry.
    pub fn me(&self) -> MemberInfo {
        self.me.clone()
    }

    /// Updates the figures this node reports about itself.
    pub fn set_my_counts(&mut self, rooms: u32, sessions: u32) {
        self.me.rooms = rooms;
        self.me.sessions = sessions;
    }

    /// Every member, this node included.
    pub fn list(&self) -> Vec<MemberInfo> {
        std::iter::once(self.me())
            .chain(self.peers.values().map(|p| info_of(p, &self.hellos)))
            .collect()
    }

    /// Members worth talking to (alive, not this node).
    pub fn peers(&self) -> Vec<MemberInfo> {
        self.peers
            .values()
            .filter(|p| matches!(p.seen, Seen::Up | Seen::Leaving))
            .map(|p| info_of(p, &self.hellos))
            .collect()
    }

    /// A member's state.
    pub fn state_of(&self, node: NodeId) -> Option<MemberState> {
        if node == self.me.node_id {
            return Some(self.me.state);
        }
        self.peers.get(&node).map(|p| state(p.seen))
    }

    /// Whether `node` may be dead: suspected, or not alive in this view.
    pub fn is_silent(&self, node: NodeId) -> bool {
        node != self.me.node_id
            && (self.suspected.contains(&node)
                || !matches!(
                    self.state_of(node),
                    Some(MemberState::Up | MemberState::Leaving)
                ))
    }

    /// Whether this node may own rooms.
    pub fn serving(&self) -> bool {
        self.serving
    }

    /// The nodes that own rooms now (Up), sorted, or empty while not serving.
    pub fn owners(&self) -> Vec<NodeId> {
        if !self.serving {
            return Vec::new();
        }
        let mut owners: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| p.seen == Seen::Up)
            .map(|(n, _)| *n)
            .collect();
        if self.me.state == MemberState::Up {
            owners.push(self.me.node_id);
            owners.sort_unstable();
        }
        owners
    }

    /// When rooms of members declared down may start elsewhere (`write_timeout` after they
    /// were declared down: they had fenced themselves by then).
    pub fn settle_deadline(&self, write_timeout: Duration) -> Option<Instant> {
        self.peers
            .values()
            .filter_map(|p| match p.seen {
                Seen::Down(at) => Some(at + write_timeout),
                Seen::Up | Seen::Leaving | Seen::Left => None,
            })
            .max()
    }

    /// How long a node that (re)gained a quorum owns nothing.
    pub fn catch_up(&self) -> Duration {
        self.settings.catch_up()
    }
}

fn state(seen: Seen) -> MemberState {
    match seen {
        Seen::Up => MemberState::Up,
        Seen::Leaving => MemberState::Leaving,
        Seen::Down(_) => MemberState::Down,
        Seen::Left => MemberState::Left,
    }
}

/// A peer as a member entry: what its hello said, with the state SWIM gives it.
fn info_of(peer: &Peer, hellos: &BTreeMap<NodeId, MemberInfo>) -> MemberInfo {
    let mut info = match hellos.get(&peer.id.node) {
        Some(info) if info.incarnation == peer.id.incarnation => info.clone(),
        _ => MemberInfo {
            node_id: peer.id.node,
            incarnation: peer.id.incarnation,
            quic_addr: peer.id.addr.to_string(),
            http_addr: String::new(),
            state: MemberState::Up,
            rooms: 0,
            sessions: 0,
            protocols: (0, 0),
        },
    };
    info.state = state(peer.seen);
    info
}

#[cfg(test)]
#[path = "swim_tests.rs"]
mod tests;
