//! `GET /api/v1/search`: messages of the rooms the caller may read, from the indexes of the
//! nodes that own those rooms.
//!
//! The rooms are decided here, on the node the caller reached, with the same checks as
//! history (`messages::may_read`): rooms they are a member of, and the community channels
//! they may view. Only those room ids go to an index, so a room they cannot read never
//! yields a result. Each owner searches its part (this node its own index, other nodes over
//! the cluster link, at most `[search] peer_timeout_ms`); the parts are merged in the
//! query's order. Rooms whose owner did not answer are listed in `unavailableRooms` and the
//! answer says `partial: true`.

use std::collections::HashMap;

use futures_util::{StreamExt, stream};
use voiceflow_actors::cluster::Owner;
use voiceflow_schema::RoomRecord;
use voiceflow_wire::Snowflake;
use voiceflow_wire::cluster::NodeId;
use voiceflow_wire::v1::search::{
    Has, IndexQuery, ParsedQuery, RoomScope, SearchHit, SearchResultView, SearchSort,
};
use warp::reply::Response;
use warp::{Filter, Rejection};

use super::messages::may_read;
use super::{authed, with_state};
use crate::auth::AuthUser;
use crate::error::{ApiError, ok_page, respond};
use crate::state::AppState;

/// Results when `limit` is not given.
const DEFAULT_LIMIT: u32 = 25;
/// Rooms whose readability is checked at once.
const CHECKS_IN_FLIGHT: usize = 16;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Params {
    #[serde(default)]
    q: String,
    room_id: Option<String>,
    author_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
    has: Option<String>,
    limit: Option<u32>,
    sort: Option<String>,
}

/// The routes of this module.
pub fn routes(state: AppState) -> impl Filter<Extract = (Response,), Error = Rejection> + Clone {
    warp::path!("search")
        .and(warp::get())
        .and(with_state(state.clone()))
        .and(authed(state))
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .then(
            |s: AppState, u: AuthUser, raw: String| async move { respond(search(s, u, raw).await) },
        )
}

/// The request, parsed: the query with the URL's filters folded in.
struct Request {
    query: ParsedQuery,
    author: Option<Snowflake>,
    sort: SearchSort,
    limit: u32,
}

fn parse_request(s: &AppState, raw: &str) -> Result<Request, ApiError> {
    let p: Params = serde_urlencoded::from_str(raw)
        .map_err(|e| ApiError::field("query", format!("bad search parameters: {e}")))?;
    let limits = s.config.search.query_limits();
    let filters_only = p.q.trim().is_empty();
    let mut query = match filters_only {
        true => ParsedQuery::default(),
        false => ParsedQuery::parse(&p.q, limits).map_err(|e| ApiError(e.to_body()))?,
    };
    let id = |field: &str, text: &Option<String>| -> Result<Option<Snowflake>, ApiError> {
        text.as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| Snowflake::parse(t).ok_or_else(|| ApiError::field(field, "not an id")))
            .transpose()
    };
    if let Some(room) = id("roomId", &p.room_id)? {
        if query.in_room.is_some() {
            return Err(ApiError::field("roomId", "give roomId or in:, not both"));
        }
        query.in_room = Some(RoomScope::Id(room));
    }
    let author = id("authorId", &p.author_id)?;
    for (field, text, slot) in [
        ("before", &p.before, &mut query.before),
        ("after", &p.after, &mut query.after),
    ] {
        if let Some(text) = text.as_deref().filter(|t| !t.is_empty()) {
            let day = voiceflow_wire::v1::search::day_start_ms(text)
                .ok_or_else(|| ApiError::field(field, "a date YYYY-MM-DD"))?;
            // `after` a day means from the next day on, as in the query.
            let at = if field == "after" {
                day + 86_400_000
            } else {
                day
            };
            *slot = Some(slot.map_or(at, |q| {
                if field == "after" {
                    q.max(at)
                } else {
                    q.min(at)
                }
            }));
        }
    }
    if let Some(text) = p.has.as_deref().filter(|t| !t.is_empty()) {
        let has = Has::parse(text).ok_or_else(|| ApiError::field("has", "`file` or `link`"))?;
        if !query.has.contains(&has) {
            query.has.push(has);
        }
    }
    if filters_only && author.is_none() && query == ParsedQuery::default() {
        let e = voiceflow_wire::v1::search::QueryError::Empty;
        return Err(ApiError(e.to_body()));
    }
    let max = s.config.search.max_limit;
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT.min(max));
    if !(1..=max).contains(&limit) {
        return Err(ApiError::field("limit", format!("limit must be 1-{max}")));
    }
    let sort = match p.sort.as_deref() {
        None | Some("") | Some("newest") => SearchSort::Newest,
        Some("relevance") => SearchSort::Relevance,
        Some(_) => return Err(ApiError::field("sort", "`newest` or `relevance`")),
    };
    Ok(Request {
        query,
        author,
        sort,
        limit,
    })
}

async fn search(s: AppState, user: AuthUser, raw: String) -> Result<Response, ApiError> {
    if s.ctx.search.is_none() {
        return Err(ApiError(voiceflow_wire::ErrorBody::unavailable(
            "search is turned off on this node",
        )));
    }
    let req = parse_request(&s, &raw)?;
    let (rooms, truncated) = rooms_to_search(&s, &user, &req.query.in_room).await?;
    let author = match (&req.query.from, req.author) {
        (None, author) => author,
        (Some(name), author) => match s.ctx.store.user_by_username(name).await? {
            Some(u) if author.is_none_or(|a| a == u.id) => Some(u.id),
            // Nobody of that name, or two different authors asked for: nothing matches.
            _ => return answer(Vec::new(), &HashMap::new(), Vec::new(), truncated),
        },
    };
    let query = IndexQuery {
        words: req.query.words,
        phrases: req.query.phrases,
        author,
        has: req.query.has,
        before: req.query.before,
        after: req.query.after,
        sort: req.sort,
        limit: req.limit,
    };
    let names: HashMap<Snowflake, String> = rooms.iter().map(|r| (r.id, r.name.clone())).collect();
    let (hits, unavailable) = fan_out(&s, rooms.iter().map(|r| r.id).collect(), &query).await;
    answer(merge(hits, &query), &names, unavailable, truncated)
}

fn answer(
    hits: Vec<SearchHit>,
    names: &HashMap<Snowflake, String>,
    unavailable: Vec<Snowflake>,
    truncated: bool,
) -> Result<Response, ApiError> {
    let views: Vec<SearchResultView> = hits
        .into_iter()
        .map(|h| {
            let name = names.get(&h.room_id).cloned().unwrap_or_default();
            SearchResultView::of(h, name)
        })
        .collect();
    let mut fields = serde_json::Map::new();
    fields.insert(
        "data".into(),
        serde_json::to_value(views).map_err(ApiError::internal)?,
    );
    fields.insert("partial".into(), (!unavailable.is_empty()).into());
    fields.insert(
        "unavailableRooms".into(),
        serde_json::to_value(unavailable).map_err(ApiError::internal)?,
    );
    fields.insert("truncatedRooms".into(), truncated.into());
    Ok(ok_page(fields))
}

/// The rooms searched: `scope`'s if the caller may read it, else every room they may read
/// (at most `max_rooms`; `true` when some were left out).
async fn rooms_to_search(
    s: &AppState,
    user: &AuthUser,
    scope: &Option<RoomScope>,
) -> Result<(Vec<RoomRecord>, bool), ApiError> {
    let store = &s.ctx.store;
    if let Some(RoomScope::Id(id)) = scope {
        let Some(record) = store.room_by_id(*id).await? else {
            return Ok((Vec::new(), false));
        };
        let readable = may_read(s, user, &record).await?;
        return Ok((readable.then_some(record).into_iter().collect(), false));
    }
    let mut ids: Vec<Snowflake> = store
        .user_rooms(user.id)
        .await?
        .into_iter()
        .map(|m| m.room_id)
        .collect();
    for community in store.user_communities(user.id).await? {
        let channels = store.community_channels(community).await?;
        ids.extend(channels.into_iter().map(|c| c.channel_id));
    }
    ids.sort_unstable();
    ids.dedup();
    let max = s.config.search.max_rooms;
    let truncated = ids.len() > max;
    // The newest rooms (largest ids) are kept when there are too many.
    if truncated {
        ids.drain(..ids.len() - max);
    }
    let checked: Vec<Result<Option<RoomRecord>, ApiError>> = stream::iter(ids)
        .map(|id| async move {
            let Some(record) = s.ctx.store.room_by_id(id).await? else {
                return Ok(None);
            };
            Ok(may_read(s, user, &record).await?.then_some(record))
        })
        .buffer_unordered(CHECKS_IN_FLIGHT)
        .collect()
        .await;
    let mut rooms = Vec::new();
    for room in checked {
        rooms.extend(room?);
    }
    if let Some(RoomScope::Name(name)) = scope {
        rooms.retain(|r| r.name.eq_ignore_ascii_case(name));
    }
    Ok((rooms, truncated))
}

/// Each owner searches its rooms; rooms whose owner cannot answer come back as unavailable.
async fn fan_out(
    s: &AppState,
    rooms: Vec<Snowflake>,
    query: &IndexQuery,
) -> (Vec<SearchHit>, Vec<Snowflake>) {
    let mut by_owner: HashMap<Option<NodeId>, Vec<Snowflake>> = HashMap::new();
    let mut unavailable = Vec::new();
    for room in rooms {
        match s.ctx.directory.owner(room) {
            Owner::Local => by_owner.entry(None).or_default().push(room),
            Owner::Remote(node) => by_owner.entry(Some(node)).or_default().push(room),
            Owner::Unavailable => unavailable.push(room),
        }
    }
    let timeout = crate::cluster::peer_timeout(s.config.search.peer_timeout_ms);
    let parts = futures_util::future::join_all(by_owner.into_iter().map(|(owner, rooms)| {
        let query = query.clone();
        async move {
            let result = match (owner, &s.ctx.search, &s.cluster) {
                (None, Some(index), _) => index.search(rooms.clone(), query).await.map_err(|e| {
                    tracing::warn!(error = %e, "search failed");
                }),
                (Some(node), _, Some(cluster)) => cluster
                    .search(node, rooms.clone(), query, timeout)
                    .await
                    .map_err(|_| ()),
                (None, None, _) | (Some(_), _, None) => Err(()),
            };
            (rooms, result)
        }
    }))
    .await;
    let mut hits = Vec::new();
    for (rooms, result) in parts {
        match result {
            Ok(part) => hits.extend(part),
            Err(()) => unavailable.extend(rooms),
        }
    }
    unavailable.sort_unstable();
    (hits, unavailable)
}

/// The parts merged in the query's order. (Scores of different nodes' indexes are close but
/// not strictly comparable: each node weighs words by its own index's statistics.)
fn merge(mut hits: Vec<SearchHit>, query: &IndexQuery) -> Vec<SearchHit> {
    let newest = |a: &SearchHit, b: &SearchHit| b.message_id.cmp(&a.message_id);
    match query.sort {
        SearchSort::Newest => hits.sort_by(newest),
        SearchSort::Relevance => {
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(newest(a, b)))
        }
    }
    hits.truncate(query.limit as usize);
    hits
}
