//! CI's simulation: 50 nodes, 5,000 rooms, both memberships, with the assertions the large
//! run is read against.

use voiceflow_sim::all_to_all::AllToAll;
use voiceflow_sim::engine::SEC;
use voiceflow_sim::placement::{Ranking, placement};
use voiceflow_sim::rooms::Handoff;
use voiceflow_sim::scenarios::{Change, detect, elastic, partition};
use voiceflow_sim::swim::SwimNode;

const N: usize = 50;
const ROOMS: usize = 5_000;
const SEED: u64 = 7;

#[test]
fn failure_detection_and_traffic() {
    let old = detect::<AllToAll>(N, 0.05, 20 * SEC, N, SEED);
    let new = detect::<SwimNode>(N, 0.05, 60 * SEC, N, SEED);
    // Today: down everywhere within the failure timeout (3 s) plus a heartbeat or two.
    let old_all = old.detect_all.expect("all-to-all detects the kill");
    assert!(old_all <= 4 * SEC, "{old:?}");
    // SWIM: a probe period or two, the suspicion timeout (4 × log10 50 ≈ 6.8 s), dissemination.
    let new_all = new.detect_all.expect("SWIM detects the kill");
    assert!(new_all <= 15 * SEC, "{new:?}");
    assert_eq!(old.false_downs, 0.0, "{old:?}");
    assert_eq!(new.false_downs, 0.0, "{new:?}");
    // All-to-all: 2 heartbeats per peer per second, each carrying the whole member list.
    assert!((old.msgs - 2.0 * (N - 1) as f64).abs() < 1.0, "{old:?}");
    assert!(
        new.msgs < old.msgs / 5.0,
        "SWIM {new:?} vs all-to-all {old:?}"
    );
    assert!(
        new.bytes < old.bytes / 50.0,
        "SWIM {new:?} vs all-to-all {old:?}"
    );
}

#[test]
fn placement_moves_one_nth_and_spreads_load() {
    let ranking = Ranking::new(ROOMS, N + 1, SEED);
    let row = placement(&ranking, N, SEED);
    let ideal = 1.0 / N as f64;
    assert!(
        row.minimal,
        "rooms moved only to the joiner / from the leaver"
    );
    assert!((row.moved_join - ideal).abs() < ideal / 2.0, "{row:?}");
    assert!((row.moved_leave - ideal).abs() < ideal / 2.0, "{row:?}");
    assert!(row.max_over_mean < 1.5, "{row:?}");
}

#[test]
fn hand_offs_settle_without_two_writers() {
    for handoff in [Handoff::OnDemand, Handoff::Bounded(16)] {
        for change in [Change::Kill, Change::Grow10] {
            let old = elastic::<AllToAll>(N, ROOMS, handoff, change, SEED);
            let new = elastic::<SwimNode>(N, ROOMS, handoff, change, SEED);
            for (kind, row) in [("all-to-all", old), ("swim", new)] {
                let settle = row.settle.expect("every moved room serves again");
                assert!(settle < 60 * SEC, "{kind} {handoff:?} {row:?}");
                assert!(row.moved > 0, "{kind} {row:?}");
                assert_eq!(row.violations, 0, "{kind} {handoff:?} {row:?}");
                assert_eq!(row.failed_loads, 0, "{kind} {handoff:?} {row:?}");
            }
        }
    }
}

#[test]
fn partition_minority_serves_nothing_and_no_room_has_two_writers() {
    let old = partition::<AllToAll>(N, ROOMS, Handoff::Bounded(16), SEED);
    let new = partition::<SwimNode>(N, ROOMS, Handoff::Bounded(16), SEED);
    for row in [old, new] {
        let stopped = row.minority_stopped.expect("the minority stops");
        assert!(stopped < 30 * SEC, "{row:?}");
        assert_eq!(row.minority_rooms_at_heal, 0, "{row:?}");
        assert!(row.majority_serves_all.is_some(), "{row:?}");
        assert!(row.settled_after_heal, "{row:?}");
        assert_eq!(row.violations, 0, "{row:?}");
        assert_eq!(row.violations_after_heal, 0, "{row:?}");
    }
}
