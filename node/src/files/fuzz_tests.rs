//! Property (fuzz) tests of [`byte_range`], the parser of download `Range` headers: whatever
//! the header and the file length, the answer is the whole file, a non-empty part inside the
//! file, or unsatisfiable; and well-formed single ranges mean what RFC 9110 says.

use proptest::prelude::*;

use super::*;
use crate::fuzzing::config;

/// Headers built from the pieces of range syntax, and arbitrary text.
fn header() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        3 => (0u64..300).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => Just("18446744073709551616".to_owned()),
        1 => Just(String::new()),
        1 => "[-+ 0-9a-z]{0,4}",
    ];
    let spec =
        (number.clone(), "[-, ]{0,2}", number).prop_map(|(a, sep, b)| format!("{a}{sep}{b}"));
    prop_oneof![
        4 => ("[ ]{0,1}", "bytes=|Bytes=|bytes =|items=|", spec, "(,[0-9]{0,2}-[0-9]{0,2}){0,1}[ ]{0,1}")
            .prop_map(|(pad, unit, spec, more)| format!("{pad}{unit}{spec}{more}")),
        1 => "\\PC{0,24}",
    ]
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn any_range_header_is_whole_a_part_inside_the_file_or_unsatisfiable(
        header in header(),
        len in prop_oneof![0u64..300, any::<u64>()],
    ) {
        match byte_range(Some(&header), len) {
            ByteRange::Whole | ByteRange::Unsatisfiable => {}
            ByteRange::Part(range) => {
                prop_assert!(range.start < range.end, "{:?} is empty", range);
                prop_assert!(range.end <= len, "{:?} is past {}", range, len);
            }
        }
    }

    #[test]
    fn well_formed_ranges_follow_rfc_9110(first in 0u64..400, last in 0u64..400, len in 0u64..300) {
        let expected = if first >= len {
            ByteRange::Unsatisfiable
        } else if last < first {
            ByteRange::Whole
        } else {
            ByteRange::Part(first..(last + 1).min(len))
        };
        prop_assert_eq!(byte_range(Some(&format!("bytes={first}-{last}")), len), expected);
        let open = if first >= len { ByteRange::Unsatisfiable } else { ByteRange::Part(first..len) };
        prop_assert_eq!(byte_range(Some(&format!("bytes={first}-")), len), open);
        let suffix = if last == 0 || len == 0 {
            ByteRange::Unsatisfiable
        } else {
            ByteRange::Part(len.saturating_sub(last)..len)
        };
        prop_assert_eq!(byte_range(Some(&format!("bytes=-{last}")), len), suffix);
    }
}

/// The extremes of the arithmetic: `u64::MAX` as the last byte, the length and the suffix.
#[test]
fn ranges_at_the_u64_limits_do_not_overflow() {
    let max = u64::MAX;
    assert_eq!(
        byte_range(Some(&format!("bytes=0-{max}")), max),
        ByteRange::Part(0..max)
    );
    assert_eq!(
        byte_range(Some(&format!("bytes=-{max}")), 10),
        ByteRange::Part(0..10)
    );
    assert_eq!(
        byte_range(Some(&format!("bytes={max}-")), max),
        ByteRange::Unsatisfiable
    );
}
