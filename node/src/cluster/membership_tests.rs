//! The membership view's rules, driven with explicit instants.

use super::*;

fn info(id: NodeId, incarnation: u64) -> MemberInfo {
    MemberInfo {
        node_id: id,
        incarnation,
        quic_addr: format!("127.0.0.1:{}", 4000 + id),
        http_addr: format!("127.0.0.1:{}", 3000 + id),
        state: MemberState::Up,
        rooms: 0,
        sessions: 0,
        protocols: (7, 8),
    }
}

/// A view that started long enough ago to have caught up.
fn started(me: MemberInfo, failure_timeout: Duration, now: Instant) -> Membership {
    let long_ago = now.checked_sub(failure_timeout).unwrap_or(now);
    Membership::new(me, failure_timeout, long_ago)
}

#[test]
fn a_new_node_catches_up_before_owning_rooms() {
    let t0 = Instant::now();
    let mut m = Membership::new(info(1, 1), Duration::from_secs(3), t0);
    m.heard(info(2, 1), t0);
    assert!(m.owners().is_empty(), "catching up");
    assert!(m.tick(t0 + m.catch_up()).placement);
    assert_eq!(m.owners(), vec![1, 2]);
}

fn three(now: Instant) -> Membership {
    let mut m = started(info(1, 1), Duration::from_secs(3), now);
    m.heard(info(2, 1), now);
    m.heard(info(3, 1), now);
    m
}

#[test]
fn placement_is_spread_and_agreed() {
    let owners = [1, 2, 3];
    let mut counts = [0usize; 4];
    for room in 0..3000u64 {
        let a = owner_among(&owners, room * 7919).expect("owner");
        let b = owner_among(&[3, 1, 2], room * 7919).expect("owner");
        assert_eq!(a, b, "order of the member list does not matter");
        counts[a as usize] += 1;
    }
    for n in 1..=3 {
        assert!((800..1200).contains(&counts[n]), "balanced: {counts:?}");
    }
    // Adding a fourth node moves only the rooms it wins (about a quarter).
    let moved = (0..3000u64)
        .filter(|r| owner_among(&owners, r * 7919) != owner_among(&[1, 2, 3, 4], r * 7919))
        .count();
    assert!((500..1000).contains(&moved), "moved {moved}");
    let to_four = (0..3000u64)
        .filter(|r| owner_among(&[1, 2, 3, 4], r * 7919) == Some(4))
        .count();
    assert_eq!(moved, to_four, "every moved room moved to the new node");
}

#[test]
fn silent_members_go_down_and_quorum_follows() {
    let t0 = Instant::now();
    let mut m = three(t0);
    assert_eq!(m.owners(), vec![1, 2, 3]);
    let later = t0 + Duration::from_secs(4);
    m.heard(info(2, 1), later);
    let change = m.tick(later);
    assert_eq!(change.down, vec![3]);
    assert!(change.placement);
    assert_eq!(m.owners(), vec![1, 2], "2 of 3 is a majority");
    let much_later = later + Duration::from_secs(4);
    m.tick(much_later);
    assert!(!m.has_quorum(), "1 of 3 is not");
    assert!(m.owners().is_empty(), "a minority owns nothing");
    // Node 2 comes back (a healed partition): node 1 catches up before owning rooms.
    let change = m.heard(info(2, 1), much_later);
    assert!(change.placement);
    assert!(m.owners().is_empty(), "catching up");
    let caught_up = much_later + m.catch_up();
    assert!(m.tick(caught_up).placement);
    assert_eq!(m.owners(), vec![1, 2]);
}

#[test]
fn a_peer_known_only_as_down_is_dialled_once_it_is_heard() {
    let t0 = Instant::now();
    let mut m = started(info(1, 1), Duration::from_secs(3), t0);
    // Gossip names node 2 as Down: nothing to dial yet.
    let mut down = info(2, 7);
    down.state = MemberState::Down;
    assert!(m.merge(&[down], t0).dial.is_empty());
    // Node 2 speaks to us (same incarnation): it is up, and we need a link to it.
    let change = m.heard(info(2, 7), t0 + Duration::from_millis(100));
    assert!(change.placement);
    assert_eq!(
        change.dial.iter().map(|i| i.node_id).collect::<Vec<_>>(),
        vec![2]
    );
    // Heard again while up: no new dial.
    assert!(
        m.heard(info(2, 7), t0 + Duration::from_millis(600))
            .dial
            .is_empty()
    );
}

#[test]
fn the_next_deadline_is_when_a_silent_peer_goes_down() {
    let t0 = Instant::now();
    let mut m = three(t0);
    let t1 = t0 + Duration::from_millis(400);
    m.heard(info(2, 1), t1);
    // Node 3, last heard at t0, passes the lease first, then the failure timeout.
    assert_eq!(m.next_deadline(t0), Some(t0 + m.lease()));
    let after_lease = t0 + m.lease() + Duration::from_millis(1);
    assert_eq!(m.next_deadline(after_lease), Some(t1 + m.lease()));
    let at = t0 + Duration::from_secs(3);
    assert!(m.tick(at - Duration::from_millis(1)).down.is_empty());
    assert_eq!(m.tick(at).down, vec![3], "down exactly at its timeout");
    // Down peers set no deadline: only node 2's remain.
    assert_eq!(m.next_deadline(at), Some(t1 + Duration::from_secs(3)));
}

#[test]
fn a_cut_off_node_fences_itself_before_the_others_take_over() {
    let t0 = Instant::now();
    let mut cut = three(t0);
    let mut majority = started(info(2, 1), Duration::from_secs(3), t0);
    majority.heard(info(1, 1), t0);
    majority.heard(info(3, 1), t0);
    // 2.1 s after the cut: node 1 (alone) fences itself; nodes 2 and 3 still count it up.
    let t1 = t0 + Duration::from_millis(2100);
    majority.heard(info(3, 1), t1);
    assert!(cut.tick(t1).placement);
    assert!(cut.owners().is_empty(), "fenced");
    assert!(majority.tick(t1).down.is_empty());
    assert_eq!(majority.owners(), vec![1, 2, 3]);
    // After the failure timeout the majority takes over, but starts node 1's rooms only
    // once its last write (started before it fenced) had time to land.
    let t2 = t0 + Duration::from_millis(3100);
    majority.heard(info(3, 1), t2);
    assert_eq!(majority.tick(t2).down, vec![1]);
    assert_eq!(majority.owners(), vec![2, 3]);
    let settle = majority
        .settle_deadline(Duration::from_secs(5))
        .expect("a node is down");
    assert_eq!(settle, t0 + Duration::from_secs(2) + Duration::from_secs(5));
    // Healed: node 1 serves again once it heard a majority and caught up.
    let t3 = t0 + Duration::from_secs(10);
    cut.heard(info(2, 1), t3);
    cut.tick(t3);
    assert!(cut.owners().is_empty(), "catching up");
    let t4 = t3 + Duration::from_secs(1);
    cut.heard(info(2, 1), t4);
    cut.tick(t4);
    assert_eq!(cut.owners(), vec![1, 2], "node 3 stayed silent: down");
}

#[test]
fn gossip_introduces_nodes_and_restarts_replace_old_incarnations() {
    let t0 = Instant::now();
    let mut m = started(info(1, 1), Duration::from_secs(3), t0);
    let change = m.merge(&[info(2, 1), info(3, 1), info(1, 1)], t0);
    assert_eq!(change.dial.len(), 2);
    assert_eq!(m.owners(), vec![1, 2, 3]);
    // Stale incarnations are ignored; newer ones are dialled again.
    assert_eq!(m.heard(info(2, 0), t0), Change::default());
    let change = m.merge(&[info(3, 2)], t0);
    assert_eq!(change.dial.len(), 1);
    // A graceful leave is adopted from gossip and no longer counts for quorum.
    let mut left = info(3, 2);
    left.state = MemberState::Left;
    let change = m.merge(&[left], t0);
    assert!(change.placement);
    assert_eq!(m.owners(), vec![1, 2]);
    assert!(m.has_quorum());
}

#[test]
fn a_leaving_node_owns_nothing_and_becomes_left() {
    let t0 = Instant::now();
    let mut m = three(t0);
    let mut leaving = info(2, 1);
    leaving.state = MemberState::Leaving;
    assert!(m.heard(leaving, t0).placement);
    assert_eq!(m.owners(), vec![1, 3]);
    // A stale hello from before the drain does not bring it back.
    m.heard(info(2, 1), t0);
    assert_eq!(m.owners(), vec![1, 3]);
    let change = m.tick(t0 + Duration::from_secs(4));
    assert!(change.down.contains(&2));
    assert_eq!(m.state_of(2), Some(MemberState::Left));
    let mut me = started(info(1, 1), Duration::from_secs(3), t0);
    me.set_leaving();
    assert!(me.owners().is_empty());
}
