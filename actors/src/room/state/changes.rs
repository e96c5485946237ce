//! Posts, edits, deletions and reactions: checked here, turned into [`Change`]s for the log.

use ractor::RpcReplyPort;
use voiceflow_schema::{MessageRecord, Reaction, ReplyRef};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::client::{self, MessageType, SendMessage, SentReply};
use voiceflow_wire::v1::permissions::Permissions;
use voiceflow_wire::v1::rich::{self, MAX_REACTIONS_PER_MESSAGE, MessageRef, MessageReply};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::log::{Change, ChangeKind, ChangeReply, reaction_event};
use super::mention_delivery::MentionReach;
use super::{Author, RoomState, view_of};
use crate::error::ActorError;
use crate::room::{ActReply, Action, Reply};

/// Longest reply snippet, in characters.
const SNIPPET_CHARS: usize = 100;

/// What an action comes to.
enum Outcome {
    /// A change for the log; the reply waits for it to be stored (boxed: a change carries a
    /// whole message).
    Queue(Box<Change>),
    /// Nothing changes (already so): answer at once.
    Now(ActReply),
}

enum Found {
    Stored(Box<MessageRecord>),
    Queued(usize),
    No,
}

fn invalid(field: &str, message: &str) -> ActorError {
    ActorError::Client(ErrorBody::field(field, message))
}

impl RoomState {
    /// `message:send`: validate, dedupe by nonce, assign an id and queue for the log.
    pub async fn handle_post(
        &mut self,
        mut author: Author,
        post: SendMessage,
        reply: Reply<SentReply>,
    ) {
        // The account's current name, whatever name the session or token was opened with.
        if let Some(name) = self.current_name(author.user_id) {
            name.clone_into(&mut author.username);
        }
        let need = match post.file_id {
            Some(_) => Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES,
            None => Permissions::SEND_MESSAGES,
        };
        if let Err(e) = self
            .require(author.user_id, need, "you may not post here")
            .await
        {
            return reply.send(Err(e));
        }
        if let Err(e) = self.validate_post(&author, &post) {
            return reply.send(Err(e));
        }
        if !self.room.settings.record_messages && post.file_id.is_some() {
            // A file would outlive a room that keeps no messages.
            let why = "this room keeps no messages: files cannot be posted to it";
            return reply.send(Err(invalid("fileId", why)));
        }
        if let Err(e) = self.dm_allowed(author.user_id).await {
            return reply.send(Err(e));
        }
        if let Some(nonce) = &post.nonce {
            match self.find_by_nonce(author.user_id, nonce).await {
                Ok(Found::Stored(record)) => {
                    let latest = self.latest_message(record.id).unwrap_or(&record);
                    return reply.send(Ok(SentReply {
                        message: view_of(latest),
                    }));
                }
                Ok(Found::Queued(index)) => {
                    match self.log.queued_mut(index) {
                        Some(change) => change.replies.push(ChangeReply::Sent(reply)),
                        None => reply.send(Err(ActorError::Unavailable)),
                    }
                    return;
                }
                Ok(Found::No) => {}
                Err(e) => return reply.send(Err(e)),
            }
        }
        if let Some(file_id) = post.file_id
            && let Err(e) = self.check_attachment(file_id, post.kind).await
        {
            return reply.send(Err(e));
        }
        let reply_to = match post.reply_to {
            Some(parent) => match self.message_for(parent).await {
                Ok(Some(p)) => Some(ReplyRef {
                    id: p.id,
                    user_id: p.user_id,
                    username: p.username.clone(),
                    snippet: p.content.chars().take(SNIPPET_CHARS).collect(),
                }),
                Ok(None) => {
                    return reply.send(Err(invalid("replyTo", "no such message in this room")));
                }
                Err(e) => return reply.send(Err(e)),
            },
            None => None,
        };
        let id = self.next_message_id();
        let mut record = MessageRecord {
            id,
            room_id: self.room.id,
            user_id: author.user_id,
            username: author.username,
            content: post.content,
            kind: post.kind,
            nonce: post.nonce,
            created_at: id.timestamp_ms(),
            deleted_at: None,
            extra: Default::default(),
        };
        record.extra.reply_to = reply_to;
        record.extra.file_id = post.file_id;
        if let Err(e) = self.resolve_mentions(&mut record).await {
            return reply.send(Err(e));
        }
        self.stop_typing(record.user_id);
        let mut change = Change::new(ChangeKind::Created, record);
        change.replies.push(ChangeReply::Sent(reply));
        self.queue_change(change);
    }

    /// Whether `author` may ping many people at once (`@everyone`, `@here`, a role):
    /// `mention_everyone` in a community channel; a room admin elsewhere. Otherwise the words
    /// stay in the text and ping nobody, as in Discord.
    pub(super) async fn may_ping_many(&mut self, author: Snowflake) -> Result<bool, ActorError> {
        Ok(match self.channel_permissions(author).await? {
            Some(held) => held.contains(Permissions::MENTION_EVERYONE),
            None => self
                .members
                .get(&author)
                .is_some_and(|m| m.role == voiceflow_schema::Role::Admin),
        })
    }

    fn validate_post(&self, author: &Author, post: &SendMessage) -> Result<(), ActorError> {
        if !self.members.contains_key(&author.user_id) {
            return Err(ActorError::Forbidden("not a member of this room"));
        }
        if post.kind == MessageType::System {
            return Err(invalid("type", "system messages come only from the server"));
        }
        let needs_file = matches!(post.kind, MessageType::File | MessageType::VoiceNote);
        if needs_file != post.file_id.is_some() {
            return Err(invalid(
                "fileId",
                "file and voice_note messages need a fileId; other messages take none",
            ));
        }
        // A file or a voice note speaks for itself; a caption is optional.
        let valid = if needs_file {
            client::validate_caption(&post.content)
        } else {
            client::validate_content(&post.content)
        };
        valid.map_err(ActorError::Client)?;
        if let Some(nonce) = &post.nonce {
            client::validate_nonce(nonce).map_err(ActorError::Client)?;
        }
        Ok(())
    }

    /// A `file` / `voice_note` message must point at a file uploaded to this room (a voice
    /// note at audio).
    async fn check_attachment(
        &self,
        file_id: Snowflake,
        kind: MessageType,
    ) -> Result<(), ActorError> {
        let meta = self
            .ctx
            .blobs
            .meta(file_id)
            .await?
            .filter(|m| m.room_id == self.room.id)
            .ok_or_else(|| invalid("fileId", "no such file in this room"))?;
        if kind == MessageType::VoiceNote && !meta.mime_type.starts_with("audio/") {
            return Err(invalid("fileId", "a voice note must be an audio file"));
        }
        Ok(())
    }

    async fn find_by_nonce(&self, user: Snowflake, nonce: &str) -> Result<Found, ActorError> {
        let key = (user, nonce.to_owned());
        if let Some(record) = self.recent_nonces.get(&key) {
            return Ok(Found::Stored(Box::new(record.clone())));
        }
        for (index, c) in self.log.queued().enumerate() {
            let m = &c.message;
            if c.kind == ChangeKind::Created
                && m.user_id == user
                && m.nonce.as_deref() == Some(nonce)
            {
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
            Some(record) => Ok(Found::Stored(Box::new(record))),
            None => Ok(Found::No),
        }
    }

    /// A message of this room in its newest state (queued changes included).
    pub(super) async fn message_for(
        &self,
        id: Snowflake,
    ) -> Result<Option<MessageRecord>, ActorError> {
        if let Some(m) = self.latest_message(id) {
            return Ok(Some(m.clone()));
        }
        Ok(self.ctx.store.message(self.room.id, id).await?)
    }

    /// An edit, deletion, reaction or read marker from a member.
    pub async fn handle_act(&mut self, author: Author, action: Action, reply: Reply<ActReply>) {
        let (need, refusal) = match &action {
            Action::Edit { .. } => (Permissions::SEND_MESSAGES, "you may not post here"),
            Action::React { .. } => (Permissions::ADD_REACTIONS, "you may not react here"),
            Action::Delete { .. } | Action::Read { .. } => (Permissions::VIEW_CHANNEL, ""),
        };
        if let Err(e) = self.require(author.user_id, need, refusal).await {
            return reply.send(Err(e));
        }
        if let Action::Read { message_id } = action {
            let result = self.handle_read(author.user_id, message_id).await;
            return reply.send(result.map(ActReply::Ref));
        }
        match self.outcome(author.user_id, action).await {
            Ok(Outcome::Queue(mut change)) => {
                change.replies.push(ChangeReply::Act(reply));
                self.queue_change(*change);
            }
            Ok(Outcome::Now(now)) => reply.send(Ok(now)),
            Err(e) => reply.send(Err(e)),
        }
    }

    /// `DELETE /messages/:id`: answered once the tombstone is stored.
    pub async fn handle_delete_message(
        &mut self,
        message_id: Snowflake,
        by: Snowflake,
        reply: RpcReplyPort<Result<(), ActorError>>,
    ) {
        if let Err(e) = self.require(by, Permissions::VIEW_CHANNEL, "").await {
            let _ = reply.send(Err(e));
            return;
        }
        match self.outcome(by, Action::Delete { message_id }).await {
            Ok(Outcome::Queue(mut change)) => {
                change.replies.push(ChangeReply::Done(reply));
                self.queue_change(*change);
            }
            Ok(Outcome::Now(_)) => {
                let _ = reply.send(Ok(()));
            }
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    async fn outcome(&mut self, by: Snowflake, action: Action) -> Result<Outcome, ActorError> {
        if !self.members.contains_key(&by) {
            return Err(ActorError::Forbidden("not a member of this room"));
        }
        let is_admin = self.moderates_messages(by).await?;
        let message_id = match &action {
            Action::Edit { message_id, .. }
            | Action::Delete { message_id }
            | Action::React { message_id, .. }
            | Action::Read { message_id } => *message_id,
        };
        if let Action::React { emoji, .. } = &action {
            rich::validate_emoji(emoji).map_err(ActorError::Client)?;
        }
        if let Action::Edit { content, .. } = &action {
            client::validate_content(content).map_err(ActorError::Client)?;
        }
        let mut message = self
            .message_for(message_id)
            .await?
            .ok_or(ActorError::MessageNotFound)?;
        match action {
            Action::Edit { content, .. } => {
                if message.user_id != by || message.kind == MessageType::System {
                    return Err(ActorError::Forbidden("only the author may edit a message"));
                }
                if message.deleted_at.is_some() {
                    return Err(invalid("messageId", "a deleted message cannot be edited"));
                }
                if message.content == content {
                    return Ok(Outcome::Now(ActReply::Message(Box::new(MessageReply {
                        message: view_of(&message),
                    }))));
                }
                let before = MentionReach::of(&message.extra);
                message.content = content;
                message.extra.edited_at = Some(now_ms());
                self.resolve_mentions(&mut message).await?;
                let mut change = Change::new(ChangeKind::Edited, message);
                change.before = Some(before);
                Ok(Outcome::Queue(Box::new(change)))
            }
            Action::Delete { .. } => {
                let own = message.user_id == by && message.kind != MessageType::System;
                if !own && !is_admin {
                    return Err(ActorError::Forbidden(
                        "only the author or a moderator may delete a message",
                    ));
                }
                if message.deleted_at.is_some() {
                    return Ok(Outcome::Now(ActReply::Ref(MessageRef {
                        room_id: self.room.id,
                        message_id,
                    })));
                }
                let before = MentionReach::of(&message.extra);
                make_tombstone(&mut message, now_ms());
                let mut change = Change::new(ChangeKind::Deleted, message);
                change.before = Some(before);
                Ok(Outcome::Queue(Box::new(change)))
            }
            Action::React { emoji, add, .. } => {
                if message.deleted_at.is_some() {
                    return Err(invalid("messageId", "a deleted message takes no reactions"));
                }
                if !apply_reaction(&mut message.extra.reactions, &emoji, by, add)? {
                    let mut now = reaction_event(&message, &emoji, by, add);
                    now.seq = 0;
                    return Ok(Outcome::Now(ActReply::Reaction(now)));
                }
                let kind = ChangeKind::Reaction {
                    emoji,
                    user: by,
                    added: add,
                };
                Ok(Outcome::Queue(Box::new(Change::new(kind, message))))
            }
            Action::Read { .. } => Err(invalid("op", "read markers are not log changes")),
        }
    }
}

/// What is left of a deleted message: who posted it and when, its place in the log and the
/// reply it was, but no content, file or reactions.
pub(crate) fn make_tombstone(message: &mut MessageRecord, deleted_at: u64) {
    message.content.clear();
    message.extra.mentions_everyone = false;
    message.extra.mentions_here = false;
    message.extra.mentions.clear();
    message.extra.mention_roles.clear();
    message.extra.reactions.clear();
    message.extra.file_id = None;
    message.deleted_at = Some(deleted_at);
}

/// Whether `content` says `@everyone`, and whether it says `@here`, as words of their own.
pub(super) fn says_everyone(content: &str) -> (bool, bool) {
    let words = || content.split(|c: char| !(c.is_alphanumeric() || c == '@' || c == '_'));
    (
        words().any(|word| word == "@everyone"),
        words().any(|word| word == "@here"),
    )
}

/// Adds or removes `user`'s `emoji`; returns whether anything changed.
fn apply_reaction(
    reactions: &mut Vec<Reaction>,
    emoji: &str,
    user: Snowflake,
    add: bool,
) -> Result<bool, ActorError> {
    let entry = reactions.iter_mut().position(|r| r.emoji == emoji);
    match (entry, add) {
        (Some(i), true) => {
            let users = &mut reactions[i].users;
            if users.contains(&user) {
                return Ok(false);
            }
            users.push(user);
            Ok(true)
        }
        (None, true) => {
            if reactions.len() >= MAX_REACTIONS_PER_MESSAGE {
                return Err(invalid(
                    "emoji",
                    "a message takes at most 20 different reactions",
                ));
            }
            reactions.push(Reaction {
                emoji: emoji.to_owned(),
                users: vec![user],
            });
            Ok(true)
        }
        (Some(i), false) => {
            let users = &mut reactions[i].users;
            let before = users.len();
            users.retain(|u| *u != user);
            let changed = users.len() != before;
            if users.is_empty() {
                reactions.remove(i);
            }
            Ok(changed)
        }
        (None, false) => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyone_and_here_are_words_of_their_own() {
        assert_eq!(says_everyone("@everyone look"), (true, false));
        assert_eq!(says_everyone("hey, @here!"), (false, true));
        assert_eq!(says_everyone("@here and @everyone"), (true, true));
        assert_eq!(
            says_everyone("mail me@everyone.org or @hereafter"),
            (false, false)
        );
        assert_eq!(says_everyone("everyone here"), (false, false));
    }

    #[test]
    fn one_reaction_per_user_per_emoji_and_at_most_twenty_emoji() {
        let mut r = Vec::new();
        let (a, b) = (Snowflake(1), Snowflake(2));
        assert!(apply_reaction(&mut r, "👍", a, true).expect("add"));
        assert!(!apply_reaction(&mut r, "👍", a, true).expect("again"));
        assert!(apply_reaction(&mut r, "👍", b, true).expect("second user"));
        assert_eq!(r[0].users, vec![a, b]);
        assert!(!apply_reaction(&mut r, "🎉", a, false).expect("absent"));
        assert!(apply_reaction(&mut r, "👍", a, false).expect("remove"));
        assert!(apply_reaction(&mut r, "👍", b, false).expect("remove last"));
        assert!(r.is_empty(), "an emoji nobody uses is gone");
        for i in 0..20 {
            assert!(apply_reaction(&mut r, &format!("e{i}"), a, true).expect("add"));
        }
        assert!(apply_reaction(&mut r, "e20", a, true).is_err());
        assert!(apply_reaction(&mut r, "e3", b, true).expect("existing emoji still fine"));
    }
}
