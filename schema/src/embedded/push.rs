//! `deployment_keys` (name → value) and `push_subscriptions` (user ‖ endpoint →
//! subscription), as in `schema/cql/013_push.cql`.

use std::ops::Bound;

use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, decode, encode, id_bytes, io};
use super::writer::{Reply, Staged};
use crate::push::{PushSubscriptionRecord, VapidKeyRecord};
use crate::store::StoreResult;

/// The key of the VAPID key pair in `deployment_keys`.
const VAPID: &[u8] = b"vapid";

/// Writes of this module.
#[derive(Debug, Clone)]
pub(crate) enum PushOp {
    /// `create_vapid_keys`: only if there is none (the writer is the only one, so checking
    /// then writing is atomic).
    CreateVapid(VapidKeyRecord),
    /// `put_push_subscription`.
    PutSubscription(PushSubscriptionRecord),
    /// `delete_push_subscription`: whether one was there.
    DeleteSubscription(Snowflake, String),
}

fn subscription_key(user: Snowflake, endpoint: &str) -> Vec<u8> {
    let mut key = id_bytes(user).to_vec();
    key.extend_from_slice(endpoint.as_bytes());
    key
}

/// Applies one op.
pub(crate) fn apply(s: &mut Staged<'_>, op: PushOp) -> StoreResult<Reply> {
    match op {
        PushOp::CreateVapid(keys) => {
            if s.get(Table::DeploymentKeys, VAPID)?.is_none() {
                s.put(Table::DeploymentKeys, VAPID.to_vec(), encode(&keys)?);
            }
        }
        PushOp::PutSubscription(sub) => {
            let key = subscription_key(sub.user_id, &sub.endpoint);
            s.put(Table::PushSubscriptions, key, encode(&sub)?);
        }
        PushOp::DeleteSubscription(user, endpoint) => {
            let key = subscription_key(user, &endpoint);
            let there = s.get(Table::PushSubscriptions, &key)?.is_some();
            if there {
                s.remove(Table::PushSubscriptions, key);
            }
            return Ok(Reply::Bool(there));
        }
    }
    Ok(Reply::Done)
}

impl Reader {
    /// `vapid_keys`.
    pub(crate) fn vapid_keys(&self) -> StoreResult<Option<VapidKeyRecord>> {
        match self
            .tables
            .get(Table::DeploymentKeys)
            .get(VAPID)
            .map_err(io)?
        {
            Some(raw) => Ok(Some(decode(&raw)?)),
            None => Ok(None),
        }
    }

    /// `push_subscriptions`: by endpoint.
    pub(crate) fn push_subscriptions(
        &self,
        user: Snowflake,
    ) -> StoreResult<Vec<PushSubscriptionRecord>> {
        let start = Bound::Included(id_bytes(user).to_vec());
        let end = match user.0.checked_add(1) {
            Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
            None => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::PushSubscriptions)
            .range::<Vec<u8>, _>((start, end))
        {
            out.push(decode(&guard.value().map_err(io)?)?);
        }
        Ok(out)
    }
}
