//! A user's presence, computed from their sessions' heartbeats: kept off the actor so the rules
//! are unit-tested with explicit times.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::PresenceOp;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::rich::PresenceStatus;

/// Timings of presence.
#[derive(Debug, Clone, Copy)]
pub struct PresenceTimings {
    /// A session that has not beaten for this long is gone (30 s).
    pub session_ttl: Duration,
    /// A user whose sessions were all idle this long is away (5 min).
    pub away_after: Duration,
    /// A presence actor started right after placement changed waits this long before it
    /// declares anyone offline, so sessions can find it (one heartbeat interval and a bit).
    pub warm_up: Duration,
}

impl Default for PresenceTimings {
    fn default() -> Self {
        PresenceTimings {
            session_ttl: Duration::from_secs(30),
            away_after: Duration::from_secs(300),
            warm_up: Duration::from_secs(16),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    last_beat: Instant,
    active_at: Instant,
}

/// What the actor must do after a change.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    /// The status changed: tell every room.
    pub publish: bool,
    /// Rooms that asked and must be answered now.
    pub answer: Vec<Snowflake>,
}

/// One user's presence.
#[derive(Debug)]
pub struct PresenceState {
    /// The user.
    pub user: Snowflake,
    timings: PresenceTimings,
    sessions: HashMap<u64, Seen>,
    chosen: PresenceStatus,
    in_call: bool,
    /// The status last published.
    pub status: PresenceStatus,
    /// Set when the user went offline.
    pub last_seen: Option<u64>,
    /// Orders this actor's reports; time-based so a newer actor's reports win.
    pub version: u64,
    warm_until: Instant,
    waiting: Vec<Snowflake>,
}

impl PresenceState {
    /// A fresh state; `warm`: wait [`PresenceTimings::warm_up`] before declaring offline.
    pub fn new(user: Snowflake, timings: PresenceTimings, now: Instant, warm: bool) -> Self {
        PresenceState {
            user,
            timings,
            sessions: HashMap::new(),
            chosen: PresenceStatus::Online,
            in_call: false,
            status: PresenceStatus::Offline,
            last_seen: None,
            version: 0,
            warm_until: if warm { now + timings.warm_up } else { now },
            waiting: Vec::new(),
        }
    }

    /// The status the sessions add up to now.
    pub fn compute(&self, now: Instant) -> PresenceStatus {
        if self.sessions.is_empty() {
            return PresenceStatus::Offline;
        }
        if self.in_call {
            return PresenceStatus::InCall;
        }
        match self.chosen {
            PresenceStatus::Dnd => PresenceStatus::Dnd,
            PresenceStatus::Away => PresenceStatus::Away,
            _ => {
                let idle = self
                    .sessions
                    .values()
                    .all(|s| now.duration_since(s.active_at) >= self.timings.away_after);
                if idle {
                    PresenceStatus::Away
                } else {
                    PresenceStatus::Online
                }
            }
        }
    }

    fn warming(&self, now: Instant) -> bool {
        now < self.warm_until
    }

    /// Applies an op.
    pub fn apply(&mut self, op: PresenceOp, now: Instant) -> Effects {
        match op {
            PresenceOp::Attach { session_id } => {
                self.sessions.insert(
                    session_id,
                    Seen {
                        last_beat: now,
                        active_at: now,
                    },
                );
            }
            PresenceOp::Beat {
                session_id,
                idle_ms,
            } => {
                let active_at = now
                    .checked_sub(Duration::from_millis(idle_ms))
                    .unwrap_or(now);
                self.sessions.insert(
                    session_id,
                    Seen {
                        last_beat: now,
                        active_at,
                    },
                );
            }
            PresenceOp::Detach { session_id } => {
                self.sessions.remove(&session_id);
            }
            PresenceOp::Set { status } => {
                if matches!(
                    status,
                    PresenceStatus::Online | PresenceStatus::Away | PresenceStatus::Dnd
                ) {
                    self.chosen = status;
                }
                // Choosing a status is activity.
                for s in self.sessions.values_mut() {
                    s.active_at = now;
                }
            }
            PresenceOp::InCall { on } => self.in_call = on,
            PresenceOp::Probe { room } => {
                let room = Snowflake(room);
                if !self.waiting.contains(&room) {
                    self.waiting.push(room);
                }
            }
        }
        self.settle(now)
    }

    /// Time passed: sessions that stopped beating are gone, idle users turn away.
    pub fn tick(&mut self, now: Instant) -> Effects {
        let ttl = self.timings.session_ttl;
        self.sessions
            .retain(|_, s| now.duration_since(s.last_beat) < ttl);
        self.settle(now)
    }

    fn settle(&mut self, now: Instant) -> Effects {
        let mut effects = Effects::default();
        let status = self.compute(now);
        // While warming up, "offline" may only mean the sessions have not found us yet.
        let hold = self.warming(now) && status == PresenceStatus::Offline;
        if !hold {
            if status != self.status {
                self.status = status;
                self.last_seen = (status == PresenceStatus::Offline).then(now_ms);
                self.version = (self.version + 1).max(now_ms() << 10);
                effects.publish = true;
            }
            effects.answer = std::mem::take(&mut self.waiting);
            if self.version == 0 {
                self.version = now_ms() << 10;
            }
        }
        effects
    }

    /// Nothing left to do: no sessions, offline published, nobody waiting.
    pub fn finished(&self, now: Instant) -> bool {
        self.sessions.is_empty()
            && self.status == PresenceStatus::Offline
            && self.waiting.is_empty()
            && !self.warming(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(warm: bool) -> (PresenceState, Instant) {
        let now = Instant::now();
        let s = PresenceState::new(Snowflake(1), PresenceTimings::default(), now, warm);
        (s, now)
    }

    #[test]
    fn online_with_a_session_offline_only_when_the_last_one_ends() {
        let (mut s, t) = state(false);
        assert!(s.apply(PresenceOp::Attach { session_id: 1 }, t).publish);
        assert_eq!(s.status, PresenceStatus::Online);
        assert!(!s.apply(PresenceOp::Attach { session_id: 2 }, t).publish);
        assert!(!s.apply(PresenceOp::Detach { session_id: 1 }, t).publish);
        assert_eq!(s.status, PresenceStatus::Online);
        assert!(s.apply(PresenceOp::Detach { session_id: 2 }, t).publish);
        assert_eq!(s.status, PresenceStatus::Offline);
        assert!(s.last_seen.is_some());
        assert!(s.finished(t));
    }

    #[test]
    fn sessions_that_stop_beating_expire_after_the_ttl() {
        let (mut s, t) = state(false);
        s.apply(PresenceOp::Attach { session_id: 1 }, t);
        s.apply(PresenceOp::Attach { session_id: 2 }, t);
        let t15 = t + Duration::from_secs(15);
        s.apply(
            PresenceOp::Beat {
                session_id: 2,
                idle_ms: 0,
            },
            t15,
        );
        assert!(!s.tick(t + Duration::from_secs(29)).publish);
        // Session 1 is gone at 30 s, session 2 still beats.
        assert!(!s.tick(t + Duration::from_secs(31)).publish);
        assert_eq!(s.status, PresenceStatus::Online);
        assert!(s.tick(t15 + Duration::from_secs(30)).publish);
        assert_eq!(s.status, PresenceStatus::Offline);
    }

    #[test]
    fn idle_turns_away_and_activity_or_choice_turn_it_back() {
        let (mut s, t) = state(false);
        s.apply(PresenceOp::Attach { session_id: 1 }, t);
        let later = t + Duration::from_secs(20);
        let effects = s.apply(
            PresenceOp::Beat {
                session_id: 1,
                idle_ms: 301_000,
            },
            later,
        );
        assert!(effects.publish);
        assert_eq!(s.status, PresenceStatus::Away);
        s.apply(
            PresenceOp::Beat {
                session_id: 1,
                idle_ms: 10,
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Online);
        s.apply(
            PresenceOp::Set {
                status: PresenceStatus::Dnd,
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Dnd);
        // A client cannot claim in_call or offline; the server sets in_call.
        s.apply(
            PresenceOp::Set {
                status: PresenceStatus::Offline,
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Dnd);
        s.apply(PresenceOp::InCall { on: true }, later);
        assert_eq!(s.status, PresenceStatus::InCall);
    }

    #[test]
    fn a_warming_actor_holds_offline_and_probes_until_the_warm_up_ends() {
        let (mut s, t) = state(true);
        let effects = s.apply(PresenceOp::Probe { room: 9 }, t);
        assert!(effects.answer.is_empty(), "probe waits while warming up");
        assert!(!s.finished(t));
        let effects = s.tick(t + Duration::from_secs(17));
        assert_eq!(effects.answer, vec![Snowflake(9)]);
        assert!(!effects.publish, "offline was already the status");
        assert!(s.finished(t + Duration::from_secs(17)));
        // A session found during warm-up is published at once.
        let (mut s, t) = state(true);
        s.apply(PresenceOp::Probe { room: 9 }, t);
        let effects = s.apply(PresenceOp::Attach { session_id: 1 }, t);
        assert!(effects.publish);
        assert_eq!(effects.answer, vec![Snowflake(9)]);
    }

    #[test]
    fn versions_grow() {
        let (mut s, t) = state(false);
        s.apply(PresenceOp::Attach { session_id: 1 }, t);
        let v1 = s.version;
        s.apply(PresenceOp::Detach { session_id: 1 }, t);
        assert!(s.version > v1);
    }
}
