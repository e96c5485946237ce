//! The sessions subscribed to a room, with how many each user has.
//!
//! "Is this user online here?" is asked for every member of a member list and on every join
//! and leave; answering it by scanning the sessions made a join O(members × sessions), which
//! a community's join storm (every member's first session in turn) turns quadratic. The
//! per-user count answers it in O(1) and gives the room's online count for free.

use std::collections::HashMap;
use std::collections::hash_map;

use voiceflow_wire::Snowflake;

use crate::room::SessionLink;

/// Live sessions by session id, and the number of them per user.
#[derive(Default)]
pub struct LiveSessions {
    sessions: HashMap<u64, SessionLink>,
    per_user: HashMap<Snowflake, u32>,
}

impl LiveSessions {
    /// Adds (or replaces) a session. Returns whether its user had no session here before.
    pub fn insert(&mut self, session: SessionLink) -> bool {
        let user = session.user_id;
        let first = !self.has_user(user);
        if let Some(old) = self.sessions.insert(session.session_id, session) {
            self.forget_user_session(old.user_id);
        }
        *self.per_user.entry(user).or_insert(0) += 1;
        first
    }

    /// Removes a session; the second value says whether its user has no session left here.
    pub fn remove(&mut self, session_id: u64) -> Option<(SessionLink, bool)> {
        let session = self.sessions.remove(&session_id)?;
        let last = self.forget_user_session(session.user_id);
        Some((session, last))
    }

    fn forget_user_session(&mut self, user: Snowflake) -> bool {
        match self.per_user.get_mut(&user) {
            Some(count) if *count > 1 => {
                *count -= 1;
                false
            }
            Some(_) => {
                self.per_user.remove(&user);
                true
            }
            None => true,
        }
    }

    /// Removes every session.
    pub fn drain(&mut self) -> impl Iterator<Item = SessionLink> + '_ {
        self.per_user.clear();
        self.sessions.drain().map(|(_, s)| s)
    }

    /// Whether `user` has a session here.
    pub fn has_user(&self, user: Snowflake) -> bool {
        self.per_user.contains_key(&user)
    }

    /// Users with at least one session here.
    pub fn users(&self) -> usize {
        self.per_user.len()
    }

    /// The session ids of `user`.
    pub fn sessions_of(&self, user: Snowflake) -> Vec<u64> {
        if !self.has_user(user) {
            return Vec::new();
        }
        self.sessions
            .values()
            .filter(|s| s.user_id == user)
            .map(|s| s.session_id)
            .collect()
    }

    pub fn get(&self, session_id: &u64) -> Option<&SessionLink> {
        self.sessions.get(session_id)
    }

    pub fn contains_key(&self, session_id: &u64) -> bool {
        self.sessions.contains_key(session_id)
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn values(&self) -> hash_map::Values<'_, u64, SessionLink> {
        self.sessions.values()
    }

    pub fn iter(&self) -> hash_map::Iter<'_, u64, SessionLink> {
        self.sessions.iter()
    }

    /// Sets the username of every session of `user` (a rename); user ids never change.
    pub fn rename(&mut self, user: Snowflake, username: &str) {
        if !self.has_user(user) {
            return;
        }
        for session in self.sessions.values_mut().filter(|s| s.user_id == user) {
            session.username = username.to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outbox;
    use crate::remote::Recipient;

    fn link(session_id: u64, user: u64) -> SessionLink {
        SessionLink {
            session_id,
            user_id: Snowflake(user),
            username: format!("u{user}"),
            to: Recipient::Local(Outbox::new(4)),
        }
    }

    #[test]
    fn counts_each_users_sessions() {
        let mut live = LiveSessions::default();
        assert!(live.insert(link(1, 7)), "first session of user 7");
        assert!(!live.insert(link(2, 7)), "second session of user 7");
        assert!(live.insert(link(3, 8)));
        assert_eq!((live.len(), live.users()), (3, 2));
        assert!(live.has_user(Snowflake(7)));
        let mut of7 = live.sessions_of(Snowflake(7));
        of7.sort_unstable();
        assert_eq!(of7, vec![1, 2]);
        assert!(
            !live.remove(1).expect("present").1,
            "user 7 still has session 2"
        );
        assert!(live.remove(2).expect("present").1, "user 7's last session");
        assert!(!live.has_user(Snowflake(7)));
        assert!(live.remove(2).is_none(), "removing twice is harmless");
        assert_eq!((live.len(), live.users()), (1, 1));
    }

    #[test]
    fn replacing_a_session_keeps_the_counts_right() {
        let mut live = LiveSessions::default();
        live.insert(link(1, 7));
        // The same session id again (a re-sent join) or, defensively, for another user.
        assert!(!live.insert(link(1, 7)));
        assert_eq!(live.users(), 1);
        assert!(live.insert(link(1, 9)));
        assert!(!live.has_user(Snowflake(7)));
        assert_eq!((live.len(), live.users()), (1, 1));
        assert_eq!(live.drain().count(), 1);
        assert_eq!((live.len(), live.users()), (0, 0));
    }
}
