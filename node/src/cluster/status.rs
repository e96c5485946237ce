//! `GET /cluster`: the members as this node sees them, with the rooms and sessions each holds
//! (their own figures, gossiped in heartbeats), and whether this node has a quorum; the
//! cluster protocol versions each member speaks (`protocols`, `[min, max]`) and the version
//! this node's link to it speaks (`linkVersion`): a rolling upgrade is complete when every
//! member's max and every link are at the new version.
//! `POST /cluster/faults {"block": [ids], "deaf": [ids]}`: only with `cluster.fault_injection`,
//! for partition tests: drop all traffic with the `block` peers, and only what comes from the
//! `deaf` ones (a one-way cut: they still hear this node); empty lists heal.

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
    protocols: [u8; 2],
    link_version: Option<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Status {
    node_id: u16,
    protocols: [u8; 2],
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

fn member(info: MemberInfo, link_version: Option<u8>) -> Member {
    Member {
        node_id: info.node_id,
        state: state_name(info.state),
        http_addr: info.http_addr,
        quic_addr: info.quic_addr,
        incarnation: info.incarnation,
        rooms: info.rooms,
        sessions: info.sessions,
        protocols: [info.protocols.0, info.protocols.1],
        link_version,
    }
}

#[derive(serde::Deserialize)]
struct Faults {
    block: Vec<u16>,
    #[serde(default)]
    deaf: Vec<u16>,
}

/// `GET /cluster` and `POST /cluster/faults` (only when the node is in a cluster; a single
/// node answers 404).
pub fn route(cluster: Option<ClusterNode>) -> BoxedFilter<(Response,)> {
    let cluster = Arc::new(cluster);
    let faults = {
        let cluster = cluster.clone();
        warp::path!("cluster" / "faults")
            .and(warp::post())
            .and(warp::body::content_length_limit(4096))
            .and(warp::body::json())
            .and_then(move |faults: Faults| {
                let cluster = cluster.clone();
                async move {
                    let Some(cluster) = cluster.as_ref().as_ref().filter(|c| c.0.fault_injection)
                    else {
                        return Err(warp::reject::not_found());
                    };
                    tracing::warn!(blocked = ?faults.block, deaf = ?faults.deaf, "fault injection: cutting peers off");
                    *cluster.0.blocked.write() = faults.block.into_iter().collect();
                    *cluster.0.deaf.write() = faults.deaf.into_iter().collect();
                    Ok::<Response, warp::Rejection>(
                        warp::reply::json(&serde_json::json!({"ok": true})).into_response(),
                    )
                }
            })
    };
    let status = warp::path!("cluster").and(warp::get()).and_then(move || {
        let cluster = cluster.clone();
        async move {
            let Some(cluster) = cluster.as_ref() else {
                return Err(warp::reject::not_found());
            };
            let inner = &cluster.0;
            // Read apart from the membership lock (no lock order to keep between the two).
            let links: std::collections::HashMap<u16, u8> = inner
                .links
                .read()
                .iter()
                .filter_map(|(node, l)| Some((*node, l.handle.version()?)))
                .collect();
            let m = inner.membership.lock();
            let status = Status {
                node_id: inner.me,
                protocols: [*inner.versions.start(), *inner.versions.end()],
                quorum: m.serving(),
                owners: m.owners(),
                members: m
                    .list()
                    .into_iter()
                    .map(|info| {
                        let link = links.get(&info.node_id).copied();
                        member(info, link)
                    })
                    .collect(),
            };
            drop(m);
            Ok::<Response, warp::Rejection>(warp::reply::json(&status).into_response())
        }
    });
    status.or(faults).unify().boxed()
}

use warp::Reply as _;
