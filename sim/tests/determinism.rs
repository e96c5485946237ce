//! The same seed prints the same tables; another seed does not.

use voiceflow_sim::{Options, run};

fn tables(seed: u64) -> String {
    let opts = Options {
        nodes: 12,
        rooms: 1_000,
        seed,
        node_hours: 0.05,
        elastic_nodes: 12,
        ..Options::default()
    };
    let mut out = Vec::new();
    run(&opts, &mut out);
    String::from_utf8(out).expect("the tables are text")
}

#[test]
fn same_seed_same_output() {
    let a = tables(7);
    let b = tables(7);
    assert!(a.contains("## Failure detection") && a.contains("## 60/40 partition"));
    assert_eq!(a, b, "two runs with seed 7 differ");
    let c = tables(8);
    assert_ne!(a, c, "seeds 7 and 8 printed the same tables");
}
