//! Room event logs and read markers.

use voiceflow_schema::{LogHead, MessageRecord, ReadMarker, RoomEventRecord};
use voiceflow_wire::Snowflake;

use crate::{Backend, message};

fn entry(room: u64, seq: u64, message: Option<MessageRecord>) -> RoomEventRecord {
    RoomEventRecord {
        room_id: Snowflake(room),
        seq,
        epoch: 77,
        owner_epoch: 0,
        event: "message:received".into(),
        data: format!(r#"{{"seq":{seq}}}"#),
        message,
        at: 1_750_000_000_000 + seq,
    }
}

/// 20,000 entries (across the 16384-seq partition boundary) committed in batches: the head is
/// the last one, `events_after` reads every entry once in order from any cursor, the messages
/// they carry are stored with their latest state, and all of it survives a reopen.
pub async fn room_log_appends_reads_after_any_seq_and_survives_a_reopen(backend: Backend) {
    let store = backend.open().await;
    assert_eq!(store.log_head(Snowflake(500)).await.expect("head"), None);
    let base = Snowflake::lower_bound_for(1_750_000_000_000).0;
    let total = 20_000u64;
    let mut batch = Vec::new();
    for seq in 1..=total {
        // Every 100th entry carries a message; seq 16400 edits the message of seq 16300.
        let m = if seq % 100 == 0 {
            let id = if seq == 16_400 { 16_300 } else { seq };
            let mut m = message(500, Snowflake(base + id), None);
            m.extra.seq = seq;
            if seq == 16_400 {
                m.content = "edited".into();
                m.extra.edited_at = Some(5);
            }
            Some(m)
        } else {
            None
        };
        batch.push(entry(500, seq, m));
        if batch.len() == 256 || seq == total {
            store.commit_events(&batch).await.expect("commit");
            batch.clear();
        }
    }
    store
        .commit_events(&[entry(501, 1, None)])
        .await
        .expect("neighbour");
    // The last entry (seq 20,000) carries its message.
    let head = LogHead {
        epoch: 77,
        seq: total,
        message: Some(Snowflake(base + total)),
    };
    assert_eq!(
        store.log_head(Snowflake(500)).await.expect("head"),
        Some(head)
    );
    for after in [0, 1, 16_383, 16_384, 16_385, 19_990, total] {
        let got = store
            .events_after(Snowflake(500), after, 1000)
            .await
            .expect("after");
        let want: Vec<u64> = (after + 1..=total).take(1000).collect();
        let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, want, "after {after}");
        assert!(
            got.iter()
                .all(|e| e.room_id == Snowflake(500) && e.epoch == 77)
        );
    }
    let edited = store
        .message(Snowflake(500), Snowflake(base + 16_300))
        .await
        .expect("read")
        .expect("stored");
    assert_eq!(edited.content, "edited");
    assert_eq!(edited.extra.seq, 16_400);
    drop(store);

    let store = backend.open().await;
    assert_eq!(
        store.log_head(Snowflake(500)).await.expect("head"),
        Some(head)
    );
    let got = store
        .events_after(Snowflake(500), total - 3, 10)
        .await
        .expect("after");
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].data, format!(r#"{{"seq":{total}}}"#));
    store.delete_room(Snowflake(500)).await.expect("delete");
    assert_eq!(store.log_head(Snowflake(500)).await.expect("head"), None);
    assert_eq!(
        store
            .log_head(Snowflake(501))
            .await
            .expect("head")
            .map(|h| h.seq),
        Some(1)
    );
}

/// Markers are per (user, room), replaced in place, listed per user.
pub async fn read_markers_per_user_and_room(backend: Backend) {
    let store = backend.open().await;
    let marker = |room: u64, message: u64| ReadMarker {
        user_id: Snowflake(9),
        room_id: Snowflake(room),
        message_id: Snowflake(message),
        at: 1_750_000_000_000,
    };
    store.put_read_marker(&marker(1, 10)).await.expect("put");
    store.put_read_marker(&marker(2, 20)).await.expect("put");
    store.put_read_marker(&marker(1, 15)).await.expect("put");
    let mut got = store.read_markers(Snowflake(9)).await.expect("list");
    got.sort_by_key(|m| m.room_id);
    assert_eq!(got, vec![marker(1, 15), marker(2, 20)]);
    assert!(
        store
            .read_markers(Snowflake(8))
            .await
            .expect("list")
            .is_empty()
    );
}
