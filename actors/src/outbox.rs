//! A session's outbound queue. Rooms push pre-encoded [`Frame`]s (shared bytes, no copy per
//! recipient); the connection's writer drains everything queued in one go and writes it with a
//! single flush. The queue is bounded: a client that cannot keep up is closed with
//! [`CloseReason::slow_consumer`] instead of slowing its rooms or growing without limit.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::frame::Frame;

/// Why the server closes a connection: a WebSocket close code and a reason the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code (see PROTOCOL.md).
    pub code: u16,
    /// Human-readable reason.
    pub reason: String,
}

impl CloseReason {
    /// 4008: the outbound queue overflowed.
    pub fn slow_consumer() -> Self {
        CloseReason {
            code: 4008,
            reason: "slow consumer: outbound queue overflow".into(),
        }
    }
    /// 1001: the node is shutting down.
    pub fn going_away() -> Self {
        CloseReason {
            code: 1001,
            reason: "server shutting down".into(),
        }
    }
    /// 4000: nothing heard from the client within the idle timeout.
    pub fn idle_timeout() -> Self {
        CloseReason {
            code: 4000,
            reason: "idle timeout".into(),
        }
    }
    /// 4002: the client kept sending invalid frames.
    pub fn too_many_errors() -> Self {
        CloseReason {
            code: 4002,
            reason: "too many invalid frames".into(),
        }
    }
    /// 4009: this node is leaving the cluster; reconnect to another node (resume with `since`).
    pub fn reconnect_elsewhere() -> Self {
        CloseReason {
            code: 4009,
            reason: "node draining: reconnect to another node".into(),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Frame>,
    /// WebSocket frames queued (an entry may hold a whole batch).
    queued_frames: usize,
    closed: Option<CloseReason>,
    /// Newest room-log seq pushed per room: where an automatic re-join resumes from.
    last_seq: Vec<(Snowflake, u64)>,
}

#[derive(Debug)]
struct Inner {
    state: Mutex<State>,
    notify: Notify,
    capacity: usize,
}

/// Cheaply clonable handle to one connection's outbound queue.
#[derive(Debug, Clone)]
pub struct Outbox(Arc<Inner>);

/// What the writer gets from [`Outbox::next_batch`].
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Frames were moved into the caller's buffer.
    Frames,
    /// The outbox was closed; send this close frame and stop.
    Closed(CloseReason),
}

impl Outbox {
    /// An empty outbox holding at most `capacity` WebSocket frames.
    pub fn new(capacity: usize) -> Self {
        Outbox(Arc::new(Inner {
            state: Mutex::new(State::default()),
            notify: Notify::new(),
            capacity: capacity.max(1),
        }))
    }

    /// Queues one frame. Returns `false` if the outbox is (or just became) closed.
    pub fn push(&self, frame: Frame) -> bool {
        self.push_all(std::slice::from_ref(&frame))
    }

    /// Queues frames in order under one lock. Returns `false` if closed.
    pub fn push_all(&self, frames: &[Frame]) -> bool {
        self.push_inner(frames, None)
    }

    /// Queues a room's logged events and records the newest seq delivered for it. `frames`
    /// hold one event per seq, the seqs up to `last` without gaps (a replay, a committed batch);
    /// events at seqs this connection already got are dropped: the same range can reach a
    /// session twice — a replay for a join that waited in a paused or moving owner's queue
    /// while the session followed the room elsewhere — and a client must never see a logged
    /// event twice.
    pub fn push_room_messages(&self, room: Snowflake, last: u64, frames: &[Frame]) -> bool {
        self.push_inner(frames, Some((room, last)))
    }

    fn push_inner(&self, frames: &[Frame], mark: Option<(Snowflake, u64)>) -> bool {
        let mut state = self.0.state.lock();
        if state.closed.is_some() {
            return false;
        }
        let fresh: Vec<Frame>;
        let frames = match mark {
            Some((room, last)) => {
                let delivered = state
                    .last_seq
                    .iter()
                    .find(|(r, _)| *r == room)
                    .map(|(_, seq)| *seq);
                let events: usize = frames.iter().map(Frame::count).sum();
                let first = last.saturating_add(1).saturating_sub(events as u64);
                match delivered {
                    Some(seen) if seen >= first => {
                        let mut skip = usize::try_from(seen - first + 1).unwrap_or(usize::MAX);
                        fresh = frames
                            .iter()
                            .filter_map(|f| {
                                let kept = f.skip(skip);
                                skip = skip.saturating_sub(f.count());
                                (kept.count() > 0).then_some(kept)
                            })
                            .collect();
                        &fresh[..]
                    }
                    _ => frames,
                }
            }
            None => frames,
        };
        let adding: usize = frames.iter().map(Frame::count).sum();
        if state.queued_frames + adding > self.0.capacity {
            state.queued_frames = 0;
            state.queue.clear();
            state.queue.shrink_to_fit();
            state.closed = Some(CloseReason::slow_consumer());
            drop(state);
            self.0.notify.notify_one();
            return false;
        }
        state.queued_frames += adding;
        state
            .queue
            .extend(frames.iter().filter(|f| f.count() > 0).cloned());
        if let Some((room, last)) = mark {
            match state.last_seq.iter_mut().find(|(r, _)| *r == room) {
                Some(entry) => entry.1 = entry.1.max(last),
                None => state.last_seq.push((room, last)),
            }
        }
        drop(state);
        self.0.notify.notify_one();
        true
    }

    /// Closes the outbox; the writer sends `reason` as the close frame. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        let mut state = self.0.state.lock();
        if state.closed.is_none() {
            state.closed = Some(reason);
        }
        drop(state);
        self.0.notify.notify_one();
    }

    /// Whether the outbox was closed.
    pub fn is_closed(&self) -> bool {
        self.0.state.lock().closed.is_some()
    }

    /// The newest seq pushed for `room`, if any (the room is joined).
    pub fn last_seq(&self, room: Snowflake) -> Option<u64> {
        let state = self.0.state.lock();
        state
            .last_seq
            .iter()
            .find(|(r, _)| *r == room)
            .map(|(_, id)| *id)
    }

    /// Forgets a room's resume point (after leaving it).
    pub fn forget_room(&self, room: Snowflake) {
        self.0.state.lock().last_seq.retain(|(r, _)| *r != room);
    }

    /// Waits until frames are queued or the outbox closes; moves all queued frames into `buf`.
    /// Queued frames are handed out before a close is reported.
    pub async fn next_batch(&self, buf: &mut Vec<Frame>) -> Drained {
        loop {
            let notified = self.0.notify.notified();
            {
                let mut state = self.0.state.lock();
                if !state.queue.is_empty() {
                    state.queued_frames = 0;
                    buf.extend(state.queue.drain(..));
                    // A burst is over: give the memory back so idle sessions stay small (a
                    // presence storm leaves hundreds of slots behind in every session).
                    state.queue.shrink_to(8);
                    return Drained::Frames;
                }
                if let Some(reason) = &state.closed {
                    return Drained::Closed(reason.clone());
                }
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voiceflow_wire::v1::frame;

    fn f(n: u64) -> Frame {
        frame::event("x", &n)
    }

    #[tokio::test]
    async fn drains_in_order_then_reports_close() {
        let outbox = Outbox::new(10);
        assert!(outbox.push(f(1)));
        assert!(outbox.push_all(&[f(2), f(3)]));
        outbox.close(CloseReason::going_away());
        assert!(!outbox.push(f(4)));
        let mut buf = Vec::new();
        assert_eq!(outbox.next_batch(&mut buf).await, Drained::Frames);
        assert_eq!(buf, vec![f(1), f(2), f(3)]);
        assert_eq!(
            outbox.next_batch(&mut buf).await,
            Drained::Closed(CloseReason::going_away())
        );
    }

    #[tokio::test]
    async fn overflow_closes_as_slow_consumer_and_drops_the_backlog() {
        let outbox = Outbox::new(3);
        assert!(outbox.push_all(&[f(1), f(2), f(3)]));
        assert!(!outbox.push(f(4)));
        let mut buf = Vec::new();
        assert_eq!(
            outbox.next_batch(&mut buf).await,
            Drained::Closed(CloseReason::slow_consumer())
        );
        assert!(buf.is_empty());
    }

    #[tokio::test]
    async fn tracks_the_newest_message_per_room() {
        let outbox = Outbox::new(10);
        outbox.push_room_messages(Snowflake(1), 10, &[f(1)]);
        outbox.push_room_messages(Snowflake(1), 12, &[f(2)]);
        outbox.push_room_messages(Snowflake(2), 5, &[f(3)]);
        assert_eq!(outbox.last_seq(Snowflake(1)), Some(12));
        assert_eq!(outbox.last_seq(Snowflake(2)), Some(5));
        outbox.forget_room(Snowflake(1));
        assert_eq!(outbox.last_seq(Snowflake(1)), None);
    }

    /// The duplicate the paused-owner test saw once: a session got seqs 22..=47 live from the
    /// room's new owner, then a replay from 22 (for a join with `since` 21 that had waited in
    /// the old owner's queue while it was paused) delivered them again. Only seqs after what
    /// the connection already has go out, in order.
    #[tokio::test]
    async fn a_logged_range_already_delivered_is_not_delivered_again() {
        let room = Snowflake(1);
        let outbox = Outbox::new(1000);
        let live: Vec<Frame> = (22..=47).map(f).collect();
        // Committed batches of 10, 10, 6 (each one frame holding its events).
        outbox.push_room_messages(room, 31, &[Frame::concat(&live[..10])]);
        outbox.push_room_messages(room, 41, &[Frame::concat(&live[10..20])]);
        outbox.push_room_messages(room, 47, &[Frame::concat(&live[20..])]);
        // The stale replay: 22..=50, one frame per entry.
        let replay: Vec<Frame> = (22..=50).map(f).collect();
        outbox.push_room_messages(room, 50, &replay);
        // A batch entirely delivered before, and the join's resume marker.
        outbox.push_room_messages(room, 50, &[Frame::concat(&[f(49), f(50)])]);
        outbox.push_room_messages(room, 50, &[]);
        outbox.push_room_messages(room, 51, &[f(51)]);
        let mut buf = Vec::new();
        assert_eq!(outbox.next_batch(&mut buf).await, Drained::Frames);
        let got: Vec<u64> = buf
            .iter()
            .flat_map(|b| b.texts().into_iter().map(str::to_owned).collect::<Vec<_>>())
            .map(|t| {
                serde_json::from_str::<serde_json::Value>(&t).expect("json")["data"]
                    .as_u64()
                    .expect("seq")
            })
            .collect();
        assert_eq!(got, (22..=51).collect::<Vec<_>>());
        assert_eq!(outbox.last_seq(room), Some(51));
        // A replay that overlaps inside a multi-event frame keeps its newer part.
        let other = Snowflake(2);
        outbox.push_room_messages(other, 3, &[Frame::concat(&[f(1), f(2), f(3)])]);
        outbox.push_room_messages(other, 5, &[Frame::concat(&[f(2), f(3), f(4), f(5)])]);
        buf.clear();
        assert_eq!(outbox.next_batch(&mut buf).await, Drained::Frames);
        let texts: Vec<String> = buf
            .iter()
            .flat_map(|b| b.texts().into_iter().map(str::to_owned).collect::<Vec<_>>())
            .collect();
        assert_eq!(texts.len(), 5);
        assert!(texts[3].ends_with(":4}") && texts[4].ends_with(":5}"));
    }

    #[tokio::test]
    async fn writer_wakes_when_a_frame_arrives() {
        let outbox = Outbox::new(10);
        let writer = outbox.clone();
        let task = tokio::spawn(async move {
            let mut buf = Vec::new();
            writer.next_batch(&mut buf).await;
            buf
        });
        tokio::task::yield_now().await;
        outbox.push(f(7));
        let buf = task.await.expect("writer task");
        assert_eq!(buf, vec![f(7)]);
    }
}
