//! The community shape: who is a member of which room, and which session joins which rooms.
//!
//! Real communities are not the friendly shapes of `connect` and `rooms` (a few users with
//! hundreds of sessions each, so that almost every join repeats a user the room already has
//! live). Here `users` people are each a member of `rooms_per_user` rooms and hold
//! `sessions_per_user` sessions (desktop, phone, a second tab); session s of a user joins
//! `joins_per_session` of the user's rooms, starting at its (s × joins_per_session)-th room,
//! so with `joins_per_session × sessions_per_user ≥ rooms_per_user` every membership is
//! joined at least once and most joins are the user's first session in that room.
//!
//! Room sizes: with `size_skew` 0 every room gets the same number of members (up to one
//! more); with `size_skew` s > 0 room r's share is proportional to 1/(r+1)^s, so a few rooms
//! are large and most are small, as in a community's channel list. Every size is clamped to
//! [1, min(users, 500)] (500 is the node's room size limit). The layout is a pure function of
//! its parameters: the same flags give the same rooms, members and joins.

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::stats::{fig, fig_f};
use crate::{Args, Ctx, rest};

/// The node refuses rooms of more than this many members.
pub const MAX_ROOM_SIZE: usize = 500;

/// Parameters of a community layout.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub users: usize,
    pub rooms: usize,
    pub rooms_per_user: usize,
    pub sessions_per_user: usize,
    pub joins_per_session: usize,
    pub size_skew: f64,
}

/// Who is where. Room and user numbers index the vectors of created rooms and users.
#[derive(Debug)]
pub struct Layout {
    /// Members of each room, the owner (creator) first.
    pub members: Vec<Vec<usize>>,
    /// Each session: its user and the rooms it joins. Sessions are ordered so that
    /// consecutive ones belong to different users (session k of every user, then k + 1).
    pub sessions: Vec<(usize, Vec<usize>)>,
}

impl Shape {
    pub fn validate(&self) -> Result<()> {
        if self.users == 0 || self.rooms == 0 {
            bail!("community: --users and --rooms must be at least 1");
        }
        if self.rooms_per_user == 0 || self.rooms_per_user > self.rooms {
            bail!("community: need 1 <= --rooms-per-user <= --rooms");
        }
        if self.sessions_per_user == 0 || self.joins_per_session == 0 {
            bail!("community: --sessions-per-user and --joins-per-session must be at least 1");
        }
        if self.joins_per_session > self.rooms_per_user {
            bail!("community: --joins-per-session cannot exceed --rooms-per-user");
        }
        if !(0.0..=4.0).contains(&self.size_skew) {
            bail!("community: --size-skew must be in [0, 4]");
        }
        let capacity = self.rooms * self.users.min(MAX_ROOM_SIZE);
        if self.users * self.rooms_per_user > capacity {
            bail!(
                "community: {} users x {} rooms each do not fit in {} rooms of at most {} members",
                self.users,
                self.rooms_per_user,
                self.rooms,
                self.users.min(MAX_ROOM_SIZE)
            );
        }
        Ok(())
    }

    /// Target size of every room: the memberships apportioned by weight, rooms over the size
    /// limit clamped to it and their excess shared among the others by weight (water
    /// filling), then rounded by largest remainder.
    fn room_sizes(&self) -> Vec<usize> {
        let cap = self.users.min(MAX_ROOM_SIZE);
        let total = self.users * self.rooms_per_user;
        let weights: Vec<f64> = (0..self.rooms)
            .map(|r| 1.0 / ((r + 1) as f64).powf(self.size_skew))
            .collect();
        let mut capped = vec![false; self.rooms];
        let mut exact = vec![0.0f64; self.rooms];
        loop {
            let full = capped.iter().filter(|&&c| c).count();
            let left = total.saturating_sub(full * cap) as f64;
            let sum: f64 = (0..self.rooms)
                .filter(|&r| !capped[r])
                .map(|r| weights[r])
                .sum();
            let mut changed = false;
            for r in 0..self.rooms {
                exact[r] = if capped[r] {
                    cap as f64
                } else {
                    weights[r] / sum * left
                };
                if !capped[r] && exact[r] > cap as f64 {
                    capped[r] = true;
                    changed = true;
                }
            }
            if !changed || full == self.rooms {
                break;
            }
        }
        let mut sizes: Vec<usize> = exact
            .iter()
            .map(|e| (e.floor() as usize).min(cap))
            .collect();
        let mut order: Vec<usize> = (0..self.rooms).collect();
        order.sort_by(|&a, &b| {
            let fa = exact[a] - exact[a].floor();
            let fb = exact[b] - exact[b].floor();
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        let mut left = total.saturating_sub(sizes.iter().sum::<usize>());
        // Hand out what rounding left over one at a time, in remainder order, skipping full
        // rooms.
        while left > 0 {
            let before = left;
            for &r in &order {
                if left == 0 {
                    break;
                }
                if sizes[r] < cap {
                    sizes[r] += 1;
                    left -= 1;
                }
            }
            if left == before {
                break; // everything full; validate() rules this out
            }
        }
        sizes
    }

    /// Builds the layout. Rooms are filled largest first from a cursor that walks the users
    /// in a circle, skipping users who already have `rooms_per_user` rooms, so members of a
    /// room are distinct and every user ends with (nearly always exactly) that many rooms.
    pub fn layout(&self) -> Layout {
        let sizes = self.room_sizes();
        let mut by_size: Vec<usize> = (0..self.rooms).collect();
        by_size.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); self.rooms];
        let mut rooms_of: Vec<Vec<usize>> = vec![Vec::new(); self.users];
        let mut cursor = 0usize;
        for &r in &by_size {
            let mut scanned = 0usize;
            while members[r].len() < sizes[r] && scanned < self.users {
                let u = cursor % self.users;
                cursor += 1;
                scanned += 1;
                if rooms_of[u].len() < self.rooms_per_user {
                    rooms_of[u].push(r);
                    members[r].push(u);
                }
            }
        }
        let mut sessions = Vec::with_capacity(self.users * self.sessions_per_user);
        for s in 0..self.sessions_per_user {
            for (u, mine) in rooms_of.iter().enumerate() {
                if mine.is_empty() {
                    sessions.push((u, Vec::new()));
                    continue;
                }
                let joins = self.joins_per_session.min(mine.len());
                let first = s * joins;
                let rooms = (0..joins).map(|j| mine[(first + j) % mine.len()]).collect();
                sessions.push((u, rooms));
            }
        }
        Layout { members, sessions }
    }
}

impl Layout {
    /// How many sessions join each room.
    pub fn joined_per_room(&self) -> Vec<usize> {
        let mut joined = vec![0usize; self.members.len()];
        for (_, rooms) in &self.sessions {
            for &r in rooms {
                joined[r] += 1;
            }
        }
        joined
    }

    /// Of all joins, in session order, the fraction that is the user's first session in
    /// that room (the expensive kind: the room learns of a newly online member).
    pub fn first_join_fraction(&self) -> f64 {
        let mut seen = std::collections::HashSet::new();
        let (mut first, mut all) = (0usize, 0usize);
        for (u, rooms) in &self.sessions {
            for &r in rooms {
                all += 1;
                if seen.insert((*u, r)) {
                    first += 1;
                }
            }
        }
        if all == 0 {
            0.0
        } else {
            first as f64 / all as f64
        }
    }

    /// (smallest, mean, largest) room size.
    pub fn size_range(&self) -> (usize, f64, usize) {
        let sizes = self.members.iter().map(Vec::len);
        let min = sizes.clone().min().unwrap_or(0);
        let max = sizes.clone().max().unwrap_or(0);
        let mean = sizes.sum::<usize>() as f64 / self.members.len().max(1) as f64;
        (min, mean, max)
    }
}

/// The flags' community shape; `default_rooms` is the scenario's default room count.
pub fn shape_from(args: &Args, default_rooms: usize) -> Shape {
    let rooms_per_user = args.rooms_per_user;
    let sessions_per_user = args.sessions_per_user.unwrap_or(50);
    Shape {
        users: args.users.unwrap_or(200),
        rooms: args.rooms.unwrap_or(default_rooms),
        rooms_per_user,
        sessions_per_user,
        joins_per_session: args
            .joins_per_session
            .unwrap_or(rooms_per_user.div_ceil(sessions_per_user.max(1))),
        size_skew: args.size_skew,
    }
}

/// A community set up on the node: users registered, rooms created and memberships added
/// through REST (never timed).
pub struct Community {
    pub layout: Layout,
    pub tokens: Vec<Arc<str>>,
    /// Room ids by room number; `None` for a room the layout left without members.
    pub room_ids: Vec<Option<String>>,
}

impl Community {
    /// Access token and room ids of session `i` (rooms without an id are left out).
    pub fn session_plan(&self, i: usize) -> (Arc<str>, Vec<String>) {
        let (user, rooms) = &self.layout.sessions[i];
        let ids = rooms
            .iter()
            .filter_map(|&r| self.room_ids[r].clone())
            .collect();
        (self.tokens[*user].clone(), ids)
    }
}

/// Validates `shape`, registers its users, creates its rooms (each by its first member) and
/// makes every other member join, then prints the shape's figures under `prefix`.
pub async fn setup(args: &Args, ctx: &Ctx, shape: Shape, prefix: &str) -> Result<Community> {
    shape.validate()?;
    let layout = shape.layout();
    let users = rest::register_many(
        &ctx.api,
        &ctx.run_id,
        shape.users,
        args.register_concurrency,
    )
    .await?;
    let tokens: Vec<Arc<str>> = users.into_iter().map(|u| u.token).collect();
    let populated: Vec<usize> = (0..shape.rooms)
        .filter(|&r| !layout.members[r].is_empty())
        .collect();
    let specs = populated
        .iter()
        .map(|&r| {
            let owner = tokens[layout.members[r][0]].clone();
            (owner, format!("{} {prefix} {r}", ctx.run_id), MAX_ROOM_SIZE)
        })
        .collect();
    let created = rest::create_rooms(&ctx.api, specs, args.rest_concurrency).await?;
    let mut room_ids = vec![None; shape.rooms];
    let mut joins = Vec::new();
    for (&r, room) in populated.iter().zip(&created) {
        room_ids[r] = Some(room.id.clone());
        for &u in &layout.members[r][1..] {
            joins.push((tokens[u].clone(), room.join_code.clone()));
        }
    }
    rest::join_many(&ctx.api, joins, args.rest_concurrency).await?;

    let (min, mean, max) = layout.size_range();
    fig(&format!("{prefix}.shape.users"), shape.users, "users");
    fig(&format!("{prefix}.shape.rooms"), populated.len(), "rooms");
    fig(
        &format!("{prefix}.shape.rooms_per_user"),
        shape.rooms_per_user,
        "rooms",
    );
    fig(
        &format!("{prefix}.shape.sessions_per_user"),
        shape.sessions_per_user,
        "sessions",
    );
    fig(
        &format!("{prefix}.shape.joins_per_session"),
        shape.joins_per_session,
        "rooms",
    );
    fig(&format!("{prefix}.shape.room_size_min"), min, "users");
    fig_f(&format!("{prefix}.shape.room_size_mean"), mean, "users");
    fig(&format!("{prefix}.shape.room_size_max"), max, "users");
    fig_f(
        &format!("{prefix}.shape.first_join_fraction"),
        layout.first_join_fraction(),
        "",
    );
    Ok(Community {
        layout,
        tokens,
        room_ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(users: usize, rooms: usize, m: usize, s: usize, j: usize, skew: f64) -> Shape {
        Shape {
            users,
            rooms,
            rooms_per_user: m,
            sessions_per_user: s,
            joins_per_session: j,
            size_skew: skew,
        }
    }

    #[test]
    fn the_issue_shape_gives_100_rooms_of_100_and_only_first_joins() {
        let l = shape(200, 100, 50, 50, 1, 0.0).layout();
        assert!(l.members.iter().all(|m| m.len() == 100));
        let mut per_user = vec![0usize; 200];
        l.members.iter().flatten().for_each(|&u| per_user[u] += 1);
        assert!(per_user.iter().all(|&n| n == 50));
        assert_eq!(l.sessions.len(), 10_000);
        assert!((l.first_join_fraction() - 1.0).abs() < 1e-9);
        assert!(l.joined_per_room().iter().all(|&n| n == 100));
    }

    #[test]
    fn members_are_distinct_and_sessions_join_only_their_rooms() {
        let l = shape(2_000, 300, 20, 5, 4, 1.0).layout();
        for (r, m) in l.members.iter().enumerate() {
            let mut sorted = m.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), m.len(), "room {r} has a duplicate member");
        }
        for (u, rooms) in &l.sessions {
            for r in rooms {
                assert!(
                    l.members[*r].contains(u),
                    "user {u} joins room {r} without membership"
                );
            }
        }
        let memberships: usize = l.members.iter().map(Vec::len).sum();
        assert_eq!(memberships, 2_000 * 20);
    }

    #[test]
    fn skew_makes_sizes_range_from_small_to_the_limit() {
        let l = shape(2_000, 200, 10, 5, 2, 1.2).layout();
        let (min, _, max) = l.size_range();
        assert!(max == MAX_ROOM_SIZE, "largest {max}");
        assert!(min <= 20, "smallest {min}");
    }

    #[test]
    fn the_same_parameters_give_the_same_layout() {
        let a = shape(500, 80, 12, 3, 4, 0.8).layout();
        let b = shape(500, 80, 12, 3, 4, 0.8).layout();
        assert_eq!(a.members, b.members);
        assert_eq!(a.sessions, b.sessions);
    }

    #[test]
    fn shapes_that_cannot_fit_are_refused() {
        assert!(shape(10, 5, 6, 1, 1, 0.0).validate().is_err());
        assert!(shape(1_000, 2, 2, 1, 1, 0.0).validate().is_err()); // 2 x 1000 > 2 x 500
        assert!(shape(10, 5, 2, 1, 3, 0.0).validate().is_err());
        assert!(shape(200, 100, 50, 50, 1, 0.0).validate().is_ok());
    }
}
