//! Token buckets of the REST write endpoints (`[limits]`), and the per-user cap on uploads in
//! progress (`[files] max_concurrent_per_user`).
//!
//! | endpoint                          | bucket                              | keyed by      |
//! |-----------------------------------|-------------------------------------|---------------|
//! | `POST /auth/refresh`              | `refreshes_per_min`                 | client IP     |
//! | `POST /rooms`, `POST /communities` | `room_creates_per_min`             | user          |
//! | `POST /files`                     | `uploads_per_min`                   | user          |
//! | `POST /dms`                       | `dm_opens_per_min`                  | user          |
//! | `PATCH /users/me`                 | `profile_edits_per_min`             | user          |
//! | `POST /rooms/:code/join`, `POST /invites/:code/join` | `joins_per_min` | client IP and user |
//!
//! Each is a GCRA bucket of `n` per minute with a burst of `n`; over it a request gets 429
//! RATE_LIMITED with `retryAfterMs` and `Retry-After`, and nothing else happens. The keyed
//! maps forget keys whose bucket is full again every few thousand checks, so a flood of
//! addresses or users cannot grow them without bound.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use governor::Quota;
use parking_lot::Mutex;
use voiceflow_wire::Snowflake;

use crate::config::Config;
use crate::limits::{Keyed, RateLimited, client_ip, nonzero};

/// A per-user REST bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserBucket {
    /// `POST /rooms`.
    RoomCreate,
    /// `POST /files`.
    Upload,
    /// `POST /dms`.
    DmOpen,
    /// `PATCH /users/me`.
    ProfileEdit,
}

impl UserBucket {
    /// What the bucket limits, for the error message and the metric label.
    pub fn what(self) -> &'static str {
        match self {
            UserBucket::RoomCreate => "rooms created",
            UserBucket::Upload => "uploads",
            UserBucket::DmOpen => "conversations opened",
            UserBucket::ProfileEdit => "profile edits",
        }
    }

    fn label(self) -> &'static str {
        match self {
            UserBucket::RoomCreate => "room_create",
            UserBucket::Upload => "upload",
            UserBucket::DmOpen => "dm_open",
            UserBucket::ProfileEdit => "profile_edit",
        }
    }
}

/// The REST buckets and the upload slots of a node.
pub struct RestLimits {
    refreshes: Option<Keyed<IpAddr>>,
    room_creates: Option<Keyed<Snowflake>>,
    uploads: Option<Keyed<Snowflake>>,
    dm_opens: Option<Keyed<Snowflake>>,
    profile_edits: Option<Keyed<Snowflake>>,
    joins_by_ip: Option<Keyed<IpAddr>>,
    joins_by_user: Option<Keyed<Snowflake>>,
    trusted_proxies: Vec<IpAddr>,
    /// How long a REST JSON body may take to arrive.
    pub body_timeout: Duration,
    uploads_in_progress: Arc<UploadSlots>,
}

fn counted<T>(result: Result<T, RateLimited>, label: &'static str) -> Result<T, RateLimited> {
    if result.is_err() {
        metrics::counter!("voiceflow_rate_limited_total", "limit" => label).increment(1);
    }
    result
}

impl RestLimits {
    /// The buckets of `config.limits` and the upload cap of `config.files`.
    pub fn new(config: &Config) -> RestLimits {
        let l = &config.limits;
        let per_min = |n: u32| -> Option<Quota> {
            let n = n.max(1);
            Quota::with_period(Duration::from_secs(60) / n)
                .map(|q| q.allow_burst(nonzero(n)))
                .filter(|_| l.rate_limits)
        };
        RestLimits {
            refreshes: per_min(l.refreshes_per_min).map(Keyed::new),
            room_creates: per_min(l.room_creates_per_min).map(Keyed::new),
            uploads: per_min(l.uploads_per_min).map(Keyed::new),
            dm_opens: per_min(l.dm_opens_per_min).map(Keyed::new),
            profile_edits: per_min(l.profile_edits_per_min).map(Keyed::new),
            joins_by_ip: per_min(l.joins_per_min).map(Keyed::new),
            joins_by_user: per_min(l.joins_per_min).map(Keyed::new),
            trusted_proxies: l.trusted_proxies.clone(),
            body_timeout: Duration::from_secs(l.rest_body_timeout_secs.max(1)),
            uploads_in_progress: Arc::new(UploadSlots {
                max: config.files.max_concurrent_per_user.max(1),
                users: Mutex::default(),
            }),
        }
    }

    fn ip(&self, peer: Option<SocketAddr>, forwarded: Option<&str>) -> IpAddr {
        let peer = peer.map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip());
        client_ip(peer, forwarded, &self.trusted_proxies)
    }

    /// Takes one request of `user` from `bucket`.
    pub fn user(&self, bucket: UserBucket, user: Snowflake) -> Result<(), RateLimited> {
        let keyed = match bucket {
            UserBucket::RoomCreate => &self.room_creates,
            UserBucket::Upload => &self.uploads,
            UserBucket::DmOpen => &self.dm_opens,
            UserBucket::ProfileEdit => &self.profile_edits,
        };
        counted(
            keyed.as_ref().map_or(Ok(()), |k| k.check(&user)),
            bucket.label(),
        )
    }

    /// Takes a refresh from the bucket of the client's address (`forwarded`: the request's
    /// `X-Forwarded-For`, believed from trusted proxies only).
    pub fn refresh(
        &self,
        peer: Option<SocketAddr>,
        forwarded: Option<&str>,
    ) -> Result<(), RateLimited> {
        let ip = self.ip(peer, forwarded);
        counted(
            self.refreshes.as_ref().map_or(Ok(()), |k| k.check(&ip)),
            "refresh",
        )
    }

    /// Takes a join-by-code attempt from the client address's bucket and the user's.
    pub fn join(
        &self,
        user: Snowflake,
        peer: Option<SocketAddr>,
        forwarded: Option<&str>,
    ) -> Result<(), RateLimited> {
        let ip = self.ip(peer, forwarded);
        let by_ip = self.joins_by_ip.as_ref().map_or(Ok(()), |k| k.check(&ip));
        let by_user = self
            .joins_by_user
            .as_ref()
            .map_or(Ok(()), |k| k.check(&user));
        counted(by_ip.and(by_user), "join")
    }

    /// One of `user`'s upload slots, held until the returned guard is dropped; RATE_LIMITED
    /// when they have `max_concurrent_per_user` uploads in progress already.
    pub fn upload_slot(&self, user: Snowflake) -> Result<UploadSlot, RateLimited> {
        counted(self.uploads_in_progress.take(user), "concurrent_uploads")
    }

    /// Users with an upload in progress (the slot map's size; it never keeps idle users).
    #[cfg(test)]
    fn uploading_users(&self) -> usize {
        self.uploads_in_progress.users.lock().len()
    }
}

/// What is suggested to a user at the upload cap: try again in a second.
const SLOT_RETRY: Duration = Duration::from_secs(1);

/// Uploads in progress per user.
struct UploadSlots {
    max: u32,
    users: Mutex<HashMap<Snowflake, UserUploads>>,
}

struct UserUploads {
    active: u32,
    /// Held while an upload of the user checks their quota and stores its file, so that two
    /// of their uploads cannot both fit the quota's last bytes.
    commit: Arc<tokio::sync::Mutex<()>>,
}

impl UploadSlots {
    fn take(self: &Arc<Self>, user: Snowflake) -> Result<UploadSlot, RateLimited> {
        let mut users = self.users.lock();
        let entry = users.entry(user).or_insert_with(|| UserUploads {
            active: 0,
            commit: Arc::default(),
        });
        if entry.active >= self.max {
            return Err(RateLimited {
                retry_after: SLOT_RETRY,
            });
        }
        entry.active += 1;
        Ok(UploadSlot {
            slots: self.clone(),
            user,
            commit: entry.commit.clone(),
        })
    }
}

/// An upload in progress; frees its slot when dropped.
pub struct UploadSlot {
    slots: Arc<UploadSlots>,
    user: Snowflake,
    commit: Arc<tokio::sync::Mutex<()>>,
}

impl UploadSlot {
    /// Serialises the quota check and the store write of the user's uploads.
    pub async fn commit_lock(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.commit.lock().await
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut users = self.slots.users.lock();
        if let Some(entry) = users.get_mut(&self.user) {
            entry.active = entry.active.saturating_sub(1);
            if entry.active == 0 {
                users.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(extra: &str) -> RestLimits {
        RestLimits::new(&Config::from_toml(extra).expect("config"))
    }

    #[test]
    fn each_user_bucket_is_separate_and_per_user() {
        let l = limits("[limits]\nroom_creates_per_min = 2\nuploads_per_min = 1\n");
        let (a, b) = (Snowflake(1), Snowflake(2));
        l.user(UserBucket::RoomCreate, a).expect("1st");
        l.user(UserBucket::RoomCreate, a).expect("2nd");
        let limited = l.user(UserBucket::RoomCreate, a).expect_err("3rd");
        assert!(limited.retry_after > Duration::ZERO);
        l.user(UserBucket::RoomCreate, b).expect("another user");
        l.user(UserBucket::Upload, a).expect("another bucket");
        l.user(UserBucket::Upload, a).expect_err("uploads");
    }

    #[test]
    fn joins_count_per_address_and_per_user() {
        let l = limits("[limits]\njoins_per_min = 2\n");
        let here: SocketAddr = "10.0.0.1:5000".parse().expect("addr");
        let there: SocketAddr = "10.0.0.2:5000".parse().expect("addr");
        l.join(Snowflake(1), Some(here), None).expect("1");
        l.join(Snowflake(2), Some(here), None).expect("2");
        // A third user from the same address is refused; the first user elsewhere too.
        l.join(Snowflake(3), Some(here), None).expect_err("address");
        l.join(Snowflake(1), Some(there), None)
            .expect("1 elsewhere");
        l.join(Snowflake(1), Some(there), None).expect_err("user");
    }

    #[test]
    fn upload_slots_are_capped_and_freed() {
        let l = limits("[files]\nmax_concurrent_per_user = 2\n");
        let one = l.upload_slot(Snowflake(1)).expect("1");
        let two = l.upload_slot(Snowflake(1)).expect("2");
        assert!(l.upload_slot(Snowflake(1)).is_err());
        let other = l.upload_slot(Snowflake(2)).expect("another user");
        drop(one);
        let three = l.upload_slot(Snowflake(1)).expect("a freed slot");
        drop((two, three, other));
        assert_eq!(l.uploading_users(), 0, "no entry outlives its uploads");
    }

    #[test]
    fn off_means_off() {
        let l = limits("[limits]\nrate_limits = false\n");
        for _ in 0..500 {
            l.user(UserBucket::RoomCreate, Snowflake(1)).expect("off");
            l.refresh(None, None).expect("off");
            l.join(Snowflake(1), None, None).expect("off");
        }
    }
}
