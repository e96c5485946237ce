//! The member name index in the embedded store (`community_member_names`: community ‖
//! lower-cased username ‖ 0 ‖ user → username), kept by the writer in the same op as the
//! membership or rename that moves it, and filled once for members stored before it existed.
//!
//! The 0 byte ends the name so that a shorter name sorts before a longer one it starts
//! (`ab` < `abc`), as the CQL clustering order has it; usernames never hold a 0.

use std::ops::Bound;

use fjall::Database;
use voiceflow_wire::Snowflake;

use super::read::Reader;
use super::tables::{Table, Tables, decode, id_bytes, io, trailing_id};
use super::writer::Staged;
use crate::member_names::{
    MemberName, NameCursor, NamePrefix, SearchStart, fold_name, search_start,
};
use crate::model::UserRecord;
use crate::store::{StoreError, StoreResult};

/// Meta key set once every member stored before the index existed is in it.
const META_NAMES_FILLED: &[u8] = b"community_member_names_filled";

/// Members indexed per write batch of the fill at open (bounds its memory).
const FILL_BATCH: usize = 10_000;

/// The index key of `user`, named `folded`, in `community`.
fn name_key(community: Snowflake, folded: &str, user: Snowflake) -> Vec<u8> {
    let mut key = Vec::with_capacity(17 + folded.len());
    key.extend_from_slice(&id_bytes(community));
    key.extend_from_slice(folded.as_bytes());
    key.push(0);
    key.extend_from_slice(&id_bytes(user));
    key
}

/// The folded name inside an index key.
fn key_name(key: &[u8]) -> StoreResult<&str> {
    let corrupt = || StoreError::Corrupt("member name key".into());
    let end = key.len().checked_sub(9).ok_or_else(corrupt)?;
    match (key.get(end), key.get(8..end)) {
        (Some(0), Some(name)) => std::str::from_utf8(name).map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// The user's current record through the staged view.
fn user(s: &Staged<'_>, user: Snowflake) -> StoreResult<Option<UserRecord>> {
    s.get(Table::Users, &id_bytes(user))?
        .map(|raw| decode(&raw))
        .transpose()
}

/// Puts `user`'s entry in `community`'s index (a user unknown to the store has no name to
/// index: such a member is listed by id only).
pub(crate) fn index(
    s: &mut Staged<'_>,
    community: Snowflake,
    member: Snowflake,
) -> StoreResult<()> {
    if let Some(u) = user(s, member)? {
        let key = name_key(community, &fold_name(&u.username), member);
        s.put(Table::CommunityMemberNames, key, u.username.into_bytes());
    }
    Ok(())
}

/// Takes `user`'s entry out of `community`'s index.
pub(crate) fn unindex(
    s: &mut Staged<'_>,
    community: Snowflake,
    member: Snowflake,
) -> StoreResult<()> {
    if let Some(u) = user(s, member)? {
        let key = name_key(community, &fold_name(&u.username), member);
        s.remove(Table::CommunityMemberNames, key);
    }
    Ok(())
}

/// Drops a deleted community's whole index.
pub(crate) fn drop_community(s: &mut Staged<'_>, community: Snowflake) -> StoreResult<()> {
    for key in s.keys_with_prefix(Table::CommunityMemberNames, &id_bytes(community))? {
        s.remove(Table::CommunityMemberNames, key);
    }
    Ok(())
}

/// Moves a renamed user's entries, in every community they are in, to the new name.
pub(crate) fn rename(s: &mut Staged<'_>, old: &UserRecord, new: &UserRecord) -> StoreResult<()> {
    if old.username == new.username {
        return Ok(());
    }
    let (old_name, new_name) = (fold_name(&old.username), fold_name(&new.username));
    for entry in s.keys_with_prefix(Table::UserCommunities, &id_bytes(new.id))? {
        let community = trailing_id(&entry)?;
        s.remove(
            Table::CommunityMemberNames,
            name_key(community, &old_name, new.id),
        );
        s.put(
            Table::CommunityMemberNames,
            name_key(community, &new_name, new.id),
            new.username.clone().into_bytes(),
        );
    }
    Ok(())
}

/// Fills the index from `community_members` once, at open, for data written before the index
/// existed; a store opened since has it set in every write. Synchronous, before the writer
/// starts, so nothing races it; a crash part-way leaves the marker unset and the next open
/// fills again (puts of the same entries).
pub(crate) fn fill_once(db: &Database, tables: &Tables) -> StoreResult<()> {
    let meta = tables.get(Table::Meta);
    if meta.get(META_NAMES_FILLED).map_err(io)?.is_some() {
        return Ok(());
    }
    let (members, users) = (
        tables.get(Table::CommunityMembers),
        tables.get(Table::Users),
    );
    let names = tables.get(Table::CommunityMemberNames);
    let mut batch = db.batch();
    let mut staged = 0usize;
    let mut filled = 0u64;
    for guard in members.iter() {
        let key = guard.key().map_err(io)?;
        let community = key
            .get(..8)
            .map(super::tables::decode_id)
            .transpose()?
            .ok_or_else(|| StoreError::Corrupt("community member key".into()))?;
        let member = trailing_id(&key)?;
        let Some(raw) = users.get(id_bytes(member)).map_err(io)? else {
            continue;
        };
        let u: UserRecord = decode(&raw)?;
        batch.insert(
            names,
            name_key(community, &fold_name(&u.username), member),
            u.username.into_bytes(),
        );
        staged += 1;
        filled += 1;
        if staged == FILL_BATCH {
            batch.commit().map_err(io)?;
            batch = db.batch();
            staged = 0;
        }
    }
    batch.insert(meta, META_NAMES_FILLED, vec![1]);
    batch = batch.durability(Some(fjall::PersistMode::SyncAll));
    batch.commit().map_err(io)?;
    if filled > 0 {
        tracing::info!(
            filled,
            "indexed community member names stored before the index"
        );
    }
    Ok(())
}

impl Reader {
    /// `community_members_by_name`: one range read from the prefix (or the cursor), stopped at
    /// the first name without the prefix or at `limit`.
    pub(crate) fn community_members_by_name(
        &self,
        community: Snowflake,
        prefix: &NamePrefix,
        after: Option<&NameCursor>,
        limit: u32,
    ) -> StoreResult<Vec<MemberName>> {
        let start = match search_start(prefix, after) {
            None => return Ok(Vec::new()),
            Some(SearchStart::From(name)) => {
                let mut key = id_bytes(community).to_vec();
                key.extend_from_slice(name.as_bytes());
                Bound::Included(key)
            }
            Some(SearchStart::After(c)) => Bound::Excluded(name_key(community, &c.name, c.user_id)),
        };
        let end = match community.0.checked_add(1) {
            Some(next) => Bound::Excluded(id_bytes(Snowflake(next)).to_vec()),
            None => Bound::Unbounded,
        };
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let mut out = Vec::new();
        for guard in self
            .tables
            .get(Table::CommunityMemberNames)
            .range::<Vec<u8>, _>((start, end))
        {
            if out.len() >= limit {
                break;
            }
            let (key, value) = guard.into_inner().map_err(io)?;
            if !prefix.matches(key_name(&key)?) {
                break;
            }
            let username = String::from_utf8(value.to_vec())
                .map_err(|_| StoreError::Corrupt("member name".into()))?;
            out.push(MemberName {
                community_id: community,
                user_id: trailing_id(&key)?,
                username,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::embedded::tables::pair_key;

    #[test]
    fn keys_order_by_name_then_user_and_parse_back() {
        let c = Snowflake(7);
        assert!(name_key(c, "ab", Snowflake(9)) < name_key(c, "abc", Snowflake(1)));
        assert!(name_key(c, "ab", Snowflake(1)) < name_key(c, "ab", Snowflake(2)));
        assert!(name_key(c, "zz", Snowflake(1)) < pair_key(Snowflake(8), Snowflake(0)));
        assert_eq!(
            key_name(&name_key(c, "ann", Snowflake(3))).ok(),
            Some("ann")
        );
        assert!(key_name(b"short").is_err());
    }

    /// Members stored before the index existed (no index entries, no marker) are indexed at
    /// the next open.
    #[tokio::test]
    async fn members_stored_before_the_index_are_filled_at_open() {
        use crate::Store;
        use crate::embedded::EmbeddedStore;
        let dir = tempfile::tempdir().expect("tempdir");
        let (c, u) = (Snowflake(11), Snowflake(12));
        {
            let store = EmbeddedStore::open(dir.path()).expect("open");
            let user = crate::fixtures::user(u.0, "Dana", "d@example.com");
            store.create_user(&user).await.expect("user");
            let member = crate::community::CommunityMember {
                community_id: c,
                user_id: u,
                roles: Vec::new(),
                timed_out_until: None,
                joined_at: 1,
                voice_muted: false,
                voice_deafened: false,
            };
            store.put_community_member(&member).await.expect("member");
        }
        {
            // What an older binary left: members, no index, no marker.
            let db = Database::builder(dir.path()).open().expect("raw open");
            let tables = Tables::open(&db).expect("tables");
            let mut batch = db.batch();
            batch.remove(tables.get(Table::Meta), META_NAMES_FILLED);
            for guard in tables.get(Table::CommunityMemberNames).iter() {
                batch.remove(
                    tables.get(Table::CommunityMemberNames),
                    guard.key().expect("key"),
                );
            }
            batch.commit().expect("clear");
        }
        let store = EmbeddedStore::open(dir.path()).expect("reopen");
        let found = store
            .community_members_by_name(c, &NamePrefix::new("da"), None, 10)
            .await
            .expect("search");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].username, "Dana");
    }
}
