//! Room logic, kept off the actor so it can be tested without sockets.
//!
//! - this file: the state, loading, joins and leaves, memberships, typing;
//! - [`log`]: the room log pipeline (changes → seq → storage → broadcast), replay and resync;
//! - [`changes`]: posts, edits, deletions and reactions turned into changes;
//! - [`social`]: presence of members and read markers;
//! - [`fanout`]: getting frames to live sessions here and on other nodes;
//! - [`live`]: the subscribed sessions, counted per user (online in O(1));
//! - [`voice`] and [`stage`]: the SFU session of voice channels and stages;
//! - [`call`]: 1:1 calls of a direct conversation (their actor is a child of the room);
//! - [`account`]: what follows a member's account (renames, who may type).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use voiceflow_schema::{Membership, MessageRecord, Role, RoomRecord, StoreError};
use voiceflow_wire::Snowflake;
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::RoomRef;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::rich::PresenceStatus;
use voiceflow_wire::v1::server::{JoinReply, Participant, RoomDeleted, UserPresenceInRoom, events};

mod account;
mod call;
mod change;
mod changes;
mod channel;
mod fanout;
mod live;
mod log;
mod members;
mod mention_delivery;
pub mod mentions;
mod social;
mod stage;
mod typing;
mod unrecorded;
mod voice;
mod voice_requests;
mod voice_upkeep;
mod voice_video;

pub use account::leave_answer;
pub use fanout::view_of;
pub use log::ResyncData;
pub use social::{PRESENCE_INTERVAL, RECEIPT_DELAY};

use super::{Author, Reply, SessionLink};
use crate::context::NodeContext;
use crate::error::ActorError;

/// A member as the room remembers them.
#[derive(Debug, Clone)]
struct Member {
    role: Role,
    username: String,
    joined_at: u64,
}

/// Everything a room actor knows.
pub struct RoomState {
    /// The room record.
    pub room: RoomRecord,
    /// Node handles.
    pub ctx: NodeContext,
    members: HashMap<Snowflake, Member>,
    live: live::LiveSessions,
    typing: HashMap<Snowflake, u64>,
    typing_generation: u64,
    /// The room log: its end, and the changes on their way into it.
    log: log::Log,
    /// Recently stored (user, nonce) → message id, for retries without a storage read.
    recent_nonces: HashMap<(Snowflake, String), MessageRecord>,
    nonce_order: VecDeque<(Snowflake, String)>,
    /// Recently changed messages as stored, for edits and reactions without a storage read.
    recent_messages: HashMap<Snowflake, MessageRecord>,
    recent_order: VecDeque<Snowflake>,
    /// A room that keeps no messages: the latest frames with their content.
    unrecorded: unrecorded::Window,
    /// Newest message id broadcast (read markers never pass it).
    last_message_id: Snowflake,
    /// Newest message id this actor assigned (ids only grow, whichever node ran the room before).
    last_assigned: Snowflake,
    /// Members' presence and read markers.
    social: social::Social,
    last_activity: Instant,
    /// Left the directory; stops once its writes are done.
    pub retiring: bool,
    /// Everything queued before the retirement was handled.
    pub retire_marker_seen: bool,
    /// Automatic re-joins tried again after a transient failure, per session.
    pub join_retries: HashMap<u64, u32>,
    /// The periodic idle check.
    pub idle_timer: Option<tokio::task::JoinHandle<()>>,
    /// The periodic voice tick (voice channels).
    pub voice_timer: Option<tokio::task::JoinHandle<()>>,
    /// When the actor started (member lists wait a moment for presence).
    pub started_at: Instant,
    /// Member lists waiting for that moment.
    pub waiting_members: Vec<ractor::RpcReplyPort<Result<Vec<Participant>, ActorError>>>,
    /// The SFU session of a voice channel, once someone joined it.
    voice: Option<voice::VoiceRoom>,
    /// The call going on in a direct conversation.
    call: Option<call::ActiveCall>,
    /// The community's permissions, if this room is one of its channels.
    channel: Option<channel::ChannelGuard>,
}

/// What becomes of a join that failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FailedJoin {
    /// Try it again soon (a session's automatic re-join, a failure of the moment).
    Retry,
    /// Answer nothing: the room is retiring, and the session re-joins where it goes next.
    Drop,
    /// Answer with the error; the session forgets the room.
    Refuse,
}

/// A session's automatic re-join (no request id) that failed for a moment is tried again
/// (or left to the room's next owner), never refused: a refusal makes the session forget
/// the room while its client still believes it follows it.
pub(crate) fn failed_join<T>(reply: &Reply<T>, error: &ActorError, retiring: bool) -> FailedJoin {
    let automatic = matches!(reply, Reply::Session { req_id: None, .. });
    match (automatic && error.is_transient(), retiring) {
        (true, false) => FailedJoin::Retry,
        (true, true) => FailedJoin::Drop,
        (false, _) => FailedJoin::Refuse,
    }
}

impl RoomState {
    /// Rebuilds a room from storage: members (with current usernames), the log's end and the
    /// newest message id. A community channel reads no members: its room's members are the
    /// community's, up to every one of 100,000, and each is read the first time they act here
    /// (`channel::admit`), beside their grants.
    pub async fn load(room: RoomRecord, ctx: NodeContext) -> Result<RoomState, StoreError> {
        let store = &ctx.store;
        // The members and the log are read side by side: a room that starts after its owner
        // died waits for both, and hundreds start at once then (recovery time).
        let members = async {
            let channel = channel::ChannelGuard::load(&**store, room.id).await?;
            if channel.is_some() {
                return Ok::<_, StoreError>((HashMap::new(), channel));
            }
            let members = members::read(&ctx, room.id).await?;
            Ok::<_, StoreError>((members, channel))
        };
        // Take the room over in storage first: from now on an older owner's writes are
        // refused or never read. Then the head (reading it repairs messages a crashed commit
        // left behind the log) and, beside it, the newest message: a message the head
        // repairs is at most the head's own, so the larger of the two ids is the newest.
        let log = async {
            let owner_epoch = store.claim_room(room.id, None).await?;
            let (head, newest) = tokio::try_join!(
                store.log_head_after_claim(room.id, owner_epoch),
                store.messages_before(room.id, None, 1)
            )?;
            Ok::<_, StoreError>((owner_epoch, head, newest))
        };
        let ((members, channel), (owner_epoch, head, newest)) = tokio::try_join!(members, log)?;
        let last_message_id = newest
            .first()
            .map(|m| m.id)
            .into_iter()
            .chain(head.and_then(|h| h.message))
            .max()
            .unwrap_or_default();
        // Whatever of the log the node's index lacks (the room moved here, the node restarted
        // or its indexer dropped a batch) is read from the log by the indexer, off this path.
        // An empty log too: from now on this actor's batches keep the index current, so a
        // search need not read the log again (until the placement changes).
        if let Some(search) = &ctx.search
            && room.settings.record_messages
        {
            search.catch_up(room.id, head.as_ref().map_or(0, |h| h.seq));
        }
        let log = log::Log::new(head, owner_epoch, || ctx.ids.next_id().0);
        Ok(RoomState {
            room,
            ctx,
            members,
            live: live::LiveSessions::default(),
            typing: HashMap::new(),
            typing_generation: 0,
            log,
            recent_nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            recent_messages: HashMap::new(),
            recent_order: VecDeque::new(),
            unrecorded: unrecorded::Window::default(),
            last_message_id,
            last_assigned: last_message_id,
            social: social::Social::default(),
            last_activity: Instant::now(),
            retiring: false,
            retire_marker_seen: false,
            join_retries: HashMap::new(),
            idle_timer: None,
            voice_timer: None,
            started_at: Instant::now(),
            waiting_members: Vec::new(),
            voice: None,
            call: None,
            channel,
        })
    }

    /// Records activity (for the idle timeout).
    pub fn touch(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Nobody subscribed, nothing pending, and quiet for the idle timeout.
    pub fn is_idle(&self) -> bool {
        self.live.is_empty()
            && self.voice_participants() == 0
            && !self.call_ongoing()
            && self.writes_done()
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

    /// The members' user ids.
    pub fn member_ids(&self) -> Vec<Snowflake> {
        self.members.keys().copied().collect()
    }

    fn user_is_live(&self, user: Snowflake) -> bool {
        self.live.has_user(user)
    }

    /// Members (all, or only those with a live session), one entry per user, with presence.
    pub fn participants(&self, online_only: bool) -> Vec<Participant> {
        let mut list: Vec<(u64, Participant)> = self
            .members
            .iter()
            .filter_map(|(id, m)| {
                let online = self.user_is_live(*id);
                let (status, last_seen) = self.social.presence_of(*id, online);
                (online || !online_only).then(|| {
                    (
                        m.joined_at,
                        Participant {
                            user_id: *id,
                            username: m.username.clone(),
                            role: m.role.as_str().into(),
                            online,
                            status,
                            last_seen,
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

    /// Makes `author` a member (ROOM_FULL at `maxUsers`) and logs a system message.
    async fn add_member(&mut self, author: &Author) -> Result<(), ActorError> {
        if self.members.contains_key(&author.user_id) {
            return Ok(());
        }
        if self.room.banned.contains(&author.user_id) {
            return Err(ActorError::Forbidden("you are banned from this room"));
        }
        // A channel's members are its community's: `maxUsers` is for rooms of their own.
        if !self.is_channel() && self.members.len() >= self.room.max_users as usize {
            return Err(ActorError::RoomFull);
        }
        // The account's name now, not the one the session or token carries (a rename since).
        let author = &Author {
            user_id: author.user_id,
            username: match self.ctx.store.user_by_id(author.user_id).await? {
                Some(user) => user.username,
                None => author.username.clone(),
            },
        };
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
        // A community member opening a channel is not news to its readers.
        if !self.is_channel() {
            self.queue_system_message(author, "joined the room");
        }
        Ok(())
    }

    /// `room:join`: members (and anyone, for public rooms, who then becomes a member) subscribe;
    /// logged events after `since` are replayed first, then the ack, then live events.
    /// A session's automatic re-join (no request id) that failed only for a moment (storage unavailable while it read the replay) is handed back to be tried
    /// again: answering it
    /// with an error would leave the session believing it follows the room while the room
    /// never added it (its client would silently miss messages).
    pub async fn handle_join(
        &mut self,
        session: SessionLink,
        since: Option<u64>,
        epoch: Option<u64>,
        members: bool,
        reply: Reply<JoinReply>,
    ) -> Option<(
        SessionLink,
        Option<u64>,
        Option<u64>,
        bool,
        Reply<JoinReply>,
    )> {
        let to = session.to.clone();
        let retry = session.clone();
        let result = self.join(session, since, epoch, members).await;
        if let Err(e) = &result {
            match failed_join(&reply, e, self.retiring) {
                FailedJoin::Retry => return Some((retry, since, epoch, members, reply)),
                // The session re-joins wherever the room goes next (it keeps its resume
                // point).
                FailedJoin::Drop => return None,
                // No resume point and no automatic re-join for a join the room refused.
                FailedJoin::Refuse => to.forget_room(self.room.id),
            }
        }
        reply.send(result);
        None
    }

    /// The join ack: counts always, the member list only when `members` (building it is
    /// O(room size), and a client subscribing to all its rooms needs it only for one).
    fn join_reply(&self, members: bool, replay: (u32, bool)) -> JoinReply {
        JoinReply {
            room_id: self.room.id,
            participants: if members {
                self.participants(false)
            } else {
                Vec::new()
            },
            member_count: self.members.len() as u32,
            online_count: self.live.users() as u32,
            replayed: replay.0,
            replay_truncated: replay.1,
            seq: self.log.head(),
            epoch: self.log.epoch(),
            voice: self.voice_members(),
        }
    }

    async fn join(
        &mut self,
        session: SessionLink,
        since: Option<u64>,
        epoch: Option<u64>,
        members: bool,
    ) -> Result<JoinReply, ActorError> {
        let author = Author {
            user_id: session.user_id,
            username: session.username.clone(),
        };
        if self.is_channel() {
            // Viewers of a channel become members of its room on first use.
            self.require(session.user_id, Permissions::VIEW_CHANNEL, "")
                .await?;
        } else if !self.members.contains_key(&session.user_id) {
            let banned = self.room.banned.contains(&session.user_id);
            match (
                self.open_to_all(),
                self.room.settings.allow_guests && !banned,
            ) {
                (true, _) => self.add_member(&author).await?,
                // A guest: live events and replay, without membership (nothing else).
                (false, true) => {}
                (false, false) if self.room.settings.require_approval => {
                    return Err(ActorError::Forbidden(
                        "this room takes members by approval: ask with its join code",
                    ));
                }
                (false, false) => return Err(ActorError::Forbidden("not a member of this room")),
            }
        }
        // The same session again: its node re-sent a join that was slow to be confirmed, or
        // followed the room to another node for a moment (a view of the members that
        // flapped while a node came back) and dropped the fan-outs this room sent meanwhile,
        // as they came from an owner it no longer followed. It stays in the live set, and is
        // replayed from where it says it is, like a new one: its outbox drops the events it
        // already has, so nothing arrives twice and nothing is skipped (a chaos soak saw a
        // receiver miss one acknowledged message when this confirmed without replaying).
        let again = self.live.contains_key(&session.session_id);
        let replay = match since {
            Some(since) => self.replay(&session, since, epoch).await?,
            None => (0, false),
        };
        // The resume point for an automatic re-join, even if no event arrives meanwhile.
        session
            .to
            .push_room_messages(self.room.id, self.log.head(), &[]);
        if again {
            session.to.subscribed();
            return Ok(self.join_reply(members, replay));
        }
        let user_id = session.user_id;
        session.to.subscribed();
        let first_session = self.live.insert(session);
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
        Ok(self.join_reply(members, replay))
    }

    /// Whether anyone signed in becomes a member by joining (a public room that does not
    /// require approval).
    pub(super) fn open_to_all(&self) -> bool {
        self.room.settings.is_public && !self.room.settings.require_approval
    }

    /// `room:leave` or a closed connection.
    /// A leave from a session that is neither subscribed nor of a member is refused.
    pub fn handle_leave(
        &mut self,
        session_id: u64,
        user_id: Snowflake,
        reply: Option<Reply<RoomRef>>,
    ) {
        let allowed = self.live.contains_key(&session_id) || self.members.contains_key(&user_id);
        if let Some((session, last_of_user)) = self.live.remove(session_id) {
            metrics::gauge!("voiceflow_room_subscriptions").decrement(1.0);
            if last_of_user {
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
            reply.send(if allowed {
                Ok(RoomRef {
                    room_id: self.room.id,
                })
            } else {
                Err(ActorError::Forbidden("not a member of this room"))
            });
        }
    }

    /// The stored record changed, or (for a channel) its community's permissions did.
    pub async fn handle_updated(&mut self, room: RoomRecord) {
        self.update_record(room);
        self.reload_channel().await;
    }

    fn update_record(&mut self, mut room: RoomRecord) {
        if room.id == self.room.id {
            // Bans are written by this actor: an edit read before a ban must not undo it.
            for user in &self.room.banned {
                if !room.banned.contains(user) {
                    room.banned.push(*user);
                }
            }
            self.room = room;
        }
    }

    /// Deletes the room (admin only) and tells every live session.
    pub async fn handle_delete_room(&mut self, by: Snowflake) -> Result<(), ActorError> {
        if self.is_channel() {
            self.require(
                by,
                Permissions::MANAGE_CHANNELS,
                "you may not delete this channel",
            )
            .await?;
        } else if self.members.get(&by).map(|m| m.role) != Some(Role::Admin) {
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
        for session in self.live.drain() {
            session.to.forget_room(self.room.id);
        }
        Ok(())
    }

    /// Remembers the stored state of a message (bounded).
    fn remember_message(&mut self, message: MessageRecord) {
        let id = message.id;
        if self.recent_messages.insert(id, message).is_none() {
            self.recent_order.push_back(id);
        }
        while self.recent_order.len() > self.ctx.config.nonce_cache {
            if let Some(old) = self.recent_order.pop_front() {
                self.recent_messages.remove(&old);
            }
        }
    }

    fn remember_nonce(&mut self, message: &MessageRecord) {
        let Some(nonce) = &message.nonce else { return };
        let key = (message.user_id, nonce.clone());
        if self
            .recent_nonces
            .insert(key.clone(), message.clone())
            .is_none()
        {
            self.nonce_order.push_back(key);
        }
        while self.nonce_order.len() > self.ctx.config.nonce_cache {
            if let Some(old) = self.nonce_order.pop_front() {
                self.recent_nonces.remove(&old);
            }
        }
    }

    /// The presence a member is shown with.
    pub fn presence_of(&self, user: Snowflake) -> PresenceStatus {
        self.social.presence_of(user, self.user_is_live(user)).0
    }
}
