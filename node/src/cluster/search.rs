//! Searches across nodes: a node asks each owner of some of the rooms searched for their
//! hits ([`PeerMsg::Search`], cluster protocol 10, on a lane of its own so a large answer
//! never delays heartbeats or rooms) and waits at most the configured time; the owner runs
//! the search on its own index and answers ([`PeerMsg::SearchAnswer`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use voiceflow_actors::NodeContext;
use voiceflow_wire::cluster::{NodeId, PeerMsg};
use voiceflow_wire::v1::search::{IndexQuery, SearchHit};
use voiceflow_wire::{ErrorBody, Snowflake};

use super::link::Lane;
use super::send::unavailable_body;
use super::{ClusterInner, ClusterNode};

/// A search waiting for a peer's answer.
pub(super) struct PendingSearch {
    node: NodeId,
    done: tokio::sync::oneshot::Sender<Result<Vec<SearchHit>, ErrorBody>>,
}

/// The answer of a search: hits, or why the peer's part is missing.
pub type SearchResult = Result<Vec<SearchHit>, ErrorBody>;

impl ClusterNode {
    /// Searches `rooms`, owned by `node`, on that node; UNAVAILABLE when it is out of reach,
    /// speaks a version without search, or does not answer within `timeout`.
    pub async fn search(
        &self,
        node: NodeId,
        rooms: Vec<Snowflake>,
        query: IndexQuery,
        timeout: Duration,
    ) -> SearchResult {
        let inner = &self.0;
        let Some(link) = inner.link(node) else {
            return Err(unavailable_body());
        };
        if link.version().is_some_and(|v| v < 10) {
            // It could not read the request (`encode_at` would refuse it anyway).
            return Err(unavailable_body());
        }
        let call_id = inner.next_call.fetch_add(1, Ordering::Relaxed);
        let (done, answer) = tokio::sync::oneshot::channel();
        inner
            .searches
            .lock()
            .insert(call_id, PendingSearch { node, done });
        link.send(
            Lane::Search,
            PeerMsg::Search {
                call_id,
                rooms,
                query,
            },
        );
        let answer = tokio::time::timeout(timeout, answer).await;
        inner.searches.lock().remove(&call_id);
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(unavailable_body()),
        }
    }
}

impl ClusterInner {
    /// A peer's search: run on this node's index, off the link's reading task.
    pub(super) fn on_search(
        self: &Arc<Self>,
        ctx: &NodeContext,
        from: NodeId,
        call_id: u64,
        rooms: Vec<Snowflake>,
        query: IndexQuery,
    ) {
        let (inner, index) = (self.clone(), ctx.search.clone());
        tokio::spawn(async move {
            let result = match index {
                Some(index) => index.search(rooms, query).await.map_err(|e| {
                    tracing::warn!(error = %e, "search for a peer failed");
                    ErrorBody::unavailable("search failed on the rooms' node")
                }),
                None => Err(ErrorBody::unavailable("search is off on the rooms' node")),
            };
            if let Some(link) = inner.link(from) {
                link.send(Lane::Search, PeerMsg::SearchAnswer { call_id, result });
            }
        });
    }

    /// A peer answered one of this node's searches.
    pub(super) fn on_search_answer(&self, from: NodeId, call_id: u64, result: SearchResult) {
        let mut pending = self.searches.lock();
        // Only the node asked may answer.
        if pending.get(&call_id).is_some_and(|p| p.node == from)
            && let Some(p) = pending.remove(&call_id)
        {
            let _ = p.done.send(result);
        }
    }
}

/// How long to wait for a peer's part of a search.
pub fn peer_timeout(ms: u64) -> Duration {
    Duration::from_millis(ms.max(1))
}
