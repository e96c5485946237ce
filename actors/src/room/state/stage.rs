//! Stage rooms: hosts (the room's admins) and speakers talk, listeners listen and raise hands.
//! Only hosts and speakers have their audio forwarded; hosts promote and demote, kick and ban,
//! and end the stage. Every change is a `stage:updated` event to everyone who sees the room and
//! a system message in its chat.

use serde_json::Value;
use voiceflow_schema::{Role, RoomKind};
use voiceflow_wire::ids::now_ms;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::voice::{HandRaise, StageUpdated, events as voice_events};
use voiceflow_wire::{ErrorBody, ErrorCode, Snowflake};

use super::RoomState;
use super::voice::StageRole;
use crate::error::ActorError;
use crate::room::{Author, SessionLink, StageAction};

fn stage_error(message: &str) -> ActorError {
    ActorError::Client(ErrorBody::new(ErrorCode::ValidationError, message))
}

impl RoomState {
    /// A `stage:*` request; answers with the stage as it is afterwards.
    pub(super) async fn handle_stage(
        &mut self,
        session: SessionLink,
        action: StageAction,
        target: Option<Snowflake>,
    ) -> Result<Value, ActorError> {
        if self.room.kind != RoomKind::Stage {
            return Err(stage_error("this room is not a stage"));
        }
        let by = session.user_id;
        let is_host = self.members.get(&by).is_some_and(|m| m.role == Role::Admin);
        let Some(voice) = self.voice.as_mut() else {
            return Err(stage_error("join the stage first"));
        };
        let own = voice
            .entries
            .get_mut(&session.session_id)
            .ok_or_else(|| stage_error("join the stage first"))?;
        let mut subject = by;
        let mut subject_name = None;
        let text = match action {
            StageAction::HandRaise => {
                if own.role != StageRole::Listener {
                    return Err(stage_error("only listeners raise hands"));
                }
                own.hand_at.get_or_insert_with(now_ms);
                "raised a hand"
            }
            StageAction::HandLower => {
                own.hand_at = None;
                "lowered their hand"
            }
            StageAction::Promote | StageAction::Demote | StageAction::Kick | StageAction::Ban => {
                if !is_host {
                    return Err(ActorError::Forbidden("only a host may do that"));
                }
                subject = target.ok_or_else(|| {
                    ActorError::Client(ErrorBody::field("userId", "name the user"))
                })?;
                // Before a ban removes the membership.
                subject_name = self.members.get(&subject).map(|m| m.username.clone());
                match action {
                    StageAction::Promote => self.stage_set_role(subject, StageRole::Speaker)?,
                    StageAction::Demote => self.stage_set_role(subject, StageRole::Listener)?,
                    StageAction::Kick => self.stage_remove(subject, "removed"),
                    _ => self.stage_ban(subject).await?,
                }
                match action {
                    StageAction::Promote => "was invited to speak",
                    StageAction::Demote => "was moved to the audience",
                    StageAction::Kick => "was removed from the stage",
                    _ => "was banned",
                }
            }
            StageAction::End => {
                if !is_host {
                    return Err(ActorError::Forbidden("only a host may end the stage"));
                }
                let sessions: Vec<u64> = voice.entries.keys().copied().collect();
                for session_id in sessions {
                    self.voice_remove(session_id, "ended");
                }
                "ended the stage"
            }
        };
        let username = subject_name
            .or_else(|| self.members.get(&subject).map(|m| m.username.clone()))
            .unwrap_or_default();
        let author = Author {
            user_id: subject,
            username,
        };
        self.queue_system_message(&author, text);
        let update = self.stage_update(action, target, by);
        self.voice_broadcast(&frame::event(voice_events::STAGE_UPDATED, &update));
        Ok(serde_json::to_value(&update).unwrap_or(Value::Null))
    }

    /// The stage now, after `action`.
    fn stage_update(
        &self,
        action: StageAction,
        user: Option<Snowflake>,
        by: Snowflake,
    ) -> StageUpdated {
        let (mut participants, mut queue) = (Vec::new(), Vec::new());
        if let Some(voice) = &self.voice {
            for entry in voice.entries.values() {
                participants.push(self.member_view(entry));
                if let Some(at) = entry.hand_at {
                    queue.push(HandRaise {
                        user_id: entry.user_id,
                        at,
                    });
                }
            }
        }
        participants.sort_by_key(|p| p.user_id);
        queue.sort_by_key(|h| (h.at, h.user_id));
        StageUpdated {
            channel_id: self.room.id,
            action: action.as_str().to_owned(),
            user_id: user,
            by,
            participants,
            queue,
        }
    }

    /// Makes every session of `user` a speaker or a listener (speaker seats are limited).
    fn stage_set_role(&mut self, user: Snowflake, role: StageRole) -> Result<(), ActorError> {
        let limit = self.ctx.voice.stage_speakers;
        let Some(voice) = self.voice.as_mut() else {
            return Err(stage_error("nobody is on the stage"));
        };
        let speakers = voice
            .entries
            .values()
            .filter(|e| e.role != StageRole::Listener && e.user_id != user)
            .count();
        if role == StageRole::Speaker && speakers >= limit {
            return Err(ActorError::Client(ErrorBody::new(
                ErrorCode::RoomFull,
                "every speaker seat is taken",
            )));
        }
        let mut changed = Vec::new();
        for (session_id, entry) in voice.entries.iter_mut() {
            if entry.user_id == user && entry.role != StageRole::Host {
                entry.role = role;
                entry.hand_at = None;
                changed.push((*session_id, entry.rights()));
            }
        }
        if changed.is_empty() {
            return Err(stage_error(
                "that user is not on the stage as a speaker or listener",
            ));
        }
        let channel = voice.channel.clone();
        tokio::spawn(async move {
            for (session_id, rights) in changed {
                let _ = channel.set_rights(session_id, rights).await;
            }
        });
        Ok(())
    }

    /// Takes every session of `user` off the stage.
    fn stage_remove(&mut self, user: Snowflake, reason: &str) {
        let sessions: Vec<u64> = self
            .voice
            .as_ref()
            .map(|v| {
                v.entries
                    .iter()
                    .filter(|(_, e)| e.user_id == user)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default();
        for session_id in sessions {
            self.voice_remove(session_id, reason);
        }
    }

    /// Bans `user`: off the stage, out of the room, and kept out (stored with the room).
    async fn stage_ban(&mut self, user: Snowflake) -> Result<(), ActorError> {
        if self
            .members
            .get(&user)
            .is_some_and(|m| m.role == Role::Admin)
        {
            return Err(ActorError::Forbidden("a host cannot be banned"));
        }
        if !self.room.banned.contains(&user) {
            let mut room = self.room.clone();
            room.banned.push(user);
            room.updated_at = now_ms();
            self.ctx.store.update_room(&room).await?;
            self.room = room;
        }
        self.stage_remove(user, "banned");
        if self.members.contains_key(&user) {
            self.handle_remove_member(user, None).await?;
        }
        Ok(())
    }
}
