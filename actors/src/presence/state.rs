//! A user's presence, computed from their sessions' heartbeats: kept off the actor so the rules
//! are unit-tested with explicit times.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{ChosenStatus, PresenceOp};
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
    /// The client said its tab is focused and visible (`session:focus`).
    focused: bool,
}

/// The last word of one voice channel or call about the user.
#[derive(Debug, Clone, Copy)]
struct CallMark {
    on: bool,
    at_ms: u64,
    arrived: Instant,
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
    /// The newest status the user chose (`at_ms` 0: none known to this actor).
    chosen: ChosenStatus,
    /// What each voice channel or call last said (in it or not, when), and when that arrived;
    /// the user is in a call while any says so. One that stops confirming (its node died)
    /// stops saying so (its node died) lapses after the session TTL.
    calls: HashMap<Snowflake, CallMark>,
    /// The status last published.
    pub status: PresenceStatus,
    /// When one of the user's sessions was last heard from (Unix ms); `None` if this actor
    /// never heard from any (it took over from a node that died).
    pub last_seen: Option<u64>,
    /// Orders this actor's reports; time-based so a newer actor's reports win.
    pub version: u64,
    /// When a focused session last stopped being focused (unfocused, left or lapsed; Unix
    /// ms). A push for an event at or before it is held back: a focused session was there to
    /// see it, and in a cluster the offer can arrive after the session's later unfocus.
    focus_ended_ms: u64,
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
            chosen: ChosenStatus {
                status: PresenceStatus::Online,
                at_ms: 0,
            },
            calls: HashMap::new(),
            status: PresenceStatus::Offline,
            last_seen: None,
            version: 0,
            focus_ended_ms: 0,
            warm_until: if warm { now + timings.warm_up } else { now },
            waiting: Vec::new(),
        }
    }

    /// The status the sessions add up to now.
    pub fn compute(&self, now: Instant) -> PresenceStatus {
        if self.sessions.is_empty() {
            return PresenceStatus::Offline;
        }
        if self.calls.values().any(|c| c.on) {
            return PresenceStatus::InCall;
        }
        match self.chosen.status {
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
        if matches!(
            op,
            PresenceOp::Attach { .. }
                | PresenceOp::Beat { .. }
                | PresenceOp::Detach { .. }
                | PresenceOp::Set { .. }
        ) {
            self.last_seen = Some(now_ms());
        }
        match op {
            PresenceOp::Attach { session_id } => {
                // A focus report that overtook the attach (it may come through another
                // node's link after a take-over) is kept.
                let focused = self.sessions.get(&session_id).is_some_and(|s| s.focused);
                self.sessions.insert(
                    session_id,
                    Seen {
                        last_beat: now,
                        active_at: now,
                        focused,
                    },
                );
            }
            PresenceOp::Beat {
                session_id,
                idle_ms,
                chosen,
            } => {
                if let Some(chosen) = chosen {
                    self.choose(chosen);
                }
                let active_at = now
                    .checked_sub(Duration::from_millis(idle_ms))
                    .unwrap_or(now);
                let focused = self.sessions.get(&session_id).is_some_and(|s| s.focused);
                self.sessions.insert(
                    session_id,
                    Seen {
                        last_beat: now,
                        active_at,
                        focused,
                    },
                );
            }
            PresenceOp::Detach { session_id } => {
                if self.sessions.remove(&session_id).is_some_and(|s| s.focused) {
                    self.focus_ended_ms = now_ms();
                }
            }
            PresenceOp::Set { chosen } => {
                self.choose(chosen);
                // Choosing a status is activity.
                for s in self.sessions.values_mut() {
                    s.active_at = now;
                }
            }
            PresenceOp::InCall { channel, on, at_ms } => {
                let newer = self
                    .calls
                    .get(&channel)
                    .is_none_or(|c| at_ms > c.at_ms || (at_ms == c.at_ms && !on));
                if newer {
                    self.calls.insert(
                        channel,
                        CallMark {
                            on,
                            at_ms,
                            arrived: now,
                        },
                    );
                }
            }
            PresenceOp::Probe { room } => {
                if !self.waiting.contains(&room) {
                    self.waiting.push(room);
                }
            }
            PresenceOp::Focus {
                session_id,
                focused,
                at_ms,
            } => {
                // A focus report is a sign of life (it may reach an actor that took over
                // before the session's next beat).
                let seen = self.sessions.entry(session_id).or_insert(Seen {
                    last_beat: now,
                    active_at: now,
                    focused,
                });
                if seen.focused && !focused {
                    // The session's time, not this actor's: the report may be read late.
                    self.focus_ended_ms = self.focus_ended_ms.max(at_ms);
                }
                seen.focused = focused;
                seen.last_beat = now;
            }
            // Decided by the actor with [`PresenceState::holds_push`]; no state.
            PresenceOp::Push { .. } => {}
            // From a node of version 10: made when they arrive.
            op @ (PresenceOp::FocusUntimed { .. } | PresenceOp::PushUntimed { .. }) => {
                return self.apply(op.timed(now_ms()), now);
            }
        }
        self.settle(now)
    }

    /// Whether one of the user's live sessions said its tab is focused: then they see what
    /// happens there and get no push.
    pub fn has_focused_session(&self) -> bool {
        self.sessions.values().any(|s| s.focused)
    }

    /// Whether a push for an event at `at_ms` (Unix ms) is held back: a session is focused
    /// now, or one was focused after that time (the clocks of the event's node and the
    /// session's are assumed within a few ms, as NTP keeps them). An event in the very
    /// millisecond a focus ended is pushed: better a notification too many than a missed one.
    pub fn holds_push(&self, at_ms: u64) -> bool {
        self.has_focused_session() || self.focus_ended_ms > at_ms
    }

    /// A chosen status newer than the one known (a client cannot choose in_call or offline).
    fn choose(&mut self, chosen: ChosenStatus) {
        let allowed = matches!(
            chosen.status,
            PresenceStatus::Online | PresenceStatus::Away | PresenceStatus::Dnd
        );
        if allowed && chosen.at_ms >= self.chosen.at_ms {
            self.chosen = chosen;
        }
    }

    /// Time passed: sessions that stopped beating are gone, idle users turn away, calls whose
    /// room stopped confirming them are over.
    pub fn tick(&mut self, now: Instant) -> Effects {
        let ttl = self.timings.session_ttl;
        let before = self.has_focused_session();
        self.sessions
            .retain(|_, s| now.duration_since(s.last_beat) < ttl);
        if before && !self.has_focused_session() {
            self.focus_ended_ms = now_ms();
        }
        self.calls
            .retain(|_, c| now.duration_since(c.arrived) < ttl);
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
                chosen: None,
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
                chosen: None,
            },
            later,
        );
        assert!(effects.publish);
        assert_eq!(s.status, PresenceStatus::Away);
        s.apply(
            PresenceOp::Beat {
                session_id: 1,
                idle_ms: 10,
                chosen: None,
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Online);
        s.apply(
            PresenceOp::Set {
                chosen: chose(PresenceStatus::Dnd, 1),
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Dnd);
        // A client cannot claim in_call or offline; the server sets in_call.
        s.apply(
            PresenceOp::Set {
                chosen: chose(PresenceStatus::Offline, 2),
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::Dnd);
        s.apply(
            PresenceOp::InCall {
                channel: Snowflake(7),
                on: true,
                at_ms: 1,
            },
            later,
        );
        assert_eq!(s.status, PresenceStatus::InCall);
    }

    fn chose(status: PresenceStatus, at_ms: u64) -> ChosenStatus {
        ChosenStatus { status, at_ms }
    }

    fn beat(session_id: u64, chosen: Option<ChosenStatus>) -> PresenceOp {
        PresenceOp::Beat {
            session_id,
            idle_ms: 0,
            chosen,
        }
    }

    #[test]
    fn an_actor_that_took_over_learns_the_newest_chosen_status_from_heartbeats() {
        let (mut s, t) = state(true);
        // The phone chose dnd at 100, the browser chose away earlier; neither told this actor.
        s.apply(beat(1, Some(chose(PresenceStatus::Away, 50))), t);
        s.apply(beat(2, Some(chose(PresenceStatus::Dnd, 100))), t);
        assert_eq!(s.status, PresenceStatus::Dnd);
        s.apply(beat(1, Some(chose(PresenceStatus::Away, 50))), t);
        assert_eq!(
            s.status,
            PresenceStatus::Dnd,
            "an older choice does not win"
        );
        s.apply(beat(3, None), t);
        assert_eq!(s.status, PresenceStatus::Dnd);
        s.apply(beat(1, Some(chose(PresenceStatus::InCall, 200))), t);
        assert_eq!(s.status, PresenceStatus::Dnd, "in_call cannot be chosen");
    }

    #[test]
    fn calls_count_per_channel_and_lapse_when_their_room_stops_confirming() {
        let (mut s, t) = state(false);
        s.apply(PresenceOp::Attach { session_id: 1 }, t);
        let call = |channel, on, at_ms| PresenceOp::InCall {
            channel: Snowflake(channel),
            on,
            at_ms,
        };
        s.apply(call(7, true, 10), t);
        s.apply(call(8, true, 10), t);
        s.apply(call(7, false, 20), t);
        assert_eq!(s.status, PresenceStatus::InCall, "still in channel 8");
        // Channel 8: a confirmation sent before the leave arrives after it, and changes nothing.
        s.apply(call(8, false, 30), t);
        s.apply(call(8, true, 29), t);
        assert_eq!(s.status, PresenceStatus::Online);
        s.apply(call(8, true, 40), t);
        assert_eq!(s.status, PresenceStatus::InCall);
        // Channel 8's node dies: nobody confirms or ends it; the session keeps beating.
        let t20 = t + Duration::from_secs(20);
        s.apply(beat(1, None), t20);
        assert!(!s.tick(t + Duration::from_secs(29)).publish);
        assert!(s.tick(t + Duration::from_secs(31)).publish);
        assert_eq!(s.status, PresenceStatus::Online);
    }

    #[test]
    fn last_seen_is_when_a_session_was_last_heard_and_unknown_if_never() {
        let (mut s, t) = state(true);
        s.tick(t + Duration::from_secs(17));
        assert_eq!(s.status, PresenceStatus::Offline);
        assert_eq!(s.last_seen, None, "took over without hearing from anyone");
        s.apply(PresenceOp::Attach { session_id: 1 }, t);
        let online = s.last_seen.expect("heard");
        assert!(online > 0);
        s.apply(PresenceOp::Detach { session_id: 1 }, t);
        assert!(s.last_seen.expect("heard") >= online);
    }

    #[test]
    fn a_warming_actor_holds_offline_and_probes_until_the_warm_up_ends() {
        let (mut s, t) = state(true);
        let effects = s.apply(PresenceOp::Probe { room: Snowflake(9) }, t);
        assert!(effects.answer.is_empty(), "probe waits while warming up");
        assert!(!s.finished(t));
        let effects = s.tick(t + Duration::from_secs(17));
        assert_eq!(effects.answer, vec![Snowflake(9)]);
        assert!(!effects.publish, "offline was already the status");
        assert!(s.finished(t + Duration::from_secs(17)));
        // A session found during warm-up is published at once.
        let (mut s, t) = state(true);
        s.apply(PresenceOp::Probe { room: Snowflake(9) }, t);
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

    #[test]
    fn focus_is_per_session_survives_beats_and_ends_with_the_session() {
        let (mut p, now) = state(false);
        p.apply(PresenceOp::Attach { session_id: 1 }, now);
        p.apply(PresenceOp::Attach { session_id: 2 }, now);
        assert!(!p.has_focused_session());
        let focus = |session_id, focused| PresenceOp::Focus {
            session_id,
            focused,
            at_ms: now_ms(),
        };
        p.apply(focus(2, true), now);
        assert!(p.has_focused_session());
        let beat = PresenceOp::Beat {
            session_id: 2,
            idle_ms: 0,
            chosen: None,
        };
        p.apply(beat, now);
        assert!(p.has_focused_session(), "a beat keeps the focus");
        p.apply(focus(2, false), now);
        assert!(!p.has_focused_session());
        p.apply(focus(1, true), now);
        p.apply(PresenceOp::Detach { session_id: 1 }, now);
        assert!(
            !p.has_focused_session(),
            "a detached session is not focused"
        );
    }

    #[test]
    fn a_push_for_an_event_a_focused_session_was_there_for_is_held_however_late() {
        let (mut p, now) = state(false);
        let seen = now_ms();
        let focus = |session_id, focused, at_ms| PresenceOp::Focus {
            session_id,
            focused,
            at_ms,
        };
        // A focus that overtook its session's attach is kept.
        p.apply(focus(1, true, seen - 10), now);
        p.apply(PresenceOp::Attach { session_id: 1 }, now);
        assert!(p.has_focused_session());
        assert!(p.holds_push(seen));
        // Unfocused 5 ms after the event (the report read whenever): an offer for the event
        // is held; one for an event in that millisecond or later is pushed, however late
        // the report was read.
        p.apply(focus(1, false, seen + 5), now);
        assert!(p.holds_push(seen), "the event happened while focused");
        assert!(!p.holds_push(seen + 5), "the focus had just ended");
        assert!(!p.holds_push(seen + 1_000), "nobody focused since");
        // An older report read late does not move the end back.
        p.apply(focus(1, true, seen + 6), now);
        p.apply(focus(1, false, seen + 1), now);
        assert!(p.holds_push(seen + 4));
        // The same when a focused session leaves or stops beating (the actor's clock).
        p.apply(focus(1, true, seen + 7), now);
        p.apply(PresenceOp::Detach { session_id: 1 }, now);
        assert!(p.holds_push(now_ms() - 1) && !p.holds_push(now_ms() + 1_000));
        p.apply(PresenceOp::Attach { session_id: 2 }, now);
        p.apply(focus(2, true, now_ms()), now);
        let later = now + Duration::from_secs(3_600);
        p.tick(later);
        assert!(!p.has_focused_session(), "the session lapsed");
        assert!(p.holds_push(now_ms() - 1) && !p.holds_push(now_ms() + 1_000));
    }

    #[test]
    fn a_report_of_the_previous_release_counts_from_its_arrival() {
        let (mut p, now) = state(false);
        p.apply(PresenceOp::Attach { session_id: 1 }, now);
        let focus = |focused| PresenceOp::FocusUntimed {
            session_id: 1,
            focused,
        };
        p.apply(focus(true), now);
        assert!(p.has_focused_session());
        let before = now_ms();
        p.apply(focus(false), now);
        assert!(!p.has_focused_session());
        assert!(p.holds_push(before - 1) && !p.holds_push(now_ms() + 1_000));
    }
}
