//! Who is typing in the room: `typing:start` and `typing:stop`, expired by a timer per user
//! (a generation, so a restart voids the older timer).

use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::frame;
use voiceflow_wire::v1::server::{TypingEvent, events};

use super::RoomState;

impl RoomState {
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

    pub(super) fn stop_typing(&mut self, user: Snowflake) {
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
}
