//! Getting frames to members: local outboxes directly, one copy per other node (which fans
//! it out to its own sessions); and the client view of stored messages.

use std::sync::Arc;

use voiceflow_schema::MessageRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::{NodeId, RoomDelivery};
use voiceflow_wire::time::rfc3339;
use voiceflow_wire::v1::frame::Frame;
use voiceflow_wire::v1::server::{MessageView, ReactionView, ReplyView};

use super::RoomState;
use crate::remote::{Peer, Recipient};

/// The client view of a stored message.
pub fn view_of(record: &MessageRecord) -> MessageView {
    let extra = &record.extra;
    MessageView {
        id: record.id,
        room_id: record.room_id,
        user_id: record.user_id,
        username: record.username.clone(),
        content: record.content.clone(),
        kind: record.kind,
        nonce: record.nonce.clone(),
        created_at: rfc3339(record.created_at),
        deleted: record.deleted_at.is_some(),
        seq: extra.seq,
        edited_at: extra.edited_at.map(rfc3339),
        reply_to: extra.reply_to.as_ref().map(|r| ReplyView {
            id: r.id,
            user_id: r.user_id,
            username: r.username.clone(),
            snippet: r.snippet.clone(),
        }),
        reactions: reaction_views(record),
        file_id: extra.file_id,
        mentions_everyone: extra.mentions_everyone,
        mentions_here: extra.mentions_here,
        mentions: extra.mentions.clone(),
        mention_roles: extra.mention_roles.clone(),
    }
}

/// A message's reactions as clients see them.
pub fn reaction_views(record: &MessageRecord) -> Vec<ReactionView> {
    record
        .extra
        .reactions
        .iter()
        .filter(|r| !r.users.is_empty())
        .map(|r| ReactionView {
            emoji: r.emoji.clone(),
            count: r.users.len() as u32,
            user_ids: r.users.clone(),
        })
        .collect()
}

impl RoomState {
    /// Pushes `frame` to every live session.
    pub(super) fn broadcast(&self, frame: &Frame) {
        self.fan_out(None, None, frame);
    }

    pub(super) fn broadcast_except_user(&self, user: Snowflake, frame: &Frame) {
        self.fan_out(Some(user), None, frame);
    }

    /// Pushes `frame` to every live local session, and one copy to each other node with live
    /// sessions (that node fans it out to its own). `last`: the frame carries logged events
    /// up to this seq.
    pub(super) fn fan_out(&self, except_user: Option<Snowflake>, last: Option<u64>, frame: &Frame) {
        let mut nodes: Vec<&Arc<dyn Peer>> = Vec::new();
        let frames = std::slice::from_ref(frame);
        for session in self.live.values() {
            match &session.to {
                Recipient::Local(outbox) => {
                    if except_user == Some(session.user_id) {
                        continue;
                    }
                    match last {
                        Some(last) => outbox.push_room_messages(self.room.id, last, frames),
                        None => outbox.push(frame.clone()),
                    };
                }
                Recipient::Remote(r) => {
                    if !nodes.iter().any(|p| p.node_id() == r.peer.node_id()) {
                        nodes.push(&r.peer);
                    }
                }
            }
        }
        if nodes.is_empty() {
            return;
        }
        let bytes = frame.wire_bytes().to_vec();
        for peer in nodes {
            peer.deliver(
                self.room.id,
                RoomDelivery::Fanout {
                    except_user,
                    last,
                    frames: bytes.clone(),
                },
            );
        }
    }

    /// A node died: its sessions leave the live set (and others see them leave).
    ///
    /// "Died" is this node's view: one that only stopped hearing it (a one-way cut) may still
    /// run those sessions, believing they follow this room, and would get nothing more. So the
    /// node is told the room closed; the message waits on the link, which keeps redialling, and
    /// the sessions re-join from the last seq they got once it arrives.
    pub fn handle_node_down(&mut self, node: NodeId) {
        let mut peer = None;
        let gone: Vec<u64> = self
            .live
            .iter()
            .filter_map(|(id, s)| {
                let p = s.to.remote_peer().filter(|p| p.node_id() == node)?;
                peer.get_or_insert_with(|| p.clone());
                Some(*id)
            })
            .collect();
        for session_id in gone {
            // No answer is sent, so the user id is not consulted.
            self.handle_leave(session_id, Snowflake::default(), None);
        }
        if let Some(peer) = peer {
            peer.deliver(self.room.id, RoomDelivery::Closed);
        }
    }

    /// The actor stops: sessions following it from other nodes re-join wherever it lives next.
    pub fn close_remote_followers(&mut self) {
        let mut nodes: Vec<Arc<dyn Peer>> = Vec::new();
        for session in self.live.values() {
            if let Some(peer) = session.to.remote_peer()
                && !nodes.iter().any(|p| p.node_id() == peer.node_id())
            {
                nodes.push(peer.clone());
            }
        }
        for peer in nodes {
            peer.deliver(self.room.id, RoomDelivery::Closed);
        }
    }
}
