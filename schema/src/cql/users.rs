//! Users and the unique-claim protocol shared with join codes.
//!
//! A unique value (username, email, join code) is claimed in its index table with
//! `INSERT … IF NOT EXISTS` before the record is written, so two racing creators cannot both
//! win. A claim held by the same id is not a conflict (retried creates are idempotent). A
//! claim can outlive its purpose when a node dies between claiming and writing the record, or
//! between a rename and releasing the old value; such a claim, older than [`STALE_CLAIM_MS`]
//! and not matching its owner's record, is taken over with a compare-and-set on the stale
//! owner. Lookups through an index check that the record still holds the value.

use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{fold, from_cql_time, id, snowflake, to_cql_time};
use super::statements::UniqueIndex;
use crate::model::UserRecord;
use crate::store::{StoreError, StoreResult};

/// A claim older than this whose owner's record does not hold the value is left over.
pub(crate) const STALE_CLAIM_MS: i64 = 60_000;

/// A `users` row, in [`super::statements::USER_COLUMNS`] order.
type UserRow = (i64, String, String, String, Option<String>, CqlTimestamp);

/// Which unique index a claim is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unique {
    /// `users_by_username`.
    Username,
    /// `users_by_email`.
    Email,
    /// `rooms_by_code`.
    JoinCode,
}

impl Unique {
    /// The field named in `Conflict`.
    fn field(self) -> &'static str {
        match self {
            Unique::Username => "username",
            Unique::Email => "email",
            Unique::JoinCode => "join_code",
        }
    }

    /// The owner column of the index table.
    fn owner_column(self) -> &'static str {
        match self {
            Unique::Username | Unique::Email => "user_id",
            Unique::JoinCode => "room_id",
        }
    }
}

/// How a claim was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// Inserted (or taken over) now; release it if the operation is abandoned.
    New,
    /// Already held by this id.
    Held,
}

impl Cql {
    /// The statements of `index`.
    fn index(&self, index: Unique) -> &UniqueIndex {
        match index {
            Unique::Username => &self.st.usernames,
            Unique::Email => &self.st.emails,
            Unique::JoinCode => &self.st.codes,
        }
    }

    /// Claims `key` in `index` for `owner`; `Conflict{field}` if someone else holds it.
    pub(crate) async fn claim(
        &self,
        index: Unique,
        key: &str,
        owner: Snowflake,
    ) -> StoreResult<Claimed> {
        let st = self.index(index);
        let owner_raw = id(owner)?;
        let lwt = self
            .lwt("claim unique value", &st.claim, (key, owner_raw))
            .await?;
        if lwt.applied {
            return Ok(Claimed::New);
        }
        let conflict = StoreError::Conflict {
            field: index.field(),
        };
        let Some(holder) = lwt.existing_id(index.owner_column())? else {
            return Err(conflict);
        };
        if holder == owner {
            return Ok(Claimed::Held);
        }
        // Someone else holds it: a real owner, or a claim left over by a crash.
        let row: Option<(Option<i64>, Option<i64>)> =
            self.first("read unique claim", &st.get, (key,)).await?;
        let written_ms = row.and_then(|(_, micros)| micros).unwrap_or(i64::MAX) / 1000;
        let now_ms = to_cql_time(voiceflow_wire::ids::now_ms()).0;
        if now_ms.saturating_sub(written_ms) < STALE_CLAIM_MS
            || self.holds(index, holder, key).await?
        {
            return Err(conflict);
        }
        let take = self
            .lwt(
                "take over stale claim",
                &st.take_over,
                (owner_raw, key, id(holder)?),
            )
            .await?;
        if take.applied {
            tracing::warn!(field = index.field(), stale_owner = %holder, "took over a stale unique claim");
            Ok(Claimed::New)
        } else {
            Err(conflict)
        }
    }

    /// Whether `holder`'s record really holds `key` (so its claim is not stale).
    async fn holds(&self, index: Unique, holder: Snowflake, key: &str) -> StoreResult<bool> {
        Ok(match index {
            Unique::Username => self
                .user_by_id(holder)
                .await?
                .is_some_and(|u| fold(&u.username) == key),
            Unique::Email => self
                .user_by_id(holder)
                .await?
                .is_some_and(|u| fold(&u.email) == key),
            Unique::JoinCode => self
                .room_by_id(holder)
                .await?
                .is_some_and(|r| fold(&r.join_code) == key),
        })
    }

    /// Releases `owner`'s claim on `key` (a no-op if someone else holds it).
    pub(crate) async fn release(
        &self,
        index: Unique,
        key: &str,
        owner: Snowflake,
    ) -> StoreResult<()> {
        self.lwt(
            "release unique value",
            &self.index(index).release,
            (key, id(owner)?),
        )
        .await
        .map(|_| ())
    }

    /// Releases claims made by an operation that is being abandoned after a conflict; a
    /// failure is logged (a left-over claim becomes stale and is taken over later).
    async fn release_new(&self, claims: &[(Unique, &str, Claimed)], owner: Snowflake) {
        for (index, key, claimed) in claims {
            if *claimed == Claimed::New
                && let Err(e) = self.release(*index, key, owner).await
            {
                tracing::warn!(error = %e, field = index.field(), "could not release a claim");
            }
        }
    }

    /// `create_user`.
    pub(crate) async fn create_user(&self, user: &UserRecord) -> StoreResult<()> {
        let old = self.user_by_id(user.id).await?;
        self.put_user(user, old.as_ref()).await
    }

    /// `update_user`: unknown ids are a no-op, as in the embedded store.
    pub(crate) async fn update_user(&self, user: &UserRecord) -> StoreResult<()> {
        match self.user_by_id(user.id).await? {
            Some(old) => {
                self.put_user(user, Some(&old)).await?;
                self.rename_member_names(&old, user).await
            }
            None => Ok(()),
        }
    }

    /// Claims the username and email, writes the record, then releases values it moved from.
    async fn put_user(&self, user: &UserRecord, old: Option<&UserRecord>) -> StoreResult<()> {
        let name = fold(&user.username);
        let email = fold(&user.email);
        let name_claim = self.claim(Unique::Username, &name, user.id).await?;
        if let Err(e) = self.claim(Unique::Email, &email, user.id).await {
            // Only a definite conflict abandons the create; after a timeout the outcome is
            // unknown and the username claim stays (it turns stale if nothing follows).
            if matches!(e, StoreError::Conflict { .. }) {
                self.release_new(&[(Unique::Username, &name, name_claim)], user.id)
                    .await;
            }
            return Err(e);
        }
        let values = (
            id(user.id)?,
            user.username.clone(),
            user.email.clone(),
            user.password_hash.clone(),
            user.avatar_url.clone(),
            to_cql_time(user.created_at),
        );
        self.write("write user", &self.st.user_insert, values)
            .await?;
        if let Some(old) = old {
            let (old_name, old_email) = (fold(&old.username), fold(&old.email));
            if old_name != name {
                self.release(Unique::Username, &old_name, user.id).await?;
            }
            if old_email != email {
                self.release(Unique::Email, &old_email, user.id).await?;
            }
        }
        Ok(())
    }

    /// `user_by_id`.
    pub(crate) async fn user_by_id(&self, user_id: Snowflake) -> StoreResult<Option<UserRecord>> {
        let Ok(raw) = id(user_id) else {
            return Ok(None);
        };
        let row: Option<UserRow> = self.first("read user", &self.st.user_get, (raw,)).await?;
        row.map(
            |(id, username, email, password_hash, avatar_url, created_at)| {
                Ok(UserRecord {
                    id: snowflake(id)?,
                    username,
                    email,
                    password_hash,
                    avatar_url,
                    created_at: from_cql_time(created_at),
                })
            },
        )
        .transpose()
    }

    /// Follows a unique index to the user, checking the record still holds the value.
    async fn user_via(&self, index: Unique, value: &str) -> StoreResult<Option<UserRecord>> {
        let key = fold(value);
        let row: Option<(Option<i64>, Option<i64>)> = self
            .first("read unique index", &self.index(index).get, (key.as_str(),))
            .await?;
        let Some(owner) = row.and_then(|(owner, _)| owner) else {
            return Ok(None);
        };
        let user = self.user_by_id(snowflake(owner)?).await?;
        Ok(user.filter(|u| {
            let held = match index {
                Unique::Email => &u.email,
                _ => &u.username,
            };
            fold(held) == key
        }))
    }

    /// `user_by_email` (case-insensitive).
    pub(crate) async fn user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>> {
        self.user_via(Unique::Email, email).await
    }

    /// `user_by_username` (case-insensitive).
    pub(crate) async fn user_by_username(&self, name: &str) -> StoreResult<Option<UserRecord>> {
        self.user_via(Unique::Username, name).await
    }

    /// Follows `rooms_by_code` to the room id (the caller checks the room still holds it).
    pub(crate) async fn code_owner(&self, code: &str) -> StoreResult<Option<Snowflake>> {
        let row: Option<(Option<i64>, Option<i64>)> = self
            .first("read join code", &self.st.codes.get, (code,))
            .await?;
        row.and_then(|(owner, _)| owner).map(snowflake).transpose()
    }
}
