//! What one idle ractor actor and one idle tokio task cost in resident memory, under the
//! node's allocator (mimalloc): the floor that "every user session is a ractor actor" (and
//! the connection's reader task beside it) puts under the memory per WebSocket connection.
//!
//! `cargo run --release -p voiceflow-actors --example actor_footprint -- 20000` spawns that
//! many of each (after a warm-up batch, so the runtime's and allocator's one-off pages are not
//! counted) and prints `name: value unit` lines: the RSS added per idle actor (spawned linked
//! to a supervisor, as sessions are), per idle actor's message sent and handled once (its
//! mailbox's first block then in use), and per idle task.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use voiceflow_media::testing::procfs::rss;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An actor with no state that does nothing with its messages: ractor's own cost.
struct Idle;

impl Actor for Idle {
    type Msg = u64;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _me: ActorRef<u64>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _me: ActorRef<u64>,
        _msg: u64,
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

/// Spawns `n` idle actors linked to `supervisor`.
async fn actors(n: usize, supervisor: &ractor::ActorCell) -> Vec<ActorRef<u64>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        match Actor::spawn_linked(None, Idle, (), supervisor.clone()).await {
            Ok((actor, _)) => all.push(actor),
            Err(e) => {
                eprintln!("actor_footprint: spawn failed: {e}");
                break;
            }
        }
    }
    all
}

/// Spawns `n` tasks that wait until `stop` is notified.
fn tasks(n: usize, stop: &std::sync::Arc<tokio::sync::Notify>) -> Vec<tokio::task::JoinHandle<()>> {
    (0..n)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move { stop.notified().await })
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000)
        .max(1);
    let (supervisor, _) = match Actor::spawn(None, Idle, ()).await {
        Ok(s) => s,
        Err(e) => return eprintln!("actor_footprint: {e}"),
    };
    let supervisor = supervisor.get_cell();
    // Warm-up: the runtime's, ractor's and mimalloc's first pages.
    let warm = actors(1_000, &supervisor).await;
    let stop = std::sync::Arc::new(tokio::sync::Notify::new());
    let warm_tasks = tasks(1_000, &stop);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let before = rss();
    let spawned = actors(n, &supervisor).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_spawn = rss();
    for actor in &spawned {
        let _ = actor.cast(1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after_message = rss();
    let idle_tasks = tasks(n, &stop);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_tasks = rss();

    let per = |bytes: u64| bytes as f64 / n as f64;
    println!("count: {n} (after {} of each to warm up)", warm.len());
    println!(
        "rss_per_idle_actor_bytes: {:.0} (spawned linked to a supervisor, no message yet)",
        per(after_spawn.saturating_sub(before))
    );
    println!(
        "rss_per_actor_after_one_message_bytes: {:.0} (the same actors, each sent and handled one message)",
        per(after_message.saturating_sub(before))
    );
    println!(
        "rss_per_idle_task_bytes: {:.0} (a tokio task waiting on a Notify)",
        per(after_tasks.saturating_sub(after_message))
    );
    stop.notify_waiters();
    for t in idle_tasks.into_iter().chain(warm_tasks) {
        let _ = t.await;
    }
    for actor in spawned.iter().chain(&warm) {
        actor.stop(None);
    }
}
