//! Rooms that keep no messages (`settings.record_messages = false`).
//!
//! Their changes go through the log like any room's, so they are ordered, acknowledged once
//! their entry is durable, and fanned out live with their content; but what storage gets is
//! the tombstone of each message ([`stored_copy`]): its id, author, time, reply and place in
//! the log, never its text, file or reply snippet. The content lives only in the owner's
//! memory, in a [`Window`] of the last frames: a session that resumes within
//! `unrecorded_window_secs` (node config) gets them replayed with their content; after that, after
//! the room's actor stops, or after its node dies, it gets the tombstones. History over REST
//! shows the tombstones. Files cannot be posted to such a room (they would outlive it).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use voiceflow_schema::MessageRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::frame::Frame;

use super::changes::make_tombstone;

/// What storage keeps of a message in a room that keeps none: its tombstone, without even
/// the quoted snippet of the message it replies to.
pub(crate) fn stored_copy(message: &MessageRecord) -> MessageRecord {
    let mut stored = message.clone();
    make_tombstone(
        &mut stored,
        message.deleted_at.unwrap_or(message.created_at),
    );
    if let Some(reply) = stored.extra.reply_to.as_mut() {
        reply.snippet.clear();
    }
    stored
}

/// One change as it was sent.
struct Kept {
    seq: u64,
    message: Snowflake,
    at: Instant,
    frame: Frame,
}

/// The frames of the latest changes, with their content, for replay within the window.
#[derive(Default)]
pub(crate) struct Window {
    kept: VecDeque<Kept>,
}

impl Window {
    /// Remembers a change sent at `seq` (at most `max` are kept; older ones go first). A
    /// deletion takes the message's earlier frames out, so a replay never shows it again.
    pub(crate) fn keep(&mut self, (seq, message): (u64, Snowflake), frame: Frame, deleted: bool) {
        if deleted {
            self.kept.retain(|k| k.message != message);
            return;
        }
        self.kept.push_back(Kept {
            seq,
            message,
            at: Instant::now(),
            frame,
        });
    }

    /// Drops what is older than `window` or past the `max` newest.
    pub(crate) fn trim(&mut self, window: Duration, max: usize) {
        while self.kept.len() > max {
            self.kept.pop_front();
        }
        while self.kept.front().is_some_and(|k| k.at.elapsed() > window) {
            self.kept.pop_front();
        }
    }

    /// The frames still within `window`, by seq.
    pub(crate) fn frames(&self, window: Duration) -> HashMap<u64, &Frame> {
        self.kept
            .iter()
            .filter(|k| k.at.elapsed() <= window)
            .map(|k| (k.seq, &k.frame))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voiceflow_schema::{MessageExtra, ReplyRef};
    use voiceflow_wire::v1::client::MessageType;

    fn message(id: u64) -> MessageRecord {
        MessageRecord {
            id: Snowflake(id),
            room_id: Snowflake(1),
            user_id: Snowflake(2),
            username: "ann".into(),
            content: "secret".into(),
            kind: MessageType::Text,
            nonce: Some("n".into()),
            created_at: 50,
            deleted_at: None,
            extra: MessageExtra {
                seq: 3,
                reply_to: Some(ReplyRef {
                    id: Snowflake(9),
                    user_id: Snowflake(2),
                    username: "ann".into(),
                    snippet: "also secret".into(),
                }),
                ..MessageExtra::default()
            },
        }
    }

    #[test]
    fn storage_gets_no_content() {
        let stored = stored_copy(&message(5));
        assert_eq!(stored.content, "");
        assert_eq!(stored.deleted_at, Some(50));
        let reply = stored.extra.reply_to.expect("the reply stays");
        assert_eq!((reply.id, reply.snippet.as_str()), (Snowflake(9), ""));
        assert_eq!((stored.id, stored.extra.seq), (Snowflake(5), 3));
    }

    #[test]
    fn the_window_keeps_the_newest_and_forgets_deleted_messages() {
        let mut window = Window::default();
        let frame = |n: u8| voiceflow_wire::v1::frame::event("t", &n);
        for seq in 1..=5u64 {
            window.keep((seq, Snowflake(100 + seq % 2)), frame(seq as u8), false);
        }
        window.trim(Duration::from_secs(60), 4);
        let kept = window.frames(Duration::from_secs(60));
        assert_eq!(kept.len(), 4);
        assert!(!kept.contains_key(&1), "the oldest went past max");
        window.keep((6, Snowflake(101)), frame(6), true);
        let kept = window.frames(Duration::from_secs(60));
        let mut seqs: Vec<u64> = kept.keys().copied().collect();
        seqs.sort_unstable();
        assert_eq!(seqs, vec![2, 4], "message 101's frames are gone");
        std::thread::sleep(Duration::from_millis(5));
        window.trim(Duration::from_millis(1), 10);
        assert!(
            window.frames(Duration::from_secs(60)).is_empty(),
            "past the window"
        );
    }
}
