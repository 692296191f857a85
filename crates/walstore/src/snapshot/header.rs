//! The snapshot header, checked against the file's bytes before anything else is read: the
//! preamble, every field's range, the file length, and the body's CRC (version 2) or the page
//! table's place (versions 3 and 4: each page is checked against its CRC in the table when
//! first read, and the table's own CRC by `Segment::verify`; FORMAT.md §5, §5.4).
//! Version 4 differs from 3 only inside entries (FORMAT.md §5.5).

use super::layout::{
    page_count, EntryLengths, BODY_CRC_AT, ENTRY_COUNT_AT, FILE_LEN_AT, FILTER_OFFSET_AT,
    FILTER_PROBES_AT, HEADER_CRC_AT, ID_AT, INDEX_ENTRY_BYTES, INDEX_OFFSET_AT, MAX_FILTER_PROBES,
    PAGE_TABLE_AT, RANGE_DELETES_AT, RANGE_DELETE_COUNT_AT, RESERVED3_AT, RESERVED_AT,
    SHARED_PREFIX_AT, SNAPSHOT_HEADER_BYTES, SNAPSHOT_MAGIC, SNAPSHOT_VERSION_PAGED,
    SNAPSHOT_VERSION_VARINT, SNAPSHOT_VERSION_WHOLE,
};
use crate::format::{
    check_preamble_of, crc32, read_u32, read_u64, PreambleError, MAX_KEY_BYTES,
    PREAMBLE_ALGORITHM_AT,
};

/// What a snapshot header says, checked against the file's bytes (FORMAT.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SnapshotHeader {
    pub(super) entry_count: usize,
    pub(super) index_offset: usize,
    pub(super) filter_offset: usize,
    pub(super) filter_probes: u32,
    pub(super) range_deletes_offset: usize,
    pub(super) range_delete_count: usize,
    pub(super) shared_prefix_len: usize,
    /// Where the body ends: the page table (versions 3, 4) or the file's end (version 2).
    pub(super) body_end: usize,
    /// Versions 3 and 4: a page table at `body_end`, whose place and length were checked
    /// here. Version 2: the body's CRC was checked here.
    pub(super) paged: bool,
    /// Versions 3 and 4: the page table's CRC as the header carries it (checked by
    /// `Segment::verify`, not by an open: a read checks each page against its entry in the
    /// table, which is how damage to the table is found too).
    pub(super) table_crc: u32,
    /// How the entries store their lengths (version 4: varints).
    pub(super) lengths: EntryLengths,
}

/// Why a snapshot header was refused: another format version, or damage at an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HeaderProblem {
    Unsupported(u32),
    Corrupt(usize, &'static str),
}

/// Checks the header of the snapshot file `bytes` (named for file `expected_id`) and the
/// body's CRC (version 2) or the page table's place (versions 3, 4); the entries are checked
/// by `Segment::validate_entries`, a paged body's pages as they are read. The checks run in a
/// fixed order, and the first that fails is the one reported.
pub(super) fn read_header(bytes: &[u8], expected_id: u64) -> Result<SnapshotHeader, HeaderProblem> {
    use HeaderProblem::Corrupt;
    let header = bytes
        .get(..SNAPSHOT_HEADER_BYTES)
        .ok_or(Corrupt(0, "snapshot shorter than its header"))?;
    let versions = SNAPSHOT_VERSION_WHOLE..=SNAPSHOT_VERSION_VARINT;
    let version = check_preamble_of(header, &SNAPSHOT_MAGIC, HEADER_CRC_AT, versions).map_err(
        |e| match e {
            PreambleError::Short => Corrupt(0, "snapshot shorter than its header"),
            PreambleError::BadMagic => Corrupt(0, "bad snapshot magic"),
            PreambleError::Version(found) => HeaderProblem::Unsupported(found),
            PreambleError::Checksum => Corrupt(0, "snapshot header checksum mismatch"),
            PreambleError::Algorithm(_) => {
                Corrupt(PREAMBLE_ALGORITHM_AT, "unknown checksum algorithm")
            }
        },
    )?;
    let paged = version >= SNAPSHOT_VERSION_PAGED;
    let (shared_prefix_len, body_end) = check_identity(header, bytes, expected_id, paged)?;
    check_layout(header, body_end, shared_prefix_len, version)
}

fn field(header: &[u8], at: usize) -> u64 {
    read_u64(header, at).unwrap_or(0)
}

fn word(header: &[u8], at: usize) -> u32 {
    read_u32(header, at).unwrap_or(0)
}

/// The header's fields that say which file this is and that its bytes are whole: the shared
/// prefix length's range, the reserved bytes, the file id, the file length and the body's
/// CRC (version 2) or the page table's place and length (versions 3 and 4, `paged`).
/// Returns the shared prefix length and where the body ends.
///
/// Not the page table's CRC: reading the whole table cost every open 4 bytes per 4 KiB page
/// of every run (1 MiB of table, and its page faults, per GiB of runs), and a read checks
/// each page it touches against its entry in the table, so a damaged entry is a mismatch
/// found by the first read of its page, as damage to the page itself is.
fn check_identity(
    header: &[u8],
    bytes: &[u8],
    expected_id: u64,
    paged: bool,
) -> Result<(usize, usize), HeaderProblem> {
    use HeaderProblem::Corrupt;
    let shared_prefix_len = word(header, SHARED_PREFIX_AT) as usize;
    if shared_prefix_len > MAX_KEY_BYTES {
        return Err(Corrupt(
            SHARED_PREFIX_AT,
            "shared key prefix length out of range",
        ));
    }
    let reserved = if paged { RESERVED3_AT } else { RESERVED_AT };
    if header[reserved..HEADER_CRC_AT].iter().any(|b| *b != 0) {
        return Err(Corrupt(
            RESERVED_AT,
            "non-zero reserved bytes in snapshot header",
        ));
    }
    if field(header, ID_AT) != expected_id {
        return Err(Corrupt(ID_AT, "snapshot file id differs from its name"));
    }
    if field(header, FILE_LEN_AT) != bytes.len() as u64 {
        return Err(Corrupt(
            FILE_LEN_AT,
            "snapshot length differs from its header",
        ));
    }
    if !paged {
        if crc32(&bytes[SNAPSHOT_HEADER_BYTES..]) != word(header, BODY_CRC_AT) {
            return Err(Corrupt(
                SNAPSHOT_HEADER_BYTES,
                "snapshot body checksum mismatch",
            ));
        }
        return Ok((shared_prefix_len, bytes.len()));
    }
    // The page table runs from its offset to the file's end: one CRC per page of the body.
    let table_at = field(header, PAGE_TABLE_AT);
    let table_fits = table_at >= SNAPSHOT_HEADER_BYTES as u64 && table_at <= bytes.len() as u64;
    let table_at = table_at as usize;
    if !table_fits || (bytes.len() - table_at) != 4 * page_count(table_at - SNAPSHOT_HEADER_BYTES) {
        return Err(Corrupt(PAGE_TABLE_AT, "snapshot page table out of range"));
    }
    Ok((shared_prefix_len, table_at))
}

/// The header's offsets and counts, checked to tile a body ending at `body_end`: entries,
/// index, filter, range deletions. `version` is the file's format version.
fn check_layout(
    header: &[u8],
    body_end: usize,
    shared_prefix_len: usize,
    version: u32,
) -> Result<SnapshotHeader, HeaderProblem> {
    use HeaderProblem::Corrupt;
    let file_len = body_end as u64;
    let (entry_count, index_offset) = (
        field(header, ENTRY_COUNT_AT),
        field(header, INDEX_OFFSET_AT),
    );
    let (filter_offset, range_deletes_offset) = (
        field(header, FILTER_OFFSET_AT),
        field(header, RANGE_DELETES_AT),
    );
    let range_delete_count = u64::from(word(header, RANGE_DELETE_COUNT_AT));
    let index_end = entry_count
        .checked_mul(INDEX_ENTRY_BYTES as u64)
        .and_then(|l| l.checked_add(index_offset));
    if (entry_count == 0 && range_delete_count == 0)
        || index_offset < SNAPSHOT_HEADER_BYTES as u64
        || index_end != Some(filter_offset)
    {
        return Err(Corrupt(
            ENTRY_COUNT_AT,
            "snapshot entry count or index offset out of range",
        ));
    }
    let probes = word(header, FILTER_PROBES_AT);
    let filter_ok = if entry_count == 0 {
        probes == 0 && range_deletes_offset == filter_offset
    } else {
        (1..=MAX_FILTER_PROBES).contains(&probes) && range_deletes_offset > filter_offset
    };
    if !filter_ok || range_deletes_offset > file_len {
        return Err(Corrupt(
            FILTER_OFFSET_AT,
            "snapshot filter offset or probe count out of range",
        ));
    }
    // All fit in usize: the file length bounds them, and the file is mapped.
    Ok(SnapshotHeader {
        entry_count: entry_count as usize,
        index_offset: index_offset as usize,
        filter_offset: filter_offset as usize,
        filter_probes: probes,
        range_deletes_offset: range_deletes_offset as usize,
        range_delete_count: range_delete_count as usize,
        shared_prefix_len,
        body_end,
        paged: version >= SNAPSHOT_VERSION_PAGED,
        table_crc: word(header, BODY_CRC_AT),
        lengths: EntryLengths::of_version(version),
    })
}
