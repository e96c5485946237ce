//! Requests a session sent to a room on another node that have no answer yet. If that node is
//! declared down first, their answers will never come: the client is told at once to send
//! again (a post with the same nonce gets exactly one message) instead of waiting out its own
//! request timeout (15 s in the web client) while the room is already serving elsewhere.
//! A node declared down that was only cut off (or that passed the request on to another
//! node) may still answer later: the client then has an error and an ack for one request,
//! and its resend with the same nonce returns the same message, so nothing is doubled.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::v1::frame::Frame;

/// How long an unanswered request is remembered: past any failure detection, so a request
/// still listed when its node goes down was surely not answered by it.
const KEEP: Duration = Duration::from_secs(60);
/// Most unanswered requests remembered per session (a client does not pipeline more).
const MOST: usize = 64;

#[derive(Debug, Clone, Copy)]
struct Entry {
    node: NodeId,
    req_id: u64,
    at: Instant,
}

/// One session's forwarded, unanswered requests.
#[derive(Debug, Default)]
pub struct Forwarded(Mutex<VecDeque<Entry>>);

impl Forwarded {
    /// Request `req_id` went to a room on `node`.
    pub fn add(&self, node: NodeId, req_id: u64, now: Instant) {
        let mut list = self.0.lock();
        while list
            .front()
            .is_some_and(|e| now.duration_since(e.at) > KEEP)
            || list.len() >= MOST
        {
            list.pop_front();
        }
        list.push_back(Entry {
            node,
            req_id,
            at: now,
        });
    }

    /// A frame from another node reached the session: the requests it acknowledges are
    /// answered.
    pub fn answered(&self, frame: &Frame) {
        let mut list = self.0.lock();
        if list.is_empty() {
            return;
        }
        for id in frame.ack_ids() {
            list.retain(|e| e.req_id != id);
        }
    }

    /// `node` went down: the requests still waiting on it, forgotten here.
    pub fn take_for(&self, node: NodeId) -> Vec<u64> {
        let mut list = self.0.lock();
        let mut taken = Vec::new();
        list.retain(|e| {
            let on_node = e.node == node;
            if on_node {
                taken.push(e.req_id);
            }
            !on_node
        });
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voiceflow_wire::v1::frame;
    use voiceflow_wire::{ErrorBody, ErrorCode};

    #[test]
    fn answered_requests_are_forgotten_and_the_rest_fail_with_their_node() {
        let now = Instant::now();
        let f = Forwarded::default();
        f.add(2, 10, now);
        f.add(2, 11, now);
        f.add(3, 12, now);
        f.answered(&frame::ack_ok(10, &serde_json::json!({"x": 1})));
        f.answered(&frame::ack_err(
            12,
            &ErrorBody::new(ErrorCode::Forbidden, "no"),
        ));
        // Events that are not acks answer nothing.
        f.answered(&frame::event(
            "message:received",
            &serde_json::json!({"id": "11"}),
        ));
        assert_eq!(f.take_for(2), vec![11]);
        assert!(f.take_for(2).is_empty());
        assert!(f.take_for(3).is_empty());
    }

    #[test]
    fn old_and_excess_entries_are_dropped() {
        let now = Instant::now();
        let f = Forwarded::default();
        f.add(2, 1, now);
        f.add(2, 2, now + KEEP + Duration::from_secs(1));
        assert_eq!(f.take_for(2), vec![2]);
        for id in 0..(MOST as u64 + 10) {
            f.add(4, id, now);
        }
        let kept = f.take_for(4);
        assert_eq!(kept.len(), MOST);
        assert_eq!(kept.first(), Some(&10));
    }
}
