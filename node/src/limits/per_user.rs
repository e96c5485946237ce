//! Per-user connection cap: how many WebSockets one user holds open on this node.
//!
//! A map of open counts keyed by user, changed only through [`ConnectionSlot`]s: a slot is
//! taken when a connection opens and given back when it is dropped (however the connection
//! ends), and a user whose count returns to zero leaves the map, so the map holds exactly the
//! users connected now.

use std::collections::HashMap;

use parking_lot::Mutex;
use voiceflow_actors::CloseReason;
use voiceflow_wire::Snowflake;

/// Close code of a connection over its user's `max_connections_per_user`.
pub const CLOSE_TOO_MANY_CONNECTIONS: u16 = 4030;

/// Open connections per user, at most `max` each.
pub struct UserConnections {
    max: u32,
    open: Mutex<HashMap<Snowflake, u32>>,
}

/// One open connection of a user; dropping it frees its place.
#[must_use = "the connection's place is freed when the slot is dropped"]
pub struct ConnectionSlot<'a> {
    owner: Option<(&'a UserConnections, Snowflake)>,
}

impl UserConnections {
    /// A cap of `max` connections per user.
    pub fn new(max: u32) -> Self {
        UserConnections {
            max: max.max(1),
            open: Mutex::default(),
        }
    }

    /// Takes a place for a new connection of `user`, or says why there is none.
    pub fn open(&self, user: Snowflake) -> Result<ConnectionSlot<'_>, CloseReason> {
        let mut open = self.open.lock();
        let count = open.entry(user).or_insert(0);
        if *count >= self.max {
            return Err(CloseReason {
                code: CLOSE_TOO_MANY_CONNECTIONS,
                reason: format!(
                    "too many connections: this user already has {} open (limit {})",
                    *count, self.max
                ),
            });
        }
        *count += 1;
        Ok(ConnectionSlot {
            owner: Some((self, user)),
        })
    }

    /// Users with at least one open connection.
    #[cfg(test)]
    pub fn users(&self) -> usize {
        self.open.lock().len()
    }
}

impl ConnectionSlot<'_> {
    /// A slot that counts nothing (no cap configured).
    pub fn unlimited() -> Self {
        ConnectionSlot { owner: None }
    }
}

impl Drop for ConnectionSlot<'_> {
    fn drop(&mut self) {
        let Some((owner, user)) = self.owner.take() else {
            return;
        };
        let mut open = owner.open.lock();
        if let Some(count) = open.get_mut(&user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_gets_max_places_and_each_closed_connection_frees_one() {
        let cap = UserConnections::new(2);
        let a = cap.open(Snowflake(1)).expect("first");
        let b = cap.open(Snowflake(1)).expect("second");
        let refused = cap.open(Snowflake(1)).err().expect("third refused");
        assert_eq!(refused.code, CLOSE_TOO_MANY_CONNECTIONS);
        assert!(refused.reason.contains("limit 2"), "{}", refused.reason);
        // Other users are not affected.
        let other = cap.open(Snowflake(2)).expect("another user");
        drop(a);
        let c = cap.open(Snowflake(1)).expect("a place was freed");
        drop((b, c, other));
        // Nobody connected: nothing is kept.
        assert_eq!(cap.users(), 0);
    }
}
