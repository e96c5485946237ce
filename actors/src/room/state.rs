//! Room logic, kept off the actor so it can be tested without sockets.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use voiceflow_schema::{Membership, MessageRecord, Role, RoomRecord, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::{self, MessageType, RoomRef, SendMessage, SentReply};
use voiceflow_wire::v1::frame::{self, Frame};
use voiceflow_wire::v1::server::{
    JoinReply, MessageDeleted, MessageView, Participant, RoomDeleted, TypingEvent,
    UserPresenceInRoom, events,
};

mod fanout;

pub use fanout::{rfc3339, view_of};

use super::{Author, Reply, SessionLink};
use crate::context::NodeContext;
use crate::error::ActorError;
use crate::remote::Recipient;

/// Most messages written in one storage batch.
const MAX_BATCH: usize = 256;

/// A member as the room remembers them.
#[derive(Debug, Clone)]
struct Member {
    role: Role,
    username: String,
    joined_at: u64,
}

/// A message on its way to storage, and everyone waiting for its ack.
struct PendingPost {
    record: MessageRecord,
    view: MessageView,
    replies: Vec<Reply<SentReply>>,
}

/// Everything a room actor knows.
pub struct RoomState {
    /// The room record.
    pub room: RoomRecord,
    /// Node handles.
    pub ctx: NodeContext,
    members: HashMap<Snowflake, Member>,
    live: HashMap<u64, SessionLink>,
    typing: HashMap<Snowflake, u64>,
    typing_generation: u64,
    /// Posts not yet handed to storage.
    pending: Vec<PendingPost>,
    /// The batch storage is writing now (at most one, so batches commit in order).
    in_flight: Option<Vec<PendingPost>>,
    /// Recently stored (user, nonce) → message, for retries without a storage read.
    recent_nonces: HashMap<(Snowflake, String), MessageView>,
    nonce_order: VecDeque<(Snowflake, String)>,
    /// Newest message id broadcast live; replays stop here so the seam has no duplicate.
    last_broadcast: Snowflake,
    /// Newest message id this actor assigned (ids only grow, whichever node ran the room before).
    last_assigned: Snowflake,
    last_activity: Instant,
    /// Left the directory; stops once its writes are done.
    pub retiring: bool,
    /// Everything queued before the retirement was handled.
    pub retire_marker_seen: bool,
    /// The periodic idle check.
    pub idle_timer: Option<tokio::task::JoinHandle<()>>,
}

impl RoomState {
    /// Rebuilds a room from storage: members (with current usernames) and the newest id.
    pub async fn load(room: RoomRecord, ctx: NodeContext) -> Result<RoomState, StoreError> {
        let mut members = HashMap::new();
        for m in ctx.store.room_members(room.id).await? {
            let username = match ctx.store.user_by_id(m.user_id).await? {
                Some(user) => user.username,
                None => continue,
            };
            members.insert(
                m.user_id,
                Member {
                    role: m.role,
                    username,
                    joined_at: m.joined_at,
                },
            );
        }
        let newest = ctx.store.messages_before(room.id, None, 1).await?;
        let last_broadcast = newest.first().map(|m| m.id).unwrap_or_default();
        Ok(RoomState {
            room,
            ctx,
            members,
            live: HashMap::new(),
            typing: HashMap::new(),
            typing_generation: 0,
            pending: Vec::new(),
            in_flight: None,
            recent_nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            last_broadcast,
            last_assigned: last_broadcast,
            last_activity: Instant::now(),
            retiring: false,
            retire_marker_seen: false,
            idle_timer: None,
        })
    }

    /// Records activity (for the idle timeout).
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Nobody subscribed, nothing pending, and quiet for the idle timeout.
    pub fn is_idle(&self) -> bool {
        self.live.is_empty()
            && self.pending.is_empty()
            && self.in_flight.is_none()
            && self.last_activity.elapsed()
                >= self
                    .ctx
                    .config
                    .room_idle_timeout
                    .saturating_sub(Duration::from_millis(1))
    }

    /// Number of live sessions.
    pub fn live_sessions(&self) -> usize {
        self.live.len()
    }

    fn user_is_live(&self, user: Snowflake) -> bool {
        self.live.values().any(|s| s.user_id == user)
    }

    /// Members (all, or only those with a live session), one entry per user.
    pub fn participants(&self, online_only: bool) -> Vec<Participant> {
        let mut list: Vec<(u64, Participant)> = self
            .members
            .iter()
            .filter_map(|(id, m)| {
                let online = self.user_is_live(*id);
                (online || !online_only).then(|| {
                    (
                        m.joined_at,
                        Participant {
                            user_id: *id,
                            username: m.username.clone(),
                            role: m.role.as_str().into(),
                            online,
                        },
                    )
                })
            })
            .collect();
        list.sort_by_key(|(joined, p)| (*joined, p.user_id));
        list.into_iter().map(|(_, p)| p).collect()
    }

    /// A fresh id, above every id this room has (a previous owner's clock may be ahead).
    fn next_message_id(&mut self) -> Snowflake {
        let mut id = self.ctx.ids.next_id();
        if id <= self.last_assigned {
            id = self.ctx.ids.next_id_after(self.last_assigned);
        }
        self.last_assigned = id;
        id
    }

    async fn add_member(&mut self, author: &Author) -> Result<(), ActorError> {
        if self.members.contains_key(&author.user_id) {
            return Ok(());
        }
        if self.members.len() >= self.room.max_users as usize {
            return Err(ActorError::RoomFull);
        }
        let joined_at = now_ms();
        let membership = Membership {
            room_id: self.room.id,
            user_id: author.user_id,
            role: Role::Member,
            joined_at,
        };
        self.ctx.store.put_member(&membership).await?;
        self.members.insert(
            author.user_id,
            Member {
                role: Role::Member,
                username: author.username.clone(),
                joined_at,
            },
        );
        Ok(())
    }

    /// `room:join`: members (and anyone, for public rooms, who then becomes a member) subscribe;
    /// stored messages after `since` are replayed first, then the ack, then live events.
    pub async fn handle_join(
        &mut self,
        session: SessionLink,
        since: Option<Snowflake>,
        reply: Reply<JoinReply>,
    ) {
        let to = session.to.clone();
        let result = self.join(session, since).await;
        if result.is_err() {
            // No resume point and no automatic re-join for a join the room refused.
            to.forget_room(self.room.id);
        }
        reply.send(result);
    }

    async fn join(
        &mut self,
        session: SessionLink,
        since: Option<Snowflake>,
    ) -> Result<JoinReply, ActorError> {
        let author = Author {
            user_id: session.user_id,
            username: session.username.clone(),
        };
        if !self.members.contains_key(&session.user_id) {
            if !self.room.settings.is_public {
                return Err(ActorError::Forbidden("not a member of this room"));
            }
            self.add_member(&author).await?;
        }
        if self.live.contains_key(&session.session_id) {
            // The same session again (its node re-sent a join that was slow to be confirmed):
            // it already has its replay and the live stream; confirm without replaying twice.
            session.to.subscribed();
            return Ok(JoinReply {
                room_id: self.room.id,
                participants: self.participants(true),
                replayed: 0,
                replay_truncated: false,
            });
        }
        let (replayed, replay_truncated) = match since {
            Some(since) => self.replay(&session, since).await?,
            None => (0, false),
        };
        // The resume point for an automatic re-join, even if no message arrives meanwhile.
        session
            .to
            .push_room_messages(self.room.id, self.last_broadcast, &[]);
        let first_session = !self.user_is_live(session.user_id);
        let user_id = session.user_id;
        session.to.subscribed();
        self.live.insert(session.session_id, session);
        if first_session {
            let event = UserPresenceInRoom {
                room_id: self.room.id,
                user_id,
                username: author.username,
                timestamp: now_ms(),
            };
            self.broadcast_except_user(user_id, &frame::event(events::USER_JOINED, &event));
        }
        metrics::gauge!("voiceflow_room_subscriptions").increment(1.0);
        Ok(JoinReply {
            room_id: self.room.id,
            participants: self.participants(true),
            replayed,
            replay_truncated,
        })
    }

    /// Pushes stored messages in (since, last_broadcast] to the session, oldest first. Too many
    /// to replay → nothing is pushed and the reply says so (the client pages history instead).
    async fn replay(
        &self,
        session: &SessionLink,
        since: Snowflake,
    ) -> Result<(u32, bool), ActorError> {
        if since >= self.last_broadcast {
            return Ok((0, false));
        }
        let limit = self.ctx.config.replay_limit;
        let stored = self
            .ctx
            .store
            .messages_after(self.room.id, since, limit + 1)
            .await?;
        let stored: Vec<_> = stored
            .into_iter()
            .filter(|m| m.id <= self.last_broadcast)
            .collect();
        if stored.len() > limit as usize {
            return Ok((0, true));
        }
        let frames: Vec<Frame> = stored
            .iter()
            .map(|m| frame::event(events::MESSAGE_RECEIVED, &view_of(m)))
            .collect();
        if let Some(last) = stored.last() {
            session
                .to
                .push_room_messages(self.room.id, last.id, &frames);
        }
        Ok((frames.len() as u32, false))
    }

    /// `room:leave` or a closed connection.
    pub fn handle_leave(&mut self, session_id: u64, reply: Option<Reply<RoomRef>>) {
        if let Some(session) = self.live.remove(&session_id) {
            metrics::gauge!("voiceflow_room_subscriptions").decrement(1.0);
            if !self.user_is_live(session.user_id) {
                self.stop_typing(session.user_id);
                let event = UserPresenceInRoom {
                    room_id: self.room.id,
                    user_id: session.user_id,
                    username: session.username,
                    timestamp: now_ms(),
                };
                self.broadcast(&frame::event(events::USER_LEFT, &event));
            }
        }
        if let Some(reply) = reply {
            reply.send(Ok(RoomRef {
                room_id: self.room.id,
            }));
        }
    }

    /// `message:send`: validate, dedupe by nonce, assign an id and queue for storage.
    pub async fn handle_post(
        &mut self,
        author: Author,
        post: SendMessage,
        reply: Reply<SentReply>,
    ) {
        if let Err(e) = self.validate_post(&author, &post) {
            reply.send(Err(e));
            return;
        }
        if let Some(nonce) = &post.nonce {
            match self.find_by_nonce(author.user_id, nonce).await {
                Ok(Found::Stored(view)) => return reply.send(Ok(SentReply { message: view })),
                Ok(Found::Queued(index)) => return self.attach_reply(index, reply),
                Ok(Found::No) => {}
                Err(e) => return reply.send(Err(e)),
            }
        }
        let id = self.next_message_id();
        let record = MessageRecord {
            id,
            room_id: self.room.id,
            user_id: author.user_id,
            username: author.username,
            content: post.content,
            kind: post.kind,
            nonce: post.nonce,
            created_at: id.timestamp_ms(),
            deleted_at: None,
        };
        self.stop_typing(record.user_id);
        let view = view_of(&record);
        self.pending.push(PendingPost {
            record,
            view,
            replies: vec![reply],
        });
    }

    fn validate_post(&self, author: &Author, post: &SendMessage) -> Result<(), ActorError> {
        if !self.members.contains_key(&author.user_id) {
            return Err(ActorError::Forbidden("not a member of this room"));
        }
        if post.kind == MessageType::System {
            return Err(ActorError::Client(voiceflow_wire::ErrorBody::field(
                "type",
                "system messages come only from the server",
            )));
        }
        client::validate_content(&post.content).map_err(ActorError::Client)?;
        if let Some(nonce) = &post.nonce {
            client::validate_nonce(nonce).map_err(ActorError::Client)?;
        }
        Ok(())
    }

    async fn find_by_nonce(&self, user: Snowflake, nonce: &str) -> Result<Found, ActorError> {
        let key = (user, nonce.to_owned());
        if let Some(view) = self.recent_nonces.get(&key) {
            return Ok(Found::Stored(view.clone()));
        }
        let queued = self.in_flight.iter().flatten().chain(self.pending.iter());
        for (index, p) in queued.enumerate() {
            if p.record.user_id == user && p.record.nonce.as_deref() == Some(nonce) {
                return Ok(Found::Queued(index));
            }
        }
        let Some(id) = self
            .ctx
            .store
            .message_by_nonce(self.room.id, user, nonce)
            .await?
        else {
            return Ok(Found::No);
        };
        match self.ctx.store.message(self.room.id, id).await? {
            Some(record) => Ok(Found::Stored(view_of(&record))),
            None => Ok(Found::No),
        }
    }

    fn attach_reply(&mut self, index: usize, reply: Reply<SentReply>) {
        let in_flight_len = self.in_flight.as_ref().map_or(0, Vec::len);
        let post = if index < in_flight_len {
            self.in_flight.as_mut().and_then(|b| b.get_mut(index))
        } else {
            self.pending.get_mut(index - in_flight_len)
        };
        match post {
            Some(post) => post.replies.push(reply),
            None => reply.send(Err(ActorError::Unavailable)),
        }
    }

    /// Moves pending posts into the in-flight batch and returns the records to write, unless a
    /// write is already in flight.
    pub fn take_write_batch(&mut self) -> Option<Vec<MessageRecord>> {
        if self.in_flight.is_some() || self.pending.is_empty() {
            return None;
        }
        let take = self.pending.len().min(MAX_BATCH);
        let batch: Vec<PendingPost> = self.pending.drain(..take).collect();
        let records = batch.iter().map(|p| p.record.clone()).collect();
        self.in_flight = Some(batch);
        Some(records)
    }

    /// The in-flight batch is durable (ack and broadcast it) or failed (tell its senders).
    pub fn handle_committed(&mut self, result: Result<(), StoreError>) {
        let Some(batch) = self.in_flight.take() else {
            return;
        };
        if let Err(e) = result {
            let body = ActorError::Store(e).to_body();
            for post in batch {
                for reply in post.replies {
                    reply.send(Err(ActorError::Client(body.clone())));
                }
            }
            return;
        }
        // Encoded once; every member gets the same bytes, one queue entry for the whole batch.
        let frames: Vec<Frame> = batch
            .iter()
            .map(|p| frame::event(events::MESSAGE_RECEIVED, &p.view))
            .collect();
        let blob = [Frame::concat(&frames)];
        let last = batch
            .last()
            .map(|p| p.record.id)
            .unwrap_or(self.last_broadcast);
        self.last_broadcast = self.last_broadcast.max(last);
        self.fan_out(None, Some(last), &blob[0]);
        metrics::counter!("voiceflow_messages_total").increment(batch.len() as u64);
        // Sessions on other nodes are counted there, when their node fans the batch out.
        let local = self
            .live
            .values()
            .filter(|l| matches!(l.to, Recipient::Local(_)))
            .count();
        metrics::counter!("voiceflow_deliveries_total").increment((batch.len() * local) as u64);
        for post in batch {
            if let Some(nonce) = &post.record.nonce {
                self.remember_nonce(post.record.user_id, nonce.clone(), post.view.clone());
            }
            for reply in post.replies {
                reply.send(Ok(SentReply {
                    message: post.view.clone(),
                }));
            }
        }
    }

    fn remember_nonce(&mut self, user: Snowflake, nonce: String, view: MessageView) {
        let key = (user, nonce);
        if self.recent_nonces.insert(key.clone(), view).is_none() {
            self.nonce_order.push_back(key);
        }
        while self.nonce_order.len() > self.ctx.config.nonce_cache {
            if let Some(old) = self.nonce_order.pop_front() {
                self.recent_nonces.remove(&old);
            }
        }
    }

    /// `typing:start`: returns the generation to expire, or `None` if the user may not type here.
    pub fn handle_typing_start(&mut self, user: Snowflake) -> Option<u64> {
        if !self.members.contains_key(&user) {
            return None;
        }
        self.typing_generation += 1;
        let generation = self.typing_generation;
        if self.typing.insert(user, generation).is_none() {
            let event = TypingEvent {
                room_id: self.room.id,
                user_id: user,
            };
            self.broadcast_except_user(user, &frame::event(events::USER_TYPING, &event));
        }
        Some(generation)
    }

    /// `typing:stop`.
    pub fn handle_typing_stop(&mut self, user: Snowflake) {
        self.stop_typing(user);
    }

    /// A typing timer fired.
    pub fn handle_typing_expired(&mut self, user: Snowflake, generation: u64) {
        if self.typing.get(&user) == Some(&generation) {
            self.stop_typing(user);
        }
    }

    fn stop_typing(&mut self, user: Snowflake) {
        if self.typing.remove(&user).is_some() {
            let event = TypingEvent {
                room_id: self.room.id,
                user_id: user,
            };
            self.broadcast_except_user(user, &frame::event(events::USER_STOPPED_TYPING, &event));
        }
    }

    /// Whether `user` is currently shown as typing.
    pub fn is_typing(&self, user: Snowflake) -> bool {
        self.typing.contains_key(&user)
    }

    /// Join by code: become a member (ROOM_FULL at `maxUsers`).
    pub async fn handle_add_member(&mut self, author: Author) -> Result<JoinReply, ActorError> {
        self.add_member(&author).await?;
        Ok(JoinReply {
            room_id: self.room.id,
            participants: self.participants(false),
            replayed: 0,
            replay_truncated: false,
        })
    }

    /// Leave the room for good: membership removed, live sessions unsubscribed.
    pub async fn handle_remove_member(&mut self, user: Snowflake) -> Result<(), ActorError> {
        if !self.members.contains_key(&user) {
            return Err(ActorError::Forbidden("not a member of this room"));
        }
        self.ctx.store.remove_member(self.room.id, user).await?;
        self.members.remove(&user);
        let sessions: Vec<u64> = self
            .live
            .values()
            .filter(|s| s.user_id == user)
            .map(|s| s.session_id)
            .collect();
        for session_id in sessions {
            if let Some(session) = self.live.get(&session_id) {
                session.to.forget_room(self.room.id);
            }
            self.handle_leave(session_id, None);
        }
        Ok(())
    }

    /// Tombstones a message (author or admin) and tells everyone.
    pub async fn handle_delete_message(
        &mut self,
        id: Snowflake,
        by: Snowflake,
    ) -> Result<(), ActorError> {
        let record = self
            .ctx
            .store
            .message(self.room.id, id)
            .await?
            .ok_or(ActorError::MessageNotFound)?;
        let is_admin = self.members.get(&by).is_some_and(|m| m.role == Role::Admin);
        if record.user_id != by && !is_admin {
            return Err(ActorError::Forbidden(
                "only the author or a room admin may delete a message",
            ));
        }
        if record.deleted_at.is_none() {
            self.ctx
                .store
                .tombstone_message(self.room.id, id, now_ms())
                .await?;
            let event = MessageDeleted {
                room_id: self.room.id,
                message_id: id,
            };
            self.broadcast(&frame::event(events::MESSAGE_DELETED, &event));
        }
        Ok(())
    }

    /// The stored record changed.
    pub fn handle_updated(&mut self, room: RoomRecord) {
        if room.id == self.room.id {
            self.room = room;
        }
    }

    /// Deletes the room (admin only) and tells every live session.
    pub async fn handle_delete_room(&mut self, by: Snowflake) -> Result<(), ActorError> {
        if self.members.get(&by).map(|m| m.role) != Some(Role::Admin) {
            return Err(ActorError::Forbidden(
                "only a room admin may delete the room",
            ));
        }
        self.ctx.store.delete_room(self.room.id).await?;
        self.broadcast(&frame::event(
            events::ROOM_DELETED,
            &RoomDeleted {
                room_id: self.room.id,
            },
        ));
        for (_, session) in self.live.drain() {
            session.to.forget_room(self.room.id);
        }
        Ok(())
    }
}

enum Found {
    Stored(MessageView),
    Queued(usize),
    No,
}
