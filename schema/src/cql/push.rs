//! `deployment_keys` (the VAPID pair, created with `INSERT … IF NOT EXISTS`) and
//! `push_subscriptions` (one partition per user), migration 13.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::value::CqlValue;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::id;
use crate::push::{PushSubscriptionRecord, VapidKeyRecord};
use crate::store::{StoreError, StoreResult};

/// The row of the VAPID pair in `deployment_keys`.
const VAPID: &str = "vapid";

/// The statements of this module.
pub(crate) struct PushStatements {
    vapid_get: PreparedStatement,
    vapid_create: PreparedStatement,
    sub_put: PreparedStatement,
    sub_get: PreparedStatement,
    sub_delete: PreparedStatement,
    subs_of: PreparedStatement,
}

impl PushStatements {
    /// Prepares them.
    pub(crate) async fn prepare(session: &Session) -> StoreResult<PushStatements> {
        let p =
            |cql: &'static str, idempotent: bool| super::codec::prepare(session, cql, idempotent);
        Ok(PushStatements {
            vapid_get: p(
                "SELECT private_key, public_key, created_at FROM deployment_keys WHERE name = ?",
                true,
            )
            .await?,
            vapid_create: p(
                "INSERT INTO deployment_keys (name, private_key, public_key, created_at) \
                 VALUES (?, ?, ?, ?) IF NOT EXISTS",
                false,
            )
            .await?,
            sub_put: p(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth, created_at) \
                 VALUES (?, ?, ?, ?, ?)",
                true,
            )
            .await?,
            sub_get: p(
                "SELECT endpoint FROM push_subscriptions WHERE user_id = ? AND endpoint = ?",
                true,
            )
            .await?,
            sub_delete: p(
                "DELETE FROM push_subscriptions WHERE user_id = ? AND endpoint = ?",
                true,
            )
            .await?,
            subs_of: p(
                "SELECT endpoint, p256dh, auth, created_at FROM push_subscriptions \
                 WHERE user_id = ?",
                true,
            )
            .await?,
        })
    }
}

fn ms(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value}")))
}

fn to_bigint(value: u64) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("time {value} out of range")))
}

impl Cql {
    /// `vapid_keys`.
    pub(crate) async fn vapid_keys(&self) -> StoreResult<Option<VapidKeyRecord>> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = self
            .first("read VAPID keys", &self.push.vapid_get, (VAPID,))
            .await?;
        row.map(|(private_key, public_key, at)| {
            Ok(VapidKeyRecord {
                private_key,
                public_key,
                created_at: ms(at, "VAPID created_at")?,
            })
        })
        .transpose()
    }

    /// `create_vapid_keys`: the LWT either applies (ours is stored) or answers with the row
    /// another node stored first.
    pub(crate) async fn create_vapid_keys(
        &self,
        keys: &VapidKeyRecord,
    ) -> StoreResult<VapidKeyRecord> {
        let values = (
            VAPID,
            keys.private_key.as_slice(),
            keys.public_key.as_slice(),
            to_bigint(keys.created_at)?,
        );
        let lwt = self
            .lwt("create VAPID keys", &self.push.vapid_create, values)
            .await?;
        if lwt.applied {
            return Ok(keys.clone());
        }
        let column = |name: &str| lwt.existing.iter().find(|(n, _)| n == name);
        let blob = |name: &str| match column(name) {
            Some((_, Some(CqlValue::Blob(bytes)))) => Ok(bytes.clone()),
            other => Err(StoreError::Corrupt(format!(
                "deployment_keys.{name}: {other:?}"
            ))),
        };
        let created_at = match column("created_at") {
            Some((_, Some(CqlValue::BigInt(at)))) => ms(*at, "VAPID created_at")?,
            other => {
                return Err(StoreError::Corrupt(format!(
                    "deployment_keys.created_at: {other:?}"
                )));
            }
        };
        Ok(VapidKeyRecord {
            private_key: blob("private_key")?,
            public_key: blob("public_key")?,
            created_at,
        })
    }

    /// `put_push_subscription`.
    pub(crate) async fn put_push_subscription(
        &self,
        sub: &PushSubscriptionRecord,
    ) -> StoreResult<()> {
        let values = (
            id(sub.user_id)?,
            sub.endpoint.as_str(),
            sub.p256dh.as_slice(),
            sub.auth.as_slice(),
            to_bigint(sub.created_at)?,
        );
        self.write("register push device", &self.push.sub_put, values)
            .await
    }

    /// `delete_push_subscription`: read, then deleted (whether it was there is a hint for
    /// the caller; the delete itself is idempotent).
    pub(crate) async fn delete_push_subscription(
        &self,
        user_id: Snowflake,
        endpoint: &str,
    ) -> StoreResult<bool> {
        let Ok(user) = id(user_id) else {
            return Ok(false);
        };
        let found: Option<(String,)> = self
            .first("read push device", &self.push.sub_get, (user, endpoint))
            .await?;
        if found.is_none() {
            return Ok(false);
        }
        self.write(
            "forget push device",
            &self.push.sub_delete,
            (user, endpoint),
        )
        .await?;
        Ok(true)
    }

    /// `push_subscriptions`.
    pub(crate) async fn push_subscriptions(
        &self,
        user_id: Snowflake,
    ) -> StoreResult<Vec<PushSubscriptionRecord>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(String, Vec<u8>, Vec<u8>, i64)> = self
            .select_all("read push devices", &self.push.subs_of, (user,))
            .await?;
        rows.into_iter()
            .map(|(endpoint, p256dh, auth, at)| {
                Ok(PushSubscriptionRecord {
                    user_id,
                    endpoint,
                    p256dh,
                    auth,
                    created_at: ms(at, "push created_at")?,
                })
            })
            .collect()
    }
}
