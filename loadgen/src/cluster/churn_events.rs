//! Part `churn`, the two events: a node joins (`--join-command`: when the owners list
//! grows, when every room delivers again) and a node is killed (`--kill-command`).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};

use super::churn::{ChurnRoom, Seen, served, wait_delivered};
use super::metrics::Http;
use super::nodes::{Nodes, run_command};
use super::report::{event_counts, gap_figs, waited_figs};
use super::{lock, secs_since};
use crate::stats::{fig, fig_f};

/// What the events work with.
pub(super) struct Events {
    pub(super) nodes: Arc<Nodes>,
    pub(super) http: Http,
    pub(super) rooms: Vec<Arc<ChurnRoom>>,
    /// What the `GET /cluster` poller saw.
    pub(super) seen: Arc<Mutex<Vec<Seen>>>,
    /// The node id behind each URL, when known.
    pub(super) node_ids: Vec<Option<u64>>,
    /// Nodes at the start (the `--urls`).
    pub(super) n0: usize,
    /// When the probes started.
    pub(super) started: Instant,
    pub(super) settle: Duration,
    pub(super) event_timeout: Duration,
    /// `join command at <s>, kill command at <s>` (seconds since `started`).
    pub(super) log: String,
}

impl Events {
    /// Notes that the `what` command starts now; returns now.
    fn note_event(&mut self, what: &str) -> Instant {
        let t_cmd = Instant::now();
        if !self.log.is_empty() {
            self.log.push_str(", ");
        }
        self.log.push_str(&format!(
            "{what} command at {:.2}",
            secs_since(t_cmd, self.started)
        ));
        t_cmd
    }

    /// Part 3: a node joins.
    pub(super) async fn join(&mut self, cmd: &str, initial_owners: &HashSet<u64>) {
        let t_cmd = self.note_event("join");
        let (n0, settle, event_timeout) = (self.n0, self.settle, self.event_timeout);
        let (nodes, http, seen) = (&*self.nodes, &self.http, &*self.seen);
        let rooms: &[Arc<ChurnRoom>] = &self.rooms;
        let cmd_task = {
            let cmd = cmd.to_owned();
            tokio::spawn(async move { (run_command(&cmd).await, Instant::now()) })
        };
        // Owners list grows (as seen by whichever node the poller asks).
        let mut t_seen = None;
        let mut new_ids: Vec<u64> = Vec::new();
        let mut cmd_done: Option<(Result<()>, Instant)> = None;
        let mut cmd_task = Some(cmd_task);
        while t_seen.is_none() || cmd_done.is_none() {
            if let Some(task) = &cmd_task
                && task.is_finished()
                && let Some(task) = cmd_task.take()
            {
                cmd_done = Some(
                    task.await
                        .unwrap_or_else(|e| (Err(anyhow!("{e}")), Instant::now())),
                );
            }
            if t_seen.is_none()
                && let Some(s) = lock(seen)
                    .iter()
                    .rev()
                    .find(|s| s.at >= t_cmd && s.owners.iter().any(|o| !initial_owners.contains(o)))
            {
                t_seen = Some(s.at);
                new_ids = s
                    .owners
                    .iter()
                    .copied()
                    .filter(|o| !initial_owners.contains(o))
                    .collect();
            }
            if t_cmd.elapsed() > event_timeout {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The first observation with the new owner, not the last.
        if let Some(first) = lock(seen)
            .iter()
            .find(|s| s.at >= t_cmd && s.owners.iter().any(|o| new_ids.contains(o)))
        {
            t_seen = Some(first.at);
        }
        match &cmd_done {
            Some((Ok(()), at)) => fig_f("join.command_secs", secs_since(*at, t_cmd), "s"),
            Some((Err(e), _)) => eprintln!("error: join command: {e:#}"),
            None => eprintln!("error: join command still running after {event_timeout:?}"),
        }
        if nodes.len() > n0 {
            nodes.alive[n0].store(true, Ordering::Relaxed);
            self.node_ids[n0] = http
                .cluster(&nodes.urls[n0])
                .await
                .ok()
                .and_then(|s| s["nodeId"].as_u64());
        }
        if let Some(t_seen) = t_seen {
            fig_f("join.owners_seen_secs", secs_since(t_seen, t_cmd), "s");
            eprintln!("cluster churn: new owner(s) {new_ids:?} seen");
            let done = wait_delivered(rooms, t_seen, event_timeout).await;
            // From the command's start; the main figure is join.rooms_probe_max_secs.
            waited_figs("join.rooms_probe", &done, t_cmd);
            if let Some(at) = done.at {
                fig_f(
                    "join.rooms_probe_after_seen_max_secs",
                    secs_since(at, t_seen),
                    "s",
                );
            } else {
                eprintln!(
                    "error: {} rooms delivered no probe sent after the join within {} s",
                    done.missing,
                    event_timeout.as_secs()
                );
            }
        } else {
            eprintln!("error: no new owner appeared in GET /cluster within {event_timeout:?}");
        }
        tokio::time::sleep(settle).await;
        let t_end = Instant::now();
        // The new node's room count as gossiped, and when it stopped changing.
        if let Some(&id) = new_ids.first() {
            let seen = lock(seen);
            let series: Vec<(Instant, u64)> = seen
                .iter()
                .filter(|s| s.at >= t_cmd)
                .filter_map(|s| s.members.iter().find(|m| m.0 == id).map(|m| (s.at, m.2)))
                .collect();
            if let Some(&(_, last)) = series.last() {
                fig(&format!("join.node{id}_rooms"), last, "rooms");
                let settled = series
                    .iter()
                    .rev()
                    .take_while(|(_, v)| *v == last)
                    .last()
                    .map(|(t, _)| *t);
                if let Some(t) = settled {
                    fig_f(
                        &format!("join.node{id}_rooms_settled_secs"),
                        secs_since(t, t_cmd),
                        "s",
                    );
                }
            }
        }
        gap_figs("join", rooms, t_cmd, t_end);
        event_counts("join", rooms, t_cmd, t_end);
    }

    /// Part 4: a node is killed.
    pub(super) async fn kill(&mut self, cmd: &str) {
        let at_kill: Vec<(usize, usize)> = self
            .rooms
            .iter()
            .map(|r| {
                let log = lock(&r.log);
                (log.sender_node, log.receiver_node)
            })
            .collect();
        let t_cmd = self.note_event("kill");
        let (settle, event_timeout) = (self.settle, self.event_timeout);
        let (nodes, http, seen) = (&*self.nodes, &self.http, &*self.seen);
        let (rooms, node_ids): (&[Arc<ChurnRoom>], _) = (&self.rooms, &self.node_ids);
        let outcome = run_command(cmd).await;
        let t_killed = Instant::now();
        if let Err(e) = &outcome {
            eprintln!("error: kill command: {e:#}");
        }
        fig_f("kill.command_secs", secs_since(t_killed, t_cmd), "s");
        let mut dead = Vec::new();
        for i in 0..nodes.len() {
            if nodes.alive[i].load(Ordering::Relaxed) && !http.healthy(&nodes.urls[i]).await {
                nodes.alive[i].store(false, Ordering::Relaxed);
                dead.push(i);
            }
        }
        let dead_ids: Vec<u64> = dead.iter().filter_map(|&i| node_ids[i]).collect();
        eprintln!(
            "cluster churn: dead after the kill: {:?} (node ids {dead_ids:?})",
            dead.iter().map(|&i| &nodes.urls[i]).collect::<Vec<_>>()
        );
        for &id in &dead_ids {
            fig("kill.dead_node", id, "node");
        }
        let affected: HashSet<usize> = at_kill
            .iter()
            .enumerate()
            .filter(|(_, (s, r))| dead.contains(s) || dead.contains(r))
            .map(|(i, _)| i)
            .collect();
        fig(
            "kill.rooms_with_clients_on_dead_node",
            affected.len(),
            "rooms",
        );
        let survivors: Vec<Arc<ChurnRoom>> = rooms
            .iter()
            .filter(|r| !affected.contains(&r.index))
            .cloned()
            .collect();
        fig("kill.rooms_surviving_clients", survivors.len(), "rooms");
        let (surv, all) = tokio::join!(
            wait_delivered(&survivors, t_killed, event_timeout),
            wait_delivered(rooms, t_killed, event_timeout),
        );
        // From the kill command's start.
        waited_figs("kill.surviving_rooms_probe", &surv, t_cmd);
        waited_figs("kill.all_rooms_probe", &all, t_cmd);
        // When each room acknowledged an attempt sent after the kill (a resend included): when
        // it served again, without the wait for the next probe's slot.
        waited_figs(
            "kill.surviving_rooms_served",
            &served(&survivors, t_killed),
            t_cmd,
        );
        waited_figs("kill.all_rooms_served", &served(rooms, t_killed), t_cmd);
        if all.at.is_none() {
            eprintln!(
                "error: {} rooms ({} with clients on surviving nodes only) delivered no probe \
                 sent after the kill within {} s",
                all.missing,
                surv.missing,
                event_timeout.as_secs()
            );
        }
        // When a survivor marked the dead node down.
        let marked_down = || {
            lock(seen)
                .iter()
                .find(|s| {
                    s.at >= t_cmd
                        && s.members
                            .iter()
                            .any(|m| dead_ids.contains(&m.0) && m.1 == "down")
                })
                .map(|s| s.at)
        };
        let down_at = marked_down();
        tokio::time::sleep(settle).await;
        let t_end = Instant::now();
        let down_at = down_at.or_else(marked_down);
        if let Some(at) = down_at {
            fig_f("kill.marked_down_secs", secs_since(at, t_cmd), "s");
        }
        gap_figs("kill.surviving", &survivors, t_cmd, t_end);
        gap_figs("kill.all", rooms, t_cmd, t_end);
        event_counts("kill", rooms, t_cmd, t_end);
    }
}
