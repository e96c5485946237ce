//! Embedded-only tests of the embedded store, on temporary directories: fixtures here, one
//! submodule per area. Behaviour every store shares is tested by the conformance suite in
//! `schema/tests/conformance/`, which runs against this store too.

mod durability;
mod group;

use std::path::Path;

use super::EmbeddedStore;
use crate::fixtures::*;

/// Opens the store at `path`.
fn open_at(path: &Path) -> EmbeddedStore {
    EmbeddedStore::open(path).expect("open store")
}
