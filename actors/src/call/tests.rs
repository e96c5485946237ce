//! The call actor with its real timers, on tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorRef, ActorStatus};
use tokio::sync::mpsc;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::call::{CallInfo, CallPhase, EndReason};

use super::*;

const ALICE: Snowflake = Snowflake(1);
const BOB: Snowflake = Snowflake(2);

async fn spawn(
    reachable: bool,
    busy: bool,
) -> (ActorRef<CallMsg>, mpsc::UnboundedReceiver<CallReport>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let args = CallArgs {
        call_id: Snowflake(10),
        room_id: Snowflake(20),
        machine: CallMachine::new(ALICE, BOB, CallTimings::default()),
        busy,
        reachable,
        report: Arc::new(move |r| tx.send(r).is_ok()),
    };
    let (actor, _) = Actor::spawn(None, CallActor, args).await.expect("spawn");
    (actor, rx)
}

async fn input(actor: &ActorRef<CallMsg>, input: CallInput) -> Result<CallInfo, CallRefused> {
    ractor::call!(actor, |reply| CallMsg::Input {
        input,
        reply: Some(reply)
    })
    .expect("the call actor answers")
}

/// Every state reported so far, and the end if there was one.
fn drain(
    rx: &mut mpsc::UnboundedReceiver<CallReport>,
) -> (Vec<CallPhase>, Option<(EndReason, Duration)>) {
    let (mut states, mut end) = (Vec::new(), None);
    while let Ok(report) = rx.try_recv() {
        for effect in report.effects {
            match effect {
                Effect::State(s) => states.push(s),
                Effect::Ended { reason, duration } => end = Some((reason, duration)),
                _ => {}
            }
        }
    }
    (states, end)
}

/// Lets spawned timers and the actor run on the paused clock.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_call_is_missed_after_thirty_seconds() {
    let (actor, mut rx) = spawn(true, false).await;
    settle().await;
    assert_eq!(
        drain(&mut rx).0,
        vec![CallPhase::Dialing, CallPhase::Ringing]
    );
    tokio::time::advance(Duration::from_secs(29)).await;
    settle().await;
    assert_eq!(drain(&mut rx), (vec![], None), "still ringing at 29 s");
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(
        drain(&mut rx),
        (
            vec![CallPhase::Ending],
            Some((EndReason::Missed, Duration::ZERO))
        )
    );
    settle().await;
    assert_eq!(actor.get_status(), ActorStatus::Stopped);
}

#[tokio::test(start_paused = true)]
async fn an_answered_call_counts_its_duration_until_hangup() {
    let (actor, mut rx) = spawn(true, false).await;
    assert_eq!(
        input(&actor, CallInput::Accept { by: ALICE }).await,
        Err(CallRefused::NotYours("callee"))
    );
    let info = input(&actor, CallInput::Accept { by: BOB })
        .await
        .expect("accepted");
    assert_eq!(info.state, CallPhase::Connecting);
    // Ring timeout passes while connecting: it no longer counts.
    tokio::time::advance(Duration::from_secs(20)).await;
    input(&actor, CallInput::MediaUp(ALICE))
        .await
        .expect("accepted");
    let info = input(&actor, CallInput::MediaUp(BOB))
        .await
        .expect("accepted");
    assert_eq!(info.state, CallPhase::Connected);
    assert!(info.connected_at.is_some());
    tokio::time::advance(Duration::from_secs(90)).await;
    settle().await;
    let info = input(&actor, CallInput::Hangup { by: ALICE })
        .await
        .expect("accepted");
    assert_eq!(info.state, CallPhase::Ended);
    let (states, end) = drain(&mut rx);
    assert_eq!(
        states,
        vec![
            CallPhase::Dialing,
            CallPhase::Ringing,
            CallPhase::Connecting,
            CallPhase::Connected,
            CallPhase::Ending
        ]
    );
    assert_eq!(end, Some((EndReason::HungUp, Duration::from_secs(90))));
}

#[tokio::test(start_paused = true)]
async fn a_side_that_drops_and_stays_away_ends_the_call_after_the_grace_period() {
    let (actor, mut rx) = spawn(true, false).await;
    input(&actor, CallInput::Accept { by: BOB })
        .await
        .expect("accepted");
    input(&actor, CallInput::MediaUp(ALICE))
        .await
        .expect("accepted");
    input(&actor, CallInput::MediaUp(BOB))
        .await
        .expect("accepted");
    tokio::time::advance(Duration::from_secs(5)).await;
    let info = input(&actor, CallInput::MediaDown(BOB))
        .await
        .expect("accepted");
    assert_eq!(info.state, CallPhase::Connecting);
    tokio::time::advance(Duration::from_secs(9)).await;
    settle().await;
    assert_eq!(drain(&mut rx).1, None, "within the grace period");
    tokio::time::advance(Duration::from_secs(2)).await;
    settle().await;
    assert_eq!(
        drain(&mut rx).1,
        Some((EndReason::Disconnected, Duration::from_secs(16)))
    );
}

#[tokio::test(start_paused = true)]
async fn accepted_media_that_never_connects_fails_and_a_busy_callee_ends_at_once() {
    let (actor, mut rx) = spawn(false, false).await;
    settle().await;
    assert_eq!(
        drain(&mut rx).0,
        vec![CallPhase::Dialing],
        "nobody to ring yet"
    );
    input(&actor, CallInput::Reachable).await.expect("accepted");
    input(&actor, CallInput::Accept { by: BOB })
        .await
        .expect("accepted");
    tokio::time::advance(Duration::from_secs(31)).await;
    settle().await;
    assert_eq!(drain(&mut rx).1, Some((EndReason::Failed, Duration::ZERO)));

    let (busy, mut rx) = spawn(true, true).await;
    settle().await;
    assert_eq!(drain(&mut rx).1, Some((EndReason::Busy, Duration::ZERO)));
    assert_eq!(busy.get_status(), ActorStatus::Stopped);
}
