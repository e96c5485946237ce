//! Read markers: where each user read each room up to (`read_markers`, one partition per
//! user). Their statements are prepared with the event log's ([`super::events`]).

use scylla::value::CqlTimestamp;
use voiceflow_wire::Snowflake;

use super::Cql;
use super::codec::{from_cql_time, id, snowflake, to_cql_time};
use crate::model::ReadMarker;
use crate::store::StoreResult;

impl Cql {
    /// `put_read_marker`.
    pub(crate) async fn put_read_marker(&self, marker: &ReadMarker) -> StoreResult<()> {
        let values = (
            id(marker.user_id)?,
            id(marker.room_id)?,
            id(marker.message_id)?,
            to_cql_time(marker.at),
        );
        self.write("write read marker", &self.ev.marker_put, values)
            .await
    }

    /// `read_markers`.
    pub(crate) async fn read_markers(&self, user_id: Snowflake) -> StoreResult<Vec<ReadMarker>> {
        let Ok(user) = id(user_id) else {
            return Ok(Vec::new());
        };
        let rows: Vec<(i64, i64, CqlTimestamp)> = self
            .select_all("read read markers", &self.ev.markers_get, (user,))
            .await?;
        rows.into_iter()
            .map(|(room, message, at)| {
                Ok(ReadMarker {
                    user_id,
                    room_id: snowflake(room)?,
                    message_id: snowflake(message)?,
                    at: from_cql_time(at),
                })
            })
            .collect()
    }
}
