//! Property (fuzz) tests of the conversions of values read back from the CQL server: ids,
//! times, message kinds and roles. Whatever the server returns is a value or a
//! [`StoreError::Corrupt`], never a panic.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::config;

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn bigints_are_ids_or_corrupt(raw in any::<i64>()) {
        match snowflake(raw) {
            Ok(parsed) => prop_assert_eq!(id(parsed).expect("fits"), raw),
            Err(e) => {
                prop_assert!(raw < 0);
                prop_assert!(matches!(e, StoreError::Corrupt(_)));
            }
        }
    }

    #[test]
    fn ids_are_bigints_or_refused(n in any::<u64>()) {
        match id(Snowflake(n)) {
            Ok(raw) => prop_assert_eq!(snowflake(raw).expect("positive"), Snowflake(n)),
            Err(e) => {
                prop_assert!(n > i64::MAX as u64);
                prop_assert!(matches!(e, StoreError::Corrupt(_)));
            }
        }
        let _ = bucket(Snowflake(n));
    }

    #[test]
    fn timestamps_round_trip_bit_for_bit(raw in any::<i64>(), ms in any::<u64>()) {
        prop_assert_eq!(to_cql_time(from_cql_time(CqlTimestamp(raw))).0, raw);
        prop_assert_eq!(from_cql_time(to_cql_time(ms)), ms);
    }

    #[test]
    fn names_read_back_are_known_or_corrupt(name in "text|file|voice_note|system|admin|member|\\PC{0,12}") {
        match kind(&name) {
            Ok(k) => prop_assert_eq!(kind_name(k), name.as_str()),
            Err(e) => prop_assert!(matches!(e, StoreError::Corrupt(_))),
        }
        match role(&name) {
            Ok(r) => prop_assert_eq!(r.as_str(), name.as_str()),
            Err(e) => prop_assert!(matches!(e, StoreError::Corrupt(_))),
        }
    }
}
