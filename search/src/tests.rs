//! The index over the real embedded store: batches, edits, deletions, catch-up from the log
//! and progress that survives reopening.

use std::sync::Arc;

use voiceflow_schema::{EmbeddedStore, MessageRecord, RoomEventRecord, Store};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;
use voiceflow_wire::v1::search::{Has, IndexQuery, SearchSort};

use crate::{IndexedChange, SearchConfig, SearchIndex};

const ROOM: Snowflake = Snowflake(77);

fn message(id: u64, user: u64, content: &str) -> MessageRecord {
    MessageRecord {
        id: Snowflake(id),
        room_id: ROOM,
        user_id: Snowflake(user),
        username: format!("user{user}"),
        content: content.into(),
        kind: MessageType::Text,
        nonce: None,
        created_at: id,
        deleted_at: None,
        extra: Default::default(),
    }
}

fn config() -> SearchConfig {
    SearchConfig {
        commit_interval: std::time::Duration::from_millis(20),
        ..SearchConfig::default()
    }
}

fn query(words: &[&str]) -> IndexQuery {
    IndexQuery {
        words: words.iter().map(|w| (*w).to_owned()).collect(),
        limit: 10,
        ..IndexQuery::default()
    }
}

async fn ids(index: &SearchIndex, q: IndexQuery) -> Vec<u64> {
    let hits = index.search(vec![ROOM], q).await.expect("search");
    hits.iter().map(|h| h.message_id.0).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_edits_deletions_and_catch_up_survive_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(EmbeddedStore::open(&dir.path().join("db")).expect("store"));
    let path = dir.path().join("search");
    let index = SearchIndex::open(
        &path,
        &config(),
        store.clone(),
        tokio::runtime::Handle::current(),
    )
    .expect("open");
    let change = |seq, m: MessageRecord| IndexedChange { seq, message: m };
    index.committed(
        ROOM,
        vec![
            change(1, message(100, 1, "the quick brown fox")),
            change(
                2,
                message(200, 2, "a slow brown dog, see https://example.com"),
            ),
        ],
    );
    index.flush().await.expect("flush");
    assert_eq!(
        ids(&index, query(&["brown"])).await,
        vec![200, 100],
        "newest first"
    );
    let phrase = IndexQuery {
        phrases: vec!["quick brown".into()],
        ..query(&[])
    };
    assert_eq!(ids(&index, phrase).await, vec![100]);
    let links = IndexQuery {
        has: vec![Has::Link],
        ..query(&[])
    };
    assert_eq!(ids(&index, links).await, vec![200]);
    let by_author = IndexQuery {
        author: Some(Snowflake(1)),
        sort: SearchSort::Relevance,
        ..query(&["brown"])
    };
    assert_eq!(ids(&index, by_author).await, vec![100]);
    let dated = IndexQuery {
        after: Some(150),
        ..query(&["brown"])
    };
    assert_eq!(ids(&index, dated).await, vec![200]);
    let hit = &index
        .search(vec![ROOM], query(&["fox"]))
        .await
        .expect("search")[0];
    let marked: String = hit
        .snippet
        .chars()
        .skip(hit.highlights[0].0 as usize)
        .take(3)
        .collect();
    assert_eq!(marked, "fox");

    // An edit replaces the text; a deletion is never found, even before the next commit.
    let mut edited = message(100, 1, "the quick red fox");
    edited.extra.edited_at = Some(300);
    let mut gone = message(200, 2, "");
    gone.deleted_at = Some(301);
    index.committed(ROOM, vec![change(3, edited), change(4, gone)]);
    assert!(
        ids(&index, query(&["dog"])).await.is_empty(),
        "deleted at once"
    );
    index.flush().await.expect("flush");
    assert_eq!(ids(&index, query(&["red"])).await, vec![100]);
    assert!(ids(&index, query(&["brown"])).await.is_empty());
    assert_eq!(index.last_seq(ROOM), 4);

    // Entries 5 and 6 reach the log but not the index (a dropped batch, a node that stopped
    // first); batch 7 reveals the gap and the writer reads 5 and 6 from the log.
    let logged: Vec<RoomEventRecord> = [(5, 500, "lagging zebra"), (6, 600, "lagging yak")]
        .into_iter()
        .map(|(seq, id, text)| RoomEventRecord {
            room_id: ROOM,
            seq,
            epoch: 0,
            owner_epoch: 0,
            event: "message:received".into(),
            data: "{}".into(),
            message: Some(message(id, 3, text)),
            at: id,
        })
        .collect();
    store.commit_events(&logged).await.expect("log");
    index.committed(ROOM, vec![change(7, message(700, 3, "lagging gnu"))]);
    index.flush().await.expect("flush");
    assert_eq!(ids(&index, query(&["lagging"])).await, vec![700, 600, 500]);
    drop(index);

    // Reopened: the progress came back with the index; a catch-up to the head reads nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let reopened = loop {
        // The old writer thread lets go of the index's lock when it sees the channel close.
        assert!(
            std::time::Instant::now() < deadline,
            "the index stayed locked"
        );
        match SearchIndex::open(
            &path,
            &config(),
            store.clone(),
            tokio::runtime::Handle::current(),
        ) {
            Ok(index) => break index,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    };
    assert_eq!(reopened.last_seq(ROOM), 7);
    reopened.catch_up(ROOM, 7);
    reopened.flush().await.expect("flush");
    assert_eq!(
        ids(&reopened, query(&["lagging"])).await,
        vec![700, 600, 500]
    );
    assert!(ids(&reopened, query(&["dog"])).await.is_empty());
}
