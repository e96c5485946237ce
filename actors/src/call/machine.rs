//! The rules of a 1:1 call, without sockets or clocks: inputs in, effects out, every instant
//! passed in by the caller, so each transition and timeout is unit-tested directly.
//!
//! ```text
//! idle ─start─▶ dialing ─callee reachable─▶ ringing ─accept─▶ connecting ─both media up─▶ connected
//!   │              │ busy / ring timeout (missed) / decline / cancel │ connect timeout (failed)  │
//!   └──────────────┴──────────────────────────────▶ ending ─▶ ended ◀───── hangup / grace over ─┘
//! ```
//! A side whose media drops while connected sends the call back to `connecting` for a grace
//! period; back in time, the call is `connected` again and its duration keeps counting from
//! the first connection.

use std::time::{Duration, Instant};

use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::call::{CallPhase, EndReason};

/// How long each waiting state may last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimings {
    /// Dialing or ringing without an answer: missed.
    pub ring: Duration,
    /// Accepted, media not up on both sides: failed.
    pub connect: Duration,
    /// A side's media dropped while connected: disconnected unless it is back within this.
    pub grace: Duration,
}

impl Default for CallTimings {
    fn default() -> Self {
        CallTimings {
            ring: Duration::from_secs(30),
            connect: Duration::from_secs(30),
            grace: Duration::from_secs(10),
        }
    }
}

/// The timers a call arms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// No answer.
    Ring,
    /// Media never came up.
    Connect,
    /// A dropped side did not come back.
    Grace,
}

/// What happens to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallInput {
    /// The callee has a session to ring now.
    Reachable,
    /// The callee accepts (`by` must be the callee).
    Accept {
        /// Who sent it.
        by: Snowflake,
    },
    /// The callee declines.
    Decline {
        /// Who sent it.
        by: Snowflake,
    },
    /// The caller gives up before an answer.
    Cancel {
        /// Who sent it.
        by: Snowflake,
    },
    /// Either side ends the call, in any state.
    Hangup {
        /// Who sent it.
        by: Snowflake,
    },
    /// A side's media connection is up.
    MediaUp(Snowflake),
    /// A side's media connection is gone (left, dropped, timed out).
    MediaDown(Snowflake),
    /// A timer armed with this generation fired.
    Timeout(Timer, u64),
}

/// What the owner of the machine must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Tell both sides the new state (`call:state`).
    State(CallPhase),
    /// Ring the callee's sessions (`call:incoming`).
    Ring,
    /// Fire `Timeout(timer, generation)` after the duration; older generations are void.
    Arm(Timer, Duration, u64),
    /// The call is over: tell both sides, disconnect their media, leave a system message.
    Ended {
        /// Why.
        reason: EndReason,
        /// How long it was connected.
        duration: Duration,
    },
}

/// Why an input was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallRefused {
    /// The sender is not the side that may do this.
    #[error("only the {0} may do this")]
    NotYours(&'static str),
    /// The call is past the point where this makes sense.
    #[error("the call is {0:?}")]
    WrongState(CallPhase),
}

/// One call between `caller` and `callee`.
#[derive(Debug, Clone)]
pub struct CallMachine {
    /// Who called.
    pub caller: Snowflake,
    /// Who is called.
    pub callee: Snowflake,
    /// Where the call is.
    pub phase: CallPhase,
    timings: CallTimings,
    /// When both sides' media first came up.
    pub connected_at: Option<Instant>,
    /// Whose media is up: caller, callee.
    media: [bool; 2],
    generation: u64,
}

impl CallMachine {
    /// A call not yet started.
    pub fn new(caller: Snowflake, callee: Snowflake, timings: CallTimings) -> Self {
        CallMachine {
            caller,
            callee,
            phase: CallPhase::Idle,
            timings,
            connected_at: None,
            media: [false, false],
            generation: 0,
        }
    }

    /// Whether the call is over.
    pub fn is_over(&self) -> bool {
        matches!(self.phase, CallPhase::Ending | CallPhase::Ended)
    }

    /// Starts dialing; `busy`: the callee is in another call, `reachable`: they have a session.
    pub fn start(&mut self, busy: bool, reachable: bool, now: Instant) -> Vec<Effect> {
        if self.phase != CallPhase::Idle {
            return Vec::new();
        }
        let mut out = self.enter(CallPhase::Dialing);
        if busy {
            out.extend(self.end(EndReason::Busy, now));
            return out;
        }
        out.push(self.arm(Timer::Ring, self.timings.ring));
        if reachable {
            out.extend(self.ring());
        }
        out
    }

    /// Applies one input at `now`.
    pub fn apply(&mut self, input: CallInput, now: Instant) -> Result<Vec<Effect>, CallRefused> {
        use CallPhase::*;
        Ok(match (input, self.phase) {
            (_, Ending | Ended) => match input {
                CallInput::Timeout(..) | CallInput::MediaUp(_) | CallInput::MediaDown(_) => vec![],
                _ => return Err(CallRefused::WrongState(self.phase)),
            },
            (CallInput::Reachable, Dialing) => self.ring(),
            (CallInput::Reachable, _) => vec![],
            (CallInput::Accept { by }, Dialing | Ringing) => {
                self.only(by, self.callee, "callee")?;
                let mut out = self.enter(Connecting);
                out.push(self.arm(Timer::Connect, self.timings.connect));
                out
            }
            (CallInput::Decline { by }, Dialing | Ringing) => {
                self.only(by, self.callee, "callee")?;
                self.end(EndReason::Declined, now)
            }
            (CallInput::Cancel { by }, Dialing | Ringing) => {
                self.only(by, self.caller, "caller")?;
                self.end(EndReason::Cancelled, now)
            }
            (CallInput::Hangup { by }, Dialing | Ringing) => {
                if by == self.caller {
                    self.end(EndReason::Cancelled, now)
                } else if by == self.callee {
                    self.end(EndReason::Declined, now)
                } else {
                    return Err(CallRefused::NotYours("caller or callee"));
                }
            }
            (CallInput::Hangup { by }, Connecting | Connected) => {
                if by != self.caller && by != self.callee {
                    return Err(CallRefused::NotYours("caller or callee"));
                }
                let reason = match self.connected_at {
                    Some(_) => EndReason::HungUp,
                    None => EndReason::Cancelled,
                };
                self.end(reason, now)
            }
            (CallInput::MediaUp(user), Connecting) => {
                self.set_media(user, true);
                if self.media == [true, true] {
                    self.connected_at.get_or_insert(now);
                    self.generation += 1; // the connect or grace timer no longer matters
                    self.enter(Connected)
                } else {
                    vec![]
                }
            }
            (CallInput::MediaDown(user), Connected) if self.is_side(user) => {
                self.set_media(user, false);
                let mut out = self.enter(Connecting);
                out.push(self.arm(Timer::Grace, self.timings.grace));
                out
            }
            (CallInput::MediaUp(user), _) | (CallInput::MediaDown(user), _) => {
                // Media before the answer, or a second connection of a side: noted only.
                if matches!(self.phase, Connecting | Connected) {
                    self.set_media(user, matches!(input, CallInput::MediaUp(_)));
                }
                vec![]
            }
            (CallInput::Timeout(timer, generation), phase) => {
                if generation != self.generation {
                    return Ok(vec![]);
                }
                match (timer, phase) {
                    (Timer::Ring, Dialing | Ringing) => self.end(EndReason::Missed, now),
                    (Timer::Connect, Connecting) => self.end(EndReason::Failed, now),
                    (Timer::Grace, Connecting) => self.end(EndReason::Disconnected, now),
                    _ => vec![],
                }
            }
            (CallInput::Accept { .. } | CallInput::Decline { .. }, _)
            | (CallInput::Cancel { .. }, _)
            | (CallInput::Hangup { .. }, _) => return Err(CallRefused::WrongState(self.phase)),
        })
    }

    fn only(&self, by: Snowflake, who: Snowflake, name: &'static str) -> Result<(), CallRefused> {
        if by == who {
            Ok(())
        } else {
            Err(CallRefused::NotYours(name))
        }
    }

    fn is_side(&self, user: Snowflake) -> bool {
        user == self.caller || user == self.callee
    }

    fn set_media(&mut self, user: Snowflake, up: bool) {
        if user == self.caller {
            self.media[0] = up;
        } else if user == self.callee {
            self.media[1] = up;
        }
    }

    fn enter(&mut self, phase: CallPhase) -> Vec<Effect> {
        self.phase = phase;
        vec![Effect::State(phase)]
    }

    fn ring(&mut self) -> Vec<Effect> {
        let mut out = self.enter(CallPhase::Ringing);
        out.push(Effect::Ring);
        out
    }

    fn arm(&mut self, timer: Timer, after: Duration) -> Effect {
        self.generation += 1;
        Effect::Arm(timer, after, self.generation)
    }

    fn end(&mut self, reason: EndReason, now: Instant) -> Vec<Effect> {
        self.generation += 1;
        let duration = self
            .connected_at
            .map_or(Duration::ZERO, |at| now.saturating_duration_since(at));
        let mut out = self.enter(CallPhase::Ending);
        out.push(Effect::Ended { reason, duration });
        self.phase = CallPhase::Ended;
        out
    }
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;
