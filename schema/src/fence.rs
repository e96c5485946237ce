//! Storage-level fencing of room logs: the reading rule both stores share.
//!
//! Every log entry carries the ownership epoch of the room actor that wrote it
//! ([`crate::Store::claim_room`] bumps it when a node takes a room over). The stores keep, for
//! each seq, only the entry of the highest ownership epoch (an older one never replaces a
//! newer one), and readers apply [`resolve`]: walking the log in seq order, an entry whose
//! ownership epoch is older than one before it is a stale owner's write that landed after a
//! newer owner had started, so it and everything after it are not part of the log. A newer
//! owner writes contiguous seqs from the end it read, so stale entries only ever sit beyond
//! the end of the newest owner's writes (see ARCHITECTURE.md, "Storage-level fencing").

use crate::model::RoomEventRecord;

/// Keeps the longest prefix of `rows` (one room, seq ascending, one entry per seq) whose
/// ownership epochs never go down, starting from `floor` (the ownership epoch of the entry
/// just before `rows`, or 0).
pub fn resolve(rows: Vec<RoomEventRecord>, floor: u64) -> Vec<RoomEventRecord> {
    let mut newest = floor;
    let mut keep = rows.len();
    for (i, row) in rows.iter().enumerate() {
        if row.owner_epoch < newest {
            keep = i;
            break;
        }
        newest = row.owner_epoch;
    }
    let mut rows = rows;
    if keep < rows.len() {
        tracing::info!(
            room = %rows[keep].room_id,
            seq = rows[keep].seq,
            owner_epoch = rows[keep].owner_epoch,
            newer = newest,
            "skipping log entries of a fenced owner"
        );
        rows.truncate(keep);
    }
    rows
}

#[cfg(test)]
mod tests {
    use voiceflow_wire::Snowflake;

    use super::*;

    fn row(seq: u64, owner_epoch: u64) -> RoomEventRecord {
        RoomEventRecord {
            room_id: Snowflake(1),
            seq,
            epoch: 1,
            owner_epoch,
            event: "e".into(),
            data: "{}".into(),
            message: None,
            at: 0,
        }
    }

    fn seqs(rows: &[RoomEventRecord]) -> Vec<(u64, u64)> {
        rows.iter().map(|r| (r.seq, r.owner_epoch)).collect()
    }

    #[test]
    fn an_older_owner_never_follows_a_newer_one() {
        let log = vec![row(1, 1), row(2, 1), row(3, 2), row(4, 1), row(5, 3)];
        assert_eq!(seqs(&resolve(log, 0)), vec![(1, 1), (2, 1), (3, 2)]);
        // Equal and rising epochs are all kept; the floor counts as the entry before.
        let log = vec![row(7, 2), row(8, 2), row(9, 5)];
        assert_eq!(resolve(log.clone(), 2).len(), 3);
        assert!(resolve(log, 3).is_empty());
        assert!(resolve(Vec::new(), 9).is_empty());
    }
}
