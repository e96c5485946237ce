//! `voiceflow-sim`: prints the cluster simulation's tables.

use clap::Parser;

/// Deterministic simulation of a VoiceFlow cluster (same seed, same output).
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Largest cluster simulated (the tables use 10, 100 and 1,000 nodes up to this).
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Rooms placed and handed off.
    #[arg(long, default_value_t = 100_000)]
    rooms: usize,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Rooms a node starts at once in the bounded hand-off.
    #[arg(long, default_value_t = 64)]
    handoff_batch: usize,
    /// Simulated node-hours per failure-detection row (more: finer false-suspicion rates).
    #[arg(long, default_value_t = 10.0)]
    node_hours: f64,
    /// Nodes in the elasticity and partition runs.
    #[arg(long, default_value_t = 100)]
    elastic_nodes: usize,
    /// Only these tables (detect, placement, elastic, partition), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Cluster sizes of the membership tables (default 10,100,1000 up to --nodes).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
}

fn main() {
    let args = Args::parse();
    let opts = voiceflow_sim::Options {
        nodes: args.nodes,
        rooms: args.rooms,
        seed: args.seed,
        handoff_batch: args.handoff_batch,
        node_hours: args.node_hours,
        elastic_nodes: args.elastic_nodes,
        only: args.only,
        sizes: args.sizes,
        ..voiceflow_sim::Options::default()
    };
    voiceflow_sim::run(&opts, &mut std::io::stdout());
}
