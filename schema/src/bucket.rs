//! Message-log partitions are (room id, time bucket). A bucket spans ten days, which keeps
//! every partition bounded however long a room lives.

use voiceflow_wire::Snowflake;

/// Length of a bucket in milliseconds (10 days).
pub const BUCKET_MS: u64 = 10 * 24 * 60 * 60 * 1000;

/// The bucket a message id falls in.
pub fn bucket_of(id: Snowflake) -> u32 {
    (id.timestamp_ms()
        .saturating_sub(voiceflow_wire::ids::EPOCH_MS)
        / BUCKET_MS) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ten_days_apart_are_in_consecutive_buckets() {
        let a = Snowflake::lower_bound_for(voiceflow_wire::ids::EPOCH_MS + 5);
        let b = Snowflake::lower_bound_for(voiceflow_wire::ids::EPOCH_MS + BUCKET_MS + 5);
        assert_eq!(bucket_of(a), 0);
        assert_eq!(bucket_of(b), 1);
    }
}
