//! The `feedfile` target: `FEED` files (FORMAT.md §10), decoded from raw bytes.

use super::common::bounded;
use std::path::Path;
use walstore::{Error, FeedState};

/// `feedfile` target: the input is a `FEED` file.
///
/// - Ok, `Corruption` (offset inside the file) or `UnsupportedFormat`, nothing else;
/// - an accepted file obeys FORMAT.md §10's rules (names of 1 to 128 bytes without control
///   characters, at most 1024 consumers and 4096 segments, segments in generation order with
///   contiguous transactions) and encodes back to a file that decodes to the same state;
/// - decoding allocates at most a small multiple of the input.
pub fn check(data: &[u8]) {
    let decoded = bounded("decode FEED", data.len(), 8, 1 << 16, || {
        FeedState::decode(data, Path::new("FEED"))
    });
    match decoded {
        Ok(state) => {
            assert!(state.consumers.len() <= 1024, "too many consumers accepted");
            for name in state.consumers.keys() {
                assert!(!name.is_empty() && name.len() <= 128, "bad name {name:?}");
                assert!(!name.chars().any(char::is_control), "bad name {name:?}");
            }
            assert!(state.segments.len() <= 4096, "too many segments accepted");
            for s in &state.segments {
                assert!(s.first_txn > 0 && s.first_txn <= s.last_txn, "{s:?}");
            }
            for pair in state.segments.windows(2) {
                assert!(pair[0].generation < pair[1].generation, "{pair:?}");
                assert_eq!(pair[0].last_txn + 1, pair[1].first_txn, "{pair:?}");
            }
            let again = FeedState::decode(&state.encode(), Path::new("FEED"))
                .expect("an accepted state encodes to a file that decodes");
            assert_eq!(again, state, "encoding changed the state");
        }
        Err(Error::Corruption { offset, .. }) => assert!(
            offset <= data.len() as u64,
            "corruption reported at offset {offset}, past the {} bytes of the file",
            data.len()
        ),
        Err(Error::UnsupportedFormat { found, .. }) => assert_ne!(found, 2),
        Err(other) => panic!("FEED decoding failed with an unexpected error: {other:?}"),
    }
}
