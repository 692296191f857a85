//! The `logindex` target: a log index file (FORMAT.md §9), read with every reader the engine
//! has (`walstore::inspect::decode_log_index`): damage must be an error, never a panic, a walk
//! without end or an allocation larger than the file.

/// Where the input's bytes go in the file: the first [`HEADER_PART`] bytes are the header's
/// words and the head's pointers, the rest starts where nodes start (4096), so that small
/// inputs reach the nodes.
const HEADER_PART: usize = 176;
const NODES_AT: usize = 4096;

/// The file an input stands for.
pub fn file_of(data: &[u8]) -> Vec<u8> {
    let (head, nodes) = data.split_at(data.len().min(HEADER_PART));
    let mut file = head.to_vec();
    if !nodes.is_empty() {
        file.resize(NODES_AT, 0);
        file.extend_from_slice(nodes);
    }
    file
}

pub fn check(data: &[u8]) {
    let file = file_of(data);
    if let Ok(entries) = walstore::inspect::decode_log_index(&file) {
        let bytes: usize = entries
            .iter()
            .map(|(k, v)| k.len() + v.as_ref().map_or(0, Vec::len))
            .sum();
        // Every key and value is a slice of a node of the file; a walk visits each node at
        // most `MAX_HEIGHT + 1` times per entry counted.
        assert!(entries.len() <= 13 * (file.len() / 24 + 1));
        assert!(bytes <= entries.len().saturating_mul(file.len()));
    }
}
