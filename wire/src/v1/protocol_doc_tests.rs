//! `PROTOCOL.md` cannot drift from the code: every client event ([`ClientEvent`]) is a row of
//! a table headed `client event`, every server event ([`ServerEventKind`]) a row of the table
//! headed `server event`, and every event those tables name exists.

use std::collections::BTreeSet;

use crate::v1::event::ServerEventKind;
use crate::v1::request::ClientEvent;

const PROTOCOL: &str = include_str!("../../PROTOCOL.md");

/// The event names in the first column of every table whose header's first cell is
/// `heading`. A row may name several events (`` `typing:start` / `typing:stop` ``).
fn documented(doc: &str, heading: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut in_table = false;
    for line in doc.lines() {
        let Some(row) = line.trim().strip_prefix('|') else {
            in_table = false;
            continue;
        };
        let first = row.split('|').next().unwrap_or_default().trim();
        if first == heading {
            in_table = true;
            continue;
        }
        if !in_table || first.starts_with("---") {
            continue;
        }
        // Odd pieces of a split on backticks are the quoted names.
        for name in first.split('`').skip(1).step_by(2) {
            names.insert(name.to_owned());
        }
    }
    names
}

/// What the document lists against what the code has, both ways.
fn assert_same(what: &str, doc: &BTreeSet<String>, code: &BTreeSet<String>) {
    let undocumented: Vec<_> = code.difference(doc).collect();
    let unknown: Vec<_> = doc.difference(code).collect();
    assert!(
        undocumented.is_empty() && unknown.is_empty(),
        "PROTOCOL.md's {what} tables drifted from the code: not documented {undocumented:?}; \
         documented but not in the code {unknown:?}"
    );
}

#[test]
fn every_client_event_is_documented_and_every_documented_one_exists() {
    let code = ClientEvent::ALL
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_same("client event", &documented(PROTOCOL, "client event"), &code);
}

#[test]
fn every_server_event_is_documented_and_every_documented_one_exists() {
    let code = ServerEventKind::ALL
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    assert_same("server event", &documented(PROTOCOL, "server event"), &code);
}

#[test]
fn the_table_reader_finds_rows_and_only_rows() {
    let doc = "| client event | data |\n|---|---|\n| `a:b` / `c` | `{x}` |\ntext `d`\n\
               | other | x |\n| `e` | y |\n";
    let found: Vec<_> = documented(doc, "client event").into_iter().collect();
    assert_eq!(found, ["a:b", "c"]);
}
