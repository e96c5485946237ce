//! Storage-level fencing: ownership epochs per room, and the log's reading rule.

use voiceflow_schema::{MessageRecord, RoomEventRecord, StoreError};
use voiceflow_wire::Snowflake;

use crate::{Backend, message};

const ROOM: Snowflake = Snowflake(600);

/// A log entry of `ROOM` at `seq`, written by owner `owner_epoch`, carrying message `id`.
fn entry(seq: u64, owner_epoch: u64, id: u64, nonce: &str) -> RoomEventRecord {
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let mut m: MessageRecord = message(ROOM.0, Snowflake(base + id), Some(nonce));
    m.extra.seq = seq;
    RoomEventRecord {
        room_id: ROOM,
        seq,
        epoch: 5,
        owner_epoch,
        event: "message:received".into(),
        data: format!(r#"{{"id":{id}}}"#),
        message: Some(m),
        at: 1_750_000_000_000 + seq,
    }
}

fn seqs(events: &[RoomEventRecord]) -> Vec<(u64, u64, String)> {
    events
        .iter()
        .map(|e| (e.seq, e.owner_epoch, e.data.clone()))
        .collect()
}

fn fenced(result: Result<impl std::fmt::Debug, StoreError>, mine: u64, current: u64) {
    match result {
        Err(StoreError::Fenced {
            room,
            mine: m,
            current: c,
        }) => assert_eq!((room, m, c), (ROOM, mine, current)),
        other => panic!("expected Fenced({mine} < {current}), got {other:?}"),
    }
}

/// Owner 1 writes seqs 1–3; owner 2 takes over (reads the end: 3); owner 1's delayed batch
/// (seqs 4–5) arrives and is refused; owner 2 writes seq 4. Whatever owner 1's batch left in
/// storage is never read back: not its entries, not its messages, not its nonces. An older
/// owner never replaces a newer owner's entry; renewing needs the current epoch.
pub async fn a_stale_owner_is_fenced_and_its_writes_are_never_read(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.claim_room(ROOM, None).await.expect("claim"), 1);
    let first: Vec<_> = (1..=3).map(|s| entry(s, 1, s, &format!("a{s}"))).collect();
    store.commit_events(&first).await.expect("owner 1 writes");

    assert_eq!(store.claim_room(ROOM, None).await.expect("takeover"), 2);
    let head = store.log_head(ROOM).await.expect("head").expect("some");
    assert_eq!(head.seq, 3);

    let stale = vec![entry(4, 1, 104, "stale4"), entry(5, 1, 105, "stale5")];
    fenced(store.commit_events(&stale).await, 1, 2);
    store
        .commit_events(&[entry(4, 2, 204, "b4")])
        .await
        .expect("owner 2 writes");
    // The stale batch again, after owner 2's entry: it neither replaces nor follows it.
    fenced(store.commit_events(&stale).await, 1, 2);

    let check = |store: std::sync::Arc<dyn voiceflow_schema::Store>, last: (u64, u64, u64)| async move {
        let head = store.log_head(ROOM).await.expect("head").expect("some");
        assert_eq!((head.seq, head.epoch), (last.0, 5));
        let all = store.events_after(ROOM, 0, 100).await.expect("read");
        let mut want = vec![
            (1, 1, r#"{"id":1}"#.to_owned()),
            (2, 1, r#"{"id":2}"#.into()),
            (3, 1, r#"{"id":3}"#.into()),
            (4, 2, r#"{"id":204}"#.into()),
        ];
        if last.0 == 5 {
            want.push((5, last.1, format!(r#"{{"id":{}}}"#, last.2)));
        }
        assert_eq!(seqs(&all), want);
        assert!(
            store
                .events_after(ROOM, last.0, 100)
                .await
                .expect("read")
                .is_empty()
        );
        assert_eq!(
            seqs(&store.events_after(ROOM, 3, 100).await.expect("read")),
            want[3..].to_vec()
        );
        let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
        for (id, nonce) in [(104, "stale4"), (105, "stale5")] {
            assert_eq!(
                store
                    .message(ROOM, Snowflake(base + id))
                    .await
                    .expect("read"),
                None
            );
            let user = message(ROOM.0, Snowflake(1), None).user_id;
            assert_eq!(
                store
                    .message_by_nonce(ROOM, user, nonce)
                    .await
                    .expect("read"),
                None
            );
        }
        let newest = store.messages_before(ROOM, None, 10).await.expect("read");
        assert_eq!(newest.first().map(|m| m.id.0), Some(base + last.2));
        assert_eq!(newest.len() as u64, last.0);
    };
    check(store.clone(), (4, 2, 204)).await;

    // Renewing needs the current epoch; the renewed owner's entry is never replaced by its
    // own older write (a timed-out one landing late), which is refused.
    fenced(store.claim_room(ROOM, Some(1)).await, 1, 2);
    assert_eq!(store.claim_room(ROOM, Some(2)).await.expect("renew"), 3);
    store
        .commit_events(&[entry(5, 3, 305, "c5")])
        .await
        .expect("renewed owner writes");
    fenced(store.commit_events(&[entry(5, 2, 205, "b5")]).await, 2, 3);
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    assert_eq!(
        store
            .message(ROOM, Snowflake(base + 205))
            .await
            .expect("read"),
        None
    );
    drop(store);

    let store = backend.open().await;
    check(store.clone(), (5, 3, 305)).await;
    assert_eq!(store.claim_room(ROOM, None).await.expect("takeover"), 4);
}

/// Concurrent takeovers of one room each get their own epoch.
pub async fn concurrent_claims_get_distinct_epochs(backend: Backend) {
    let store = backend.open().await;
    let room = Snowflake(601);
    let claims = (0..4).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.claim_room(room, None).await })
    });
    let mut got = Vec::new();
    for claim in claims {
        got.push(claim.await.expect("join").expect("claim"));
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 2, 3, 4]);
    assert_eq!(
        store.claim_room(Snowflake(602), None).await.expect("other"),
        1
    );
}

/// The end a new owner reads right after its claim (a store may skip the fencing window when
/// the last entry is its predecessor's) is the end the full rule gives: also when a fenced
/// owner's entry lies beyond it, and for a log never claimed before.
pub async fn the_end_read_after_a_claim_is_the_fenced_end(backend: Backend) {
    let store = backend.open().await;
    let end = |head: Option<voiceflow_schema::LogHead>| head.map(|h| h.seq);
    let claimed = store.claim_room(ROOM, None).await.expect("claim");
    assert_eq!(
        end(store
            .log_head_after_claim(ROOM, claimed)
            .await
            .expect("head")),
        None
    );
    let first: Vec<_> = (1..=3).map(|s| entry(s, 1, s, &format!("a{s}"))).collect();
    store.commit_events(&first).await.expect("owner 1 writes");
    let claimed = store.claim_room(ROOM, None).await.expect("takeover");
    assert_eq!(claimed, 2);
    let head = store
        .log_head_after_claim(ROOM, claimed)
        .await
        .expect("head");
    assert_eq!(end(head), Some(3));
    store
        .commit_events(&[entry(4, 2, 204, "b4")])
        .await
        .expect("owner 2 writes");
    // Owner 1's late batch lands beyond owner 2's entry (CQL writes it before it is refused).
    let stale = vec![entry(5, 1, 105, "stale5"), entry(6, 1, 106, "stale6")];
    fenced(store.commit_events(&stale).await, 1, 2);
    let claimed = store.claim_room(ROOM, None).await.expect("takeover");
    assert_eq!(claimed, 3);
    let after_claim = store
        .log_head_after_claim(ROOM, claimed)
        .await
        .expect("head");
    assert_eq!(end(after_claim), Some(4));
    assert_eq!(after_claim, store.log_head(ROOM).await.expect("head"));
}
