//! Conversions between the records and CQL values, and driver errors → [`StoreError`].
//!
//! - Ids are snowflakes stored as `bigint`. Real ids stay below 2^63 until the 2090s; an id
//!   that does not fit is refused on write, and a negative `bigint` read back is corrupt.
//!   Cursors (`before`/`after`) are clamped instead, so `Snowflake(u64::MAX)` still works.
//! - Times are `timestamp` (milliseconds). The `u64` is stored bit-for-bit as the `i64` the
//!   protocol carries, so every value, `u64::MAX` included, reads back unchanged.
//! - Every driver failure (connection, timeout, unavailable replicas, server error) becomes
//!   [`StoreError::Unavailable`] naming the operation; a row of unexpected shape becomes
//!   [`StoreError::Corrupt`].

use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::response::query_result::{QueryResult, QueryRowsResult};
use scylla::statement::prepared::PreparedStatement;
use scylla::value::{CqlTimestamp, CqlValue, Row};
use voiceflow_wire::Snowflake;
use voiceflow_wire::v1::client::MessageType;

use crate::bucket::bucket_of;
use crate::model::Role;
use crate::store::{StoreError, StoreResult};

/// Prepares `cql` on `session`, marked idempotent (safe to retry) or not.
pub(crate) async fn prepare(
    session: &Session,
    cql: &str,
    idempotent: bool,
) -> StoreResult<PreparedStatement> {
    let mut statement = session
        .prepare(cql)
        .await
        .map_err(|e| driver_error(&format!("prepare `{cql}`"), e))?;
    statement.set_is_idempotent(idempotent);
    Ok(statement)
}

/// A driver failure while doing `what`: the backend is unreachable or refused the request.
pub(crate) fn driver_error(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("CQL {what} failed: {err}"))
}

/// A response of unexpected shape while doing `what`.
pub(crate) fn corrupt(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("CQL {what}: {err}"))
}

/// An id as a `bigint`; ids beyond `i64::MAX` cannot be stored.
pub(crate) fn id(id: Snowflake) -> StoreResult<i64> {
    i64::try_from(id.0)
        .map_err(|_| StoreError::Corrupt(format!("id {id} exceeds the bigint range")))
}

/// A `bigint` read back as an id; negative values are corrupt.
pub(crate) fn snowflake(raw: i64) -> StoreResult<Snowflake> {
    u64::try_from(raw)
        .map(Snowflake)
        .map_err(|_| StoreError::Corrupt(format!("negative id {raw}")))
}

/// A time as a CQL `timestamp`, bit-preserving (see the module docs).
pub(crate) fn to_cql_time(ms: u64) -> CqlTimestamp {
    CqlTimestamp(i64::from_be_bytes(ms.to_be_bytes()))
}

/// A CQL `timestamp` back as the stored time.
pub(crate) fn from_cql_time(ts: CqlTimestamp) -> u64 {
    u64::from_be_bytes(ts.0.to_be_bytes())
}

/// The `int` bucket column of a message id.
pub(crate) fn bucket(id: Snowflake) -> i32 {
    i32::try_from(bucket_of(id)).unwrap_or(i32::MAX)
}

/// The `text` column of a message kind.
pub(crate) fn kind_name(kind: MessageType) -> &'static str {
    kind.as_str()
}

/// A message kind read back.
pub(crate) fn kind(name: &str) -> StoreResult<MessageType> {
    Ok(match name {
        "text" => MessageType::Text,
        "file" => MessageType::File,
        "voice_note" => MessageType::VoiceNote,
        "system" => MessageType::System,
        other => {
            return Err(StoreError::Corrupt(format!(
                "unknown message kind {other:?}"
            )));
        }
    })
}

/// A role read back.
pub(crate) fn role(name: &str) -> StoreResult<Role> {
    match name {
        "admin" => Ok(Role::Admin),
        "member" => Ok(Role::Member),
        other => Err(StoreError::Corrupt(format!("unknown role {other:?}"))),
    }
}

/// Case-folds a unique lookup value (username, email, join code), as the embedded store does.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// The rows of a response, typed.
pub(crate) fn rows<R>(result: QueryResult, what: &str) -> StoreResult<Vec<R>>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    let rows = result.into_rows_result().map_err(|e| corrupt(what, e))?;
    typed_rows(&rows, what)
}

/// The rows of a rows result, typed.
pub(crate) fn typed_rows<R>(rows: &QueryRowsResult, what: &str) -> StoreResult<Vec<R>>
where
    R: for<'f> DeserializeRow<'f, 'f>,
{
    let mut out = Vec::with_capacity(rows.rows_num());
    for row in rows.rows::<R>().map_err(|e| corrupt(what, e))? {
        out.push(row.map_err(|e| corrupt(what, e))?);
    }
    Ok(out)
}

/// The outcome of a lightweight transaction: whether it applied, and the row it found when
/// it did not (column name → value).
#[derive(Debug, Default)]
pub(crate) struct Lwt {
    /// `[applied]`.
    pub(crate) applied: bool,
    /// The existing row's columns when not applied (names as the server sent them).
    pub(crate) existing: Vec<(String, Option<CqlValue>)>,
}

impl Lwt {
    /// Reads an LWT response (`[applied]` first, then the existing row's columns, if any).
    pub(crate) fn parse(result: QueryResult, what: &str) -> StoreResult<Lwt> {
        let rows = result.into_rows_result().map_err(|e| corrupt(what, e))?;
        let names: Vec<String> = rows
            .column_specs()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        let row = typed_rows::<Row>(&rows, what)?
            .into_iter()
            .next()
            .ok_or_else(|| corrupt(what, "no [applied] row"))?;
        let mut columns = names.into_iter().zip(row.columns);
        let applied = match columns.next() {
            Some((name, Some(CqlValue::Boolean(applied)))) if name == "[applied]" => applied,
            other => return Err(corrupt(what, format!("unexpected first column {other:?}"))),
        };
        Ok(Lwt {
            applied,
            existing: columns.collect(),
        })
    }

    /// The existing row's `bigint` column `name`, if present.
    pub(crate) fn existing_id(&self, name: &str) -> StoreResult<Option<Snowflake>> {
        match self.existing.iter().find(|(n, _)| n == name) {
            Some((_, Some(CqlValue::BigInt(raw)))) => snowflake(*raw).map(Some),
            Some((_, None)) | None => Ok(None),
            Some((_, other)) => Err(StoreError::Corrupt(format!("{name} is {other:?}"))),
        }
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_bit_for_bit() {
        for ms in [0, 1, 1_750_000_000_000, i64::MAX as u64, u64::MAX] {
            assert_eq!(from_cql_time(to_cql_time(ms)), ms);
        }
        assert_eq!(to_cql_time(1_750_000_000_000).0, 1_750_000_000_000);
    }

    #[test]
    fn ids_beyond_bigint_are_refused_and_negative_ones_are_corrupt() {
        assert_eq!(id(Snowflake(42)).expect("fits"), 42);
        assert!(matches!(
            id(Snowflake(u64::MAX)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(snowflake(-1), Err(StoreError::Corrupt(_))));
        assert_eq!(snowflake(7).expect("positive"), Snowflake(7));
    }

    #[test]
    fn names_round_trip() {
        for k in [
            MessageType::Text,
            MessageType::File,
            MessageType::VoiceNote,
            MessageType::System,
        ] {
            assert_eq!(kind(kind_name(k)).expect("kind"), k);
        }
        assert!(kind("video").is_err());
        assert_eq!(role(Role::Admin.as_str()).expect("role"), Role::Admin);
        assert!(role("owner").is_err());
        assert_eq!(
            bucket(Snowflake(u64::MAX)),
            bucket_of(Snowflake(u64::MAX)) as i32
        );
    }
}
