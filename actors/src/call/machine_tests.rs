use std::time::{Duration, Instant};

use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::call::{CallPhase, EndReason};

use super::*;

const ALICE: Snowflake = Snowflake(1);
const BOB: Snowflake = Snowflake(2);
const EVE: Snowflake = Snowflake(3);

fn machine() -> (CallMachine, Instant) {
    (
        CallMachine::new(ALICE, BOB, CallTimings::default()),
        Instant::now(),
    )
}

/// The generation of the last `Arm` effect.
fn armed(effects: &[Effect], timer: Timer) -> u64 {
    effects
        .iter()
        .find_map(|e| match e {
            Effect::Arm(t, _, g) if *t == timer => Some(*g),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {timer:?} timer in {effects:?}"))
}

fn ended(effects: &[Effect]) -> Option<(EndReason, Duration)> {
    effects.iter().find_map(|e| match e {
        Effect::Ended { reason, duration } => Some((*reason, *duration)),
        _ => None,
    })
}

fn connected(m: &mut CallMachine, t: Instant) {
    m.start(false, true, t);
    m.apply(CallInput::Accept { by: BOB }, t).expect("accepted");
    m.apply(CallInput::MediaUp(ALICE), t).expect("accepted");
    let out = m.apply(CallInput::MediaUp(BOB), t).expect("accepted");
    assert_eq!(out, vec![Effect::State(CallPhase::Connected)]);
}

#[test]
fn a_reachable_callee_rings_and_an_answered_call_connects_when_both_media_are_up() {
    let (mut m, t) = machine();
    let out = m.start(false, true, t);
    assert_eq!(out[0], Effect::State(CallPhase::Dialing));
    assert!(out.contains(&Effect::State(CallPhase::Ringing)));
    assert!(out.contains(&Effect::Ring));
    armed(&out, Timer::Ring);
    assert_eq!(
        m.apply(CallInput::Accept { by: ALICE }, t),
        Err(CallRefused::NotYours("callee"))
    );
    let out = m.apply(CallInput::Accept { by: BOB }, t).expect("accepted");
    assert_eq!(out[0], Effect::State(CallPhase::Connecting));
    armed(&out, Timer::Connect);
    assert!(
        m.apply(CallInput::MediaUp(BOB), t)
            .expect("accepted")
            .is_empty()
    );
    let t1 = t + Duration::from_secs(1);
    let out = m.apply(CallInput::MediaUp(ALICE), t1).expect("accepted");
    assert_eq!(out, vec![Effect::State(CallPhase::Connected)]);
    assert_eq!(m.connected_at, Some(t1));
    let out = m
        .apply(CallInput::Hangup { by: BOB }, t1 + Duration::from_secs(65))
        .expect("accepted");
    assert_eq!(out[0], Effect::State(CallPhase::Ending));
    assert_eq!(
        ended(&out),
        Some((EndReason::HungUp, Duration::from_secs(65)))
    );
    assert_eq!(m.phase, CallPhase::Ended);
    assert!(m.is_over());
}

#[test]
fn an_offline_callee_is_dialed_until_a_session_appears() {
    let (mut m, t) = machine();
    let out = m.start(false, false, t);
    assert_eq!(m.phase, CallPhase::Dialing);
    assert!(!out.contains(&Effect::Ring));
    let out = m.apply(CallInput::Reachable, t).expect("accepted");
    assert_eq!(out, vec![Effect::State(CallPhase::Ringing), Effect::Ring]);
    assert!(
        m.apply(CallInput::Reachable, t)
            .expect("accepted")
            .is_empty()
    );
}

#[test]
fn no_answer_within_the_ring_timeout_is_a_missed_call() {
    let (mut m, t) = machine();
    let generation = armed(&m.start(false, true, t), Timer::Ring);
    let out = m
        .apply(CallInput::Timeout(Timer::Ring, generation), t)
        .expect("accepted");
    assert_eq!(ended(&out), Some((EndReason::Missed, Duration::ZERO)));
}

#[test]
fn a_busy_callee_ends_the_call_at_once() {
    let (mut m, t) = machine();
    let out = m.start(true, true, t);
    assert_eq!(out[0], Effect::State(CallPhase::Dialing));
    assert_eq!(ended(&out), Some((EndReason::Busy, Duration::ZERO)));
    assert!(!out.contains(&Effect::Ring));
    assert_eq!(
        m.apply(CallInput::Accept { by: BOB }, t),
        Err(CallRefused::WrongState(CallPhase::Ended))
    );
}

#[test]
fn decline_cancel_and_hangup_before_an_answer() {
    let (mut m, t) = machine();
    m.start(false, true, t);
    assert_eq!(
        m.apply(CallInput::Decline { by: ALICE }, t),
        Err(CallRefused::NotYours("callee"))
    );
    let out = m
        .apply(CallInput::Decline { by: BOB }, t)
        .expect("accepted");
    assert_eq!(ended(&out).map(|e| e.0), Some(EndReason::Declined));

    let (mut m, t) = machine();
    m.start(false, false, t);
    assert_eq!(
        m.apply(CallInput::Cancel { by: BOB }, t),
        Err(CallRefused::NotYours("caller"))
    );
    let out = m
        .apply(CallInput::Cancel { by: ALICE }, t)
        .expect("accepted");
    assert_eq!(ended(&out).map(|e| e.0), Some(EndReason::Cancelled));

    let (mut m, t) = machine();
    m.start(false, true, t);
    assert_eq!(
        m.apply(CallInput::Hangup { by: EVE }, t),
        Err(CallRefused::NotYours("caller or callee"))
    );
    let out = m.apply(CallInput::Hangup { by: BOB }, t).expect("accepted");
    assert_eq!(ended(&out).map(|e| e.0), Some(EndReason::Declined));
}

#[test]
fn media_that_never_comes_up_fails_the_call_and_the_stale_ring_timer_is_void() {
    let (mut m, t) = machine();
    let ring = armed(&m.start(false, true, t), Timer::Ring);
    let connect = armed(
        &m.apply(CallInput::Accept { by: BOB }, t).expect("accepted"),
        Timer::Connect,
    );
    assert!(
        m.apply(CallInput::Timeout(Timer::Ring, ring), t)
            .expect("accepted")
            .is_empty()
    );
    assert_eq!(m.phase, CallPhase::Connecting);
    m.apply(CallInput::MediaUp(ALICE), t).expect("accepted");
    let out = m
        .apply(CallInput::Timeout(Timer::Connect, connect), t)
        .expect("accepted");
    assert_eq!(ended(&out), Some((EndReason::Failed, Duration::ZERO)));
}

#[test]
fn a_dropped_side_has_a_grace_period_to_come_back() {
    let (mut m, t) = machine();
    connected(&mut m, t);
    let t10 = t + Duration::from_secs(10);
    let out = m.apply(CallInput::MediaDown(BOB), t10).expect("accepted");
    assert_eq!(out[0], Effect::State(CallPhase::Connecting));
    let grace = armed(&out, Timer::Grace);
    let out = m.apply(CallInput::MediaUp(BOB), t10).expect("accepted");
    assert_eq!(out, vec![Effect::State(CallPhase::Connected)]);
    // The old grace timer fires later: nothing happens.
    assert!(
        m.apply(CallInput::Timeout(Timer::Grace, grace), t10)
            .expect("accepted")
            .is_empty()
    );
    assert_eq!(
        m.connected_at,
        Some(t),
        "the duration counts from the first connection"
    );

    let out = m.apply(CallInput::MediaDown(ALICE), t10).expect("accepted");
    let grace = armed(&out, Timer::Grace);
    let t20 = t + Duration::from_secs(20);
    let out = m
        .apply(CallInput::Timeout(Timer::Grace, grace), t20)
        .expect("accepted");
    assert_eq!(
        ended(&out),
        Some((EndReason::Disconnected, Duration::from_secs(20)))
    );
}

#[test]
fn hanging_up_while_connecting_cancels_and_strangers_are_refused() {
    let (mut m, t) = machine();
    m.start(false, true, t);
    m.apply(CallInput::Accept { by: BOB }, t).expect("accepted");
    assert_eq!(
        m.apply(CallInput::Hangup { by: EVE }, t),
        Err(CallRefused::NotYours("caller or callee"))
    );
    assert_eq!(
        m.apply(CallInput::Accept { by: BOB }, t),
        Err(CallRefused::WrongState(CallPhase::Connecting))
    );
    // A stranger's media changes nothing.
    assert!(
        m.apply(CallInput::MediaUp(EVE), t)
            .expect("accepted")
            .is_empty()
    );
    let out = m
        .apply(CallInput::Hangup { by: ALICE }, t)
        .expect("accepted");
    assert_eq!(ended(&out).map(|e| e.0), Some(EndReason::Cancelled));
}
