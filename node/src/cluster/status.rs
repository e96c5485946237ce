//! `GET /cluster`: the members as this node sees them, with the rooms and sessions each holds
//! (their own figures, gossiped in heartbeats), and whether this node has a quorum.

use std::sync::Arc;

use serde::Serialize;
use voiceflow_wire::cluster::{MemberInfo, MemberState};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::ClusterNode;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Member {
    node_id: u16,
    state: &'static str,
    http_addr: String,
    quic_addr: String,
    incarnation: u64,
    rooms: u32,
    sessions: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    node_id: u16,
    quorum: bool,
    owners: Vec<u16>,
    members: Vec<Member>,
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::Up => "up",
        MemberState::Leaving => "leaving",
        MemberState::Left => "left",
        MemberState::Down => "down",
    }
}

fn member(info: MemberInfo) -> Member {
    Member {
        node_id: info.node_id,
        state: state_name(info.state),
        http_addr: info.http_addr,
        quic_addr: info.quic_addr,
        incarnation: info.incarnation,
        rooms: info.rooms,
        sessions: info.sessions,
    }
}

/// `GET /cluster` (only when the node is in a cluster; a single node answers 404).
pub fn route(cluster: Option<ClusterNode>) -> BoxedFilter<(Response,)> {
    let cluster = Arc::new(cluster);
    warp::path!("cluster")
        .and(warp::get())
        .and_then(move || {
            let cluster = cluster.clone();
            async move {
                let Some(cluster) = cluster.as_ref() else {
                    return Err(warp::reject::not_found());
                };
                let inner = &cluster.0;
                let m = inner.membership.lock();
                let status = Status {
                    node_id: inner.me,
                    quorum: m.has_quorum(),
                    owners: m.owners(),
                    members: m.list().into_iter().map(member).collect(),
                };
                drop(m);
                Ok::<Response, warp::Rejection>(warp::reply::json(&status).into_response())
            }
        })
        .boxed()
}

use warp::Reply as _;
