//! The call actor: one per 1:1 call, a child of its direct conversation's room actor (which
//! routes the sides' `call:*` requests and media changes to it). It owns the call's state
//! machine ([`machine`]) and its timers; what the machine decides goes back to the room as
//! [`CallReport`]s (tell both sides, ring the callee, disconnect the media, log a system
//! message). It stops once the call has ended.

pub mod machine;

use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::call::{CallInfo, CallPhase};

pub use machine::{CallInput, CallMachine, CallRefused, CallTimings, Effect, Timer};

/// What the machine decided, for the room to carry out.
#[derive(Debug, Clone)]
pub struct CallReport {
    /// The call as it is now.
    pub info: CallInfo,
    /// State changes, rings and the end, in order (timers stay with the actor).
    pub effects: Vec<Effect>,
}

/// Where reports go (the room actor, or a test).
pub type ReportSink = Arc<dyn Fn(CallReport) -> bool + Send + Sync>;

/// Messages a call actor handles.
#[derive(Debug)]
pub enum CallMsg {
    /// An input from a side (through the room) or from the room's media.
    Input {
        /// What happened.
        input: CallInput,
        /// The call afterwards, or why the input was refused.
        reply: Option<RpcReplyPort<Result<CallInfo, CallRefused>>>,
    },
    /// A timer armed with this generation went off.
    Fire(Timer, u64),
}

/// Start-up arguments.
pub struct CallArgs {
    /// The call's id.
    pub call_id: Snowflake,
    /// Its direct conversation.
    pub room_id: Snowflake,
    /// The rules, not yet started.
    pub machine: CallMachine,
    /// The callee is in another call.
    pub busy: bool,
    /// The callee has a session to ring.
    pub reachable: bool,
    /// Where reports go; `false` back means nobody listens any more (the call stops).
    pub report: ReportSink,
}

/// The call actor.
pub struct CallActor;

/// Its state.
pub struct CallState {
    call_id: Snowflake,
    room_id: Snowflake,
    machine: CallMachine,
    /// Wall-clock time of the first connection (for `connectedAt`).
    connected_wall_ms: Option<u64>,
    report: ReportSink,
    start: Option<(bool, bool)>,
}

impl CallState {
    /// The call as clients see it.
    pub fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.call_id,
            room_id: self.room_id,
            state: self.machine.phase,
            caller_id: self.machine.caller,
            callee_id: self.machine.callee,
            connected_at: self.connected_wall_ms.map(voiceflow_wire::time::rfc3339),
        }
    }

    /// Arms the timers among `effects` and reports the rest; `false` if nobody listens.
    fn carry_out(&mut self, me: &ActorRef<CallMsg>, effects: Vec<Effect>) -> bool {
        if self.machine.connected_at.is_some() && self.connected_wall_ms.is_none() {
            self.connected_wall_ms = Some(now_ms());
        }
        let mut reported = Vec::with_capacity(effects.len());
        for effect in effects {
            match effect {
                Effect::Arm(timer, after, generation) => {
                    let me = me.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        let _ = me.cast(CallMsg::Fire(timer, generation));
                    });
                }
                other => reported.push(other),
            }
        }
        if reported.is_empty() {
            return true;
        }
        (self.report)(CallReport {
            info: self.info(),
            effects: reported,
        })
    }

    fn handle_input(
        &mut self,
        me: &ActorRef<CallMsg>,
        input: CallInput,
    ) -> Result<CallInfo, CallRefused> {
        let effects = self
            .machine
            .apply(input, tokio::time::Instant::now().into_std())?;
        if !self.carry_out(me, effects) {
            me.stop(None);
        }
        Ok(self.info())
    }
}

impl Actor for CallActor {
    type Msg = CallMsg;
    type State = CallState;
    type Arguments = CallArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<CallMsg>,
        args: CallArgs,
    ) -> Result<CallState, ActorProcessingErr> {
        Ok(CallState {
            call_id: args.call_id,
            room_id: args.room_id,
            machine: args.machine,
            connected_wall_ms: None,
            report: args.report,
            start: Some((args.busy, args.reachable)),
        })
    }

    async fn post_start(
        &self,
        me: ActorRef<CallMsg>,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some((busy, reachable)) = state.start.take() {
            let effects =
                state
                    .machine
                    .start(busy, reachable, tokio::time::Instant::now().into_std());
            if !state.carry_out(&me, effects) || state.machine.phase == CallPhase::Ended {
                me.stop(None);
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        me: ActorRef<CallMsg>,
        msg: CallMsg,
        state: &mut CallState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CallMsg::Input { input, reply } => {
                let result = state.handle_input(&me, input);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            CallMsg::Fire(timer, generation) => {
                let _ = state.handle_input(&me, CallInput::Timeout(timer, generation));
            }
        }
        if state.machine.phase == CallPhase::Ended {
            me.stop(None);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
