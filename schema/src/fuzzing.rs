//! Settings shared by the property (fuzz) tests of this crate.
//!
//! Each test names the number of cases CI runs (chosen so that every fuzz test of the
//! workspace together stays under about a minute in a debug build on two cores).
//! `VOICEFLOW_FUZZ_SCALE=100` multiplies every such count for a long run by hand;
//! proptest's own `PROPTEST_CASES` sets an absolute count instead. The random seed is fixed,
//! so CI runs the same cases every time; `PROPTEST_RNG_SEED=<u64>` explores others. A failure
//! is shrunk and its seed saved under `proptest-regressions/` (check it in: it is replayed
//! first on every later run), and becomes an explicit regression test beside the decoder.

use proptest::test_runner::{Config, RngSeed};

/// The fixed seed of CI runs.
const CI_SEED: u64 = 0x5eed_f00d_0015;

/// A proptest configuration running `ci_cases` cases (times `VOICEFLOW_FUZZ_SCALE`).
pub(crate) fn config(ci_cases: u32) -> Config {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        let scale = std::env::var("VOICEFLOW_FUZZ_SCALE")
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .unwrap_or(1)
            .max(1);
        config.cases = ci_cases.saturating_mul(scale);
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = RngSeed::Fixed(CI_SEED);
    }
    // Shrinking a failure may take long on big inputs; a minute is plenty to get it small.
    config.max_shrink_time = 60_000;
    config
}
