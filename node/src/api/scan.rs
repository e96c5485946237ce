//! A filtered page of a newest-first index (`GET /users/me/mentions`, the audit log): the
//! index is read a page at a time below `before`, each entry is kept or skipped, and the scan
//! stops once a page is full, the index ends, or `max_scan` entries were looked at (so a
//! filter that matches little cannot make one request read everything). `nextBefore` is the
//! last entry looked at: the next page starts past what the filter skipped.

use serde::Serialize;
use voiceflow_wire::Snowflake;
use warp::reply::Response;

use crate::error::{ApiError, ok_page};

/// How far one scan goes.
pub(super) struct ScanLimits {
    /// Entries wanted.
    pub(super) limit: usize,
    /// Most entries looked at.
    pub(super) max_scan: u32,
    /// Entries per read of the index.
    pub(super) page: u32,
}

/// What a scan found.
pub(super) struct Scanned<T> {
    found: Vec<T>,
    exhausted: bool,
    next_before: Option<Snowflake>,
}

/// An index and its filter.
pub(super) trait Filtered {
    /// An entry of the index.
    type Entry;
    /// What is listed.
    type Item;
    /// Up to `n` entries below `before`, newest first.
    async fn read(
        &mut self,
        before: Option<Snowflake>,
        n: u32,
    ) -> Result<Vec<Self::Entry>, ApiError>;
    /// An entry's place in the index.
    fn id_of(entry: &Self::Entry) -> Snowflake;
    /// What `entry` lists as, or `None` to skip it.
    async fn keep(&mut self, entry: Self::Entry) -> Result<Option<Self::Item>, ApiError>;
}

/// Scans `index` below `before`.
pub(super) async fn newest_first<F: Filtered>(
    index: &mut F,
    before: Option<Snowflake>,
    limits: ScanLimits,
) -> Result<Scanned<F::Item>, ApiError> {
    let mut found = Vec::new();
    let mut before = before;
    let (mut scanned, mut exhausted) = (0u32, false);
    'scan: while found.len() < limits.limit && scanned < limits.max_scan {
        let entries = index.read(before, limits.page).await?;
        if entries.is_empty() {
            exhausted = true;
            break;
        }
        for entry in entries {
            if found.len() == limits.limit {
                break 'scan;
            }
            before = Some(F::id_of(&entry));
            scanned += 1;
            if let Some(item) = index.keep(entry).await? {
                found.push(item);
            }
        }
    }
    Ok(Scanned {
        found,
        exhausted,
        next_before: before,
    })
}

impl<T: Serialize> Scanned<T> {
    /// The page as clients get it: `{data, hasMore, nextBefore}`.
    pub(super) fn into_page(self) -> Result<Response, ApiError> {
        let mut fields = serde_json::Map::new();
        let data = serde_json::to_value(&self.found).map_err(ApiError::internal)?;
        fields.insert("data".into(), data);
        fields.insert("hasMore".into(), (!self.exhausted).into());
        let next = serde_json::to_value(self.next_before).map_err(ApiError::internal)?;
        fields.insert("nextBefore".into(), next);
        Ok(ok_page(fields))
    }
}
