//! `GET /communities/:id/members`: the member list, paged by user id, or searched by the
//! start of the username (`?prefix=`), paged by name. The search reads the store's name index
//! (`community_member_names`): one range read of at most a page, whatever the community's
//! size, so the web client can load a 100,000-member list lazily and search it as one types.

use serde::{Deserialize, Serialize};
use voiceflow_schema::{CommunityMember, MemberName, NameCursor, NamePrefix, member_names};
use voiceflow_wire::Snowflake;
use warp::reply::Response;

use super::communities::{page_reply_with, seen, usernames};
use super::validate;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::AppState;

/// Most members one page lists.
const MAX_PAGE: u32 = 1000;

/// A member as the member list shows them.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MemberView {
    user_id: Snowflake,
    /// Their current name (`null` if the account is gone).
    username: Option<String>,
    roles: Vec<Snowflake>,
    timed_out_until: Option<String>,
    joined_at: String,
    voice_muted: bool,
    voice_deafened: bool,
}

impl MemberView {
    fn new(m: CommunityMember, username: Option<String>) -> MemberView {
        MemberView {
            user_id: m.user_id,
            username,
            roles: m.roles,
            timed_out_until: m.timed_out_until.map(voiceflow_wire::time::rfc3339),
            joined_at: voiceflow_wire::time::rfc3339(m.joined_at),
            voice_muted: m.voice_muted,
            voice_deafened: m.voice_deafened,
        }
    }
}

/// The query as sent.
#[derive(Deserialize)]
pub(super) struct MembersQuery {
    after: Option<String>,
    limit: Option<u32>,
    prefix: Option<String>,
}

/// Which list a query asks for, parsed.
#[derive(Debug, PartialEq)]
enum Listing {
    /// By user id, after this one.
    ById(Option<Snowflake>),
    /// By lower-cased username then user id, starting with the prefix, after the cursor.
    ByName(NamePrefix, Option<NameCursor>),
}

impl Listing {
    fn parse(prefix: Option<&str>, after: Option<&str>) -> Result<Listing, ApiError> {
        match prefix {
            None => after
                .map(|a| a.parse::<u64>().map(Snowflake))
                .transpose()
                .map(Listing::ById)
                .map_err(|_| ApiError::field("after", "after must be a user id")),
            Some(prefix) => after
                .map(str::parse::<NameCursor>)
                .transpose()
                .map(|cursor| Listing::ByName(NamePrefix::new(prefix), cursor))
                .map_err(|e| ApiError::field("after", e.to_string())),
        }
    }
}

/// `GET /communities/:id/members?after&limit&prefix` (members only).
pub(super) async fn members(
    s: AppState,
    user: AuthUser,
    id: Snowflake,
    q: MembersQuery,
) -> Result<Response, ApiError> {
    seen(&s, &user, id).await?;
    let limit = validate::page_limit(q.limit, 100, MAX_PAGE)?;
    match Listing::parse(q.prefix.as_deref(), q.after.as_deref())? {
        Listing::ById(after) => by_id(&s, id, after, limit).await,
        Listing::ByName(prefix, after) => by_name(&s, id, &prefix, after, limit).await,
    }
}

async fn by_id(
    s: &AppState,
    id: Snowflake,
    after: Option<Snowflake>,
    limit: u32,
) -> Result<Response, ApiError> {
    let page = s.ctx.store.community_members(id, after, limit).await?;
    let has_more = u32::try_from(page.len()).is_ok_and(|n| n == limit);
    let names = usernames(s, page.iter().map(|m| m.user_id)).await?;
    let views: Vec<MemberView> = page
        .into_iter()
        .zip(names)
        .map(|(m, username)| MemberView::new(m, username))
        .collect();
    page_reply_with(&views, has_more, None)
}

/// A page of the name index, with each member's record and current name read concurrently
/// (a page waits one round trip). An entry whose member is gone or whose name is no longer
/// the member's (a rename that raced a join on CQL left it) is skipped; `nextAfter` is the
/// index position of the page's last entry either way, so paging never stalls.
async fn by_name(
    s: &AppState,
    id: Snowflake,
    prefix: &NamePrefix,
    after: Option<NameCursor>,
    limit: u32,
) -> Result<Response, ApiError> {
    let store = &s.ctx.store;
    let page = store
        .community_members_by_name(id, prefix, after.as_ref(), limit)
        .await?;
    let has_more = u32::try_from(page.len()).is_ok_and(|n| n == limit);
    let next = page.last().map(MemberName::cursor);
    let reads = page.iter().map(|entry| async move {
        Ok::<_, ApiError>(store.community_member(id, entry.user_id).await?)
    });
    let members = futures_util::future::try_join_all(reads).await?;
    let names = usernames(s, page.iter().map(|e| e.user_id)).await?;
    let views: Vec<MemberView> = page
        .into_iter()
        .zip(members.into_iter().zip(names))
        .filter_map(|(entry, (member, name))| {
            let current = name.as_deref().is_some_and(|n| {
                member_names::fold_name(n) == member_names::fold_name(&entry.username)
            });
            match (member, current) {
                (Some(m), true) => Some(MemberView::new(m, name)),
                (Some(_) | None, _) => None,
            }
        })
        .collect();
    let next = next.filter(|_| has_more).map(|c| c.to_string());
    page_reply_with(&views, has_more, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_a_listing_by_id_or_by_name() {
        assert_eq!(Listing::parse(None, None).ok(), Some(Listing::ById(None)));
        assert_eq!(
            Listing::parse(None, Some("42")).ok(),
            Some(Listing::ById(Some(Snowflake(42))))
        );
        assert!(Listing::parse(None, Some("42:bob")).is_err());
        assert_eq!(
            Listing::parse(Some("Bo"), Some("42:bob")).ok(),
            Some(Listing::ByName(
                NamePrefix::new("bo"),
                Some(NameCursor {
                    name: "bob".into(),
                    user_id: Snowflake(42)
                })
            ))
        );
        assert!(Listing::parse(Some("bo"), Some("42")).is_err());
    }
}
