//! The recovery cases of `docs/RECOVERY.md` as code: pure classifiers that map what was found
//! on disk to one labelled case, and that the code acting on them matches on. Each table row
//! of RECOVERY.md names its variant here; the tests walk every input combination and check
//! that each lands on exactly one case.
//!
//! Invariant: nothing here does I/O. Evidence that costs I/O to gather (a search of the log
//! for records of a salt, a look past the end of the log) is asked for through a callback,
//! only by the cases that need it.

use crate::wal::scan::Stop;
use crate::wal::{HeaderError, WalHeader};

/// What the manifest says the WAL header should say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) generation: u64,
    pub(crate) salt: u64,
    pub(crate) base_txn: u64,
}

/// The WAL header against the manifest (RECOVERY.md H1-H5, O6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderCase {
    /// H1: same generation, salt and base: read the log from its start.
    Current,
    /// H2: older than the manifest or not decodable, and no intact record of the manifest's
    /// salt in the log: the log of this generation is empty; under the lock the header is
    /// rewritten.
    LaggingEmpty,
    /// H3: older or not decodable, and intact records of the manifest's salt exist: read them
    /// with the manifest's generation, salt and base; under the lock, once the log checked out,
    /// rewrite the header.
    LaggingWithRecords,
    /// H4 without the writer lock: a checkpoint in another process is between its manifest and
    /// its WAL reset; load again.
    NewerInFlight,
    /// H4 under the writer lock (or after every retry): corruption.
    NewerThanManifest,
    /// H5: the same generation with another salt or base: corruption.
    Disagrees,
    /// O6: another format version: `UnsupportedFormat`.
    Unsupported(u32),
}

/// Classifies the WAL header against the manifest. `locked`: the caller holds the writer lock
/// (its verdict is final). `records_of_salt` is asked only for a lagging header.
pub(crate) fn classify_header<E>(
    header: Result<WalHeader, HeaderError>,
    expected: Expected,
    locked: bool,
    records_of_salt: impl FnOnce() -> Result<bool, E>,
) -> Result<HeaderCase, E> {
    let lagging = match header {
        Err(HeaderError::Version(found)) => return Ok(HeaderCase::Unsupported(found)),
        Err(_) => true,
        Ok(h) if h.generation == expected.generation => {
            let same = h.salt == expected.salt && h.base_txn == expected.base_txn;
            return Ok(if same {
                HeaderCase::Current
            } else {
                HeaderCase::Disagrees
            });
        }
        Ok(h) if h.generation > expected.generation => {
            return Ok(if locked {
                HeaderCase::NewerThanManifest
            } else {
                HeaderCase::NewerInFlight
            });
        }
        Ok(_) => true,
    };
    debug_assert!(lagging);
    Ok(if records_of_salt()? {
        HeaderCase::LaggingWithRecords
    } else {
        HeaderCase::LaggingEmpty
    })
}

/// The authority of whoever looks at the end of the log (`core::Access` carries it; only a
/// holder of the writer lock, or a read-only handle that waited out every change, is
/// [`Authority::Final`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Authority {
    /// A reader catching up without the lock: files may change underneath; decides nothing.
    Reader,
    /// An open loading the whole log without the lock.
    Open,
    /// Verdicts are final: a holder of the writer lock (a writer's catch-up, a reload under
    /// the lock), or a read-only handle whose files kept changing until it stopped waiting.
    Final,
}

/// What a look past the end of the log found (`wal::scan::classify_tail`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PastEnd {
    /// No intact commit of this generation past the stop proves the stop durable.
    Unproven,
    /// A later intact commit's watermark lies past the stop: the bytes there were synced.
    Proven { offset: u64, detail: String },
}

/// The end of the log (RECOVERY.md L1-L5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TailCase {
    /// A catch-up without the lock, or under the lock at a stop that continues nothing:
    /// nothing is decided or repaired here.
    NotExamined,
    /// L1: end of file or zero-filled space, and nothing later proves it durable.
    CleanEnd,
    /// L2: a record of an earlier generation, and nothing later proves the stop durable.
    OlderGeneration,
    /// L3: bytes of this generation that do not continue the log and that nothing proves
    /// durable: a torn tail. `repair`: this caller zeroes it (under the lock, read-write).
    TornTail { repair: bool },
    /// L4 (and L5 when found without the lock: the load is redone under it before this is
    /// reported): damage to bytes a later commit proves durable.
    DurableDamage { offset: u64, detail: String },
    /// L4 in salvage mode: the transactions before the stop are served, read-only.
    SalvagedDamage,
}

/// How the end of the log is being looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TailLook {
    pub(crate) authority: Authority,
    /// A full load (open, or a reload under the lock) rather than a catch-up.
    pub(crate) whole_log: bool,
    /// The handle may write (not read-only, not salvage).
    pub(crate) writable: bool,
    pub(crate) salvage: bool,
}

/// Classifies where a scan stopped. A full load looks past every kind of stop, because a
/// zeroed stretch of synced records looks like a clean end until the commits after it are
/// seen; a catch-up under the lock looks past a damaged stop only; a catch-up without the lock
/// looks at nothing. `past_end` is asked only when the look is made.
pub(crate) fn classify_tail_case<E>(
    stop: &Stop,
    look: TailLook,
    past_end: impl FnOnce() -> Result<PastEnd, E>,
) -> Result<TailCase, E> {
    let damaged = matches!(stop, Stop::Damaged { .. });
    let examine = match look.authority {
        Authority::Reader => false,
        Authority::Open => true,
        Authority::Final => look.whole_log || damaged,
    };
    if !examine {
        return Ok(TailCase::NotExamined);
    }
    if let PastEnd::Proven { offset, detail } = past_end()? {
        return Ok(if look.salvage {
            TailCase::SalvagedDamage
        } else {
            let detail = match stop {
                Stop::Damaged { detail: why, .. } => format!("{why}; {detail}"),
                _ => detail,
            };
            TailCase::DurableDamage { offset, detail }
        });
    }
    Ok(match stop {
        Stop::Clean { .. } => TailCase::CleanEnd,
        Stop::Foreign { .. } => TailCase::OlderGeneration,
        Stop::Damaged { .. } => TailCase::TornTail {
            repair: look.authority == Authority::Final && look.writable,
        },
    })
}

/// Records of this generation past the end of the log, seen at open (RECOVERY.md L6, and L4
/// for proven damage found by the same look).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StaleCase {
    /// Nothing of this generation lies past the end.
    Nothing,
    /// L6: intact-looking records of this generation past the end, up to `dirty_end`: zeroed
    /// and synced before anything is appended or rewritten.
    ZeroThrough { dirty_end: u64 },
    /// L4: a later commit proves bytes at the end durable.
    DurableDamage { offset: u64, detail: String },
}

/// Classifies what lies past the end of the log (`end`) at open, under the lock.
pub(crate) fn classify_stale(
    past_end: PastEnd,
    dirty_end: u64,
    end: u64,
    salvage: bool,
) -> StaleCase {
    match past_end {
        PastEnd::Proven { offset, detail } if !salvage => {
            StaleCase::DurableDamage { offset, detail }
        }
        _ if dirty_end > end => StaleCase::ZeroThrough { dirty_end },
        _ => StaleCase::Nothing,
    }
}

#[cfg(test)]
mod tests {
    //! Each classifier against a table written from RECOVERY.md's rows: for every input
    //! combination, exactly one row's condition holds, and the classifier returns that row.
    use super::*;
    use std::convert::Infallible;

    const EXPECTED: Expected = Expected {
        generation: 5,
        salt: 50,
        base_txn: 500,
    };

    fn header_inputs() -> Vec<Result<WalHeader, HeaderError>> {
        let mut inputs = Vec::new();
        for generation in [4, 5, 6] {
            for salt in [50, 51] {
                for base_txn in [500, 501] {
                    inputs.push(Ok(WalHeader::new(generation, salt, base_txn)));
                }
            }
        }
        inputs.extend([
            Err(HeaderError::Short),
            Err(HeaderError::Zero),
            Err(HeaderError::BadMagic),
            Err(HeaderError::Version(4)),
            Err(HeaderError::Algorithm(9)),
            Err(HeaderError::Checksum),
        ]);
        inputs
    }

    /// RECOVERY.md's header rows, as conditions on the inputs.
    fn header_rows(
        h: &Result<WalHeader, HeaderError>,
        locked: bool,
        records: bool,
    ) -> Vec<HeaderCase> {
        let e = EXPECTED;
        let lagging = match h {
            Ok(h) => h.generation < e.generation,
            Err(HeaderError::Version(_)) => false,
            Err(_) => true,
        };
        let rows = [
            (
                matches!(h, Ok(h) if h.generation == e.generation && h.salt == e.salt && h.base_txn == e.base_txn),
                HeaderCase::Current,
            ),
            (lagging && !records, HeaderCase::LaggingEmpty),
            (lagging && records, HeaderCase::LaggingWithRecords),
            (
                matches!(h, Ok(h) if h.generation > e.generation) && !locked,
                HeaderCase::NewerInFlight,
            ),
            (
                matches!(h, Ok(h) if h.generation > e.generation) && locked,
                HeaderCase::NewerThanManifest,
            ),
            (
                matches!(h, Ok(h) if h.generation == e.generation && (h.salt != e.salt || h.base_txn != e.base_txn)),
                HeaderCase::Disagrees,
            ),
            (
                matches!(h, Err(HeaderError::Version(4))),
                HeaderCase::Unsupported(4),
            ),
        ];
        rows.into_iter()
            .filter(|(hit, _)| *hit)
            .map(|(_, c)| c)
            .collect()
    }

    #[test]
    fn every_header_input_lands_on_exactly_one_case() {
        for h in header_inputs() {
            for locked in [false, true] {
                for records in [false, true] {
                    let rows = header_rows(&h, locked, records);
                    assert_eq!(rows.len(), 1, "{h:?} locked={locked} records={records}");
                    let got = classify_header(h, EXPECTED, locked, || Ok::<_, Infallible>(records));
                    assert_eq!(got, Ok(rows[0]), "{h:?} locked={locked} records={records}");
                }
            }
        }
    }

    #[test]
    fn the_log_is_searched_for_records_only_for_a_lagging_header() {
        for h in header_inputs() {
            let mut asked = false;
            let case = classify_header(h, EXPECTED, true, || {
                asked = true;
                Ok::<_, Infallible>(false)
            });
            let lagging = matches!(
                case,
                Ok(HeaderCase::LaggingEmpty | HeaderCase::LaggingWithRecords)
            );
            assert_eq!(asked, lagging, "{h:?}");
        }
    }

    fn stops() -> Vec<Stop> {
        vec![
            Stop::Clean { offset: 100 },
            Stop::Foreign { offset: 100 },
            Stop::Damaged {
                offset: 100,
                detail: "bad CRC".into(),
            },
        ]
    }

    fn looks() -> Vec<TailLook> {
        let mut looks = Vec::new();
        for authority in [Authority::Reader, Authority::Open, Authority::Final] {
            for whole_log in [false, true] {
                for writable in [false, true] {
                    for salvage in [false, true] {
                        looks.push(TailLook {
                            authority,
                            whole_log,
                            writable,
                            salvage,
                        });
                    }
                }
            }
        }
        looks
    }

    /// RECOVERY.md's rows for the end of the log, as conditions on the inputs.
    fn tail_rows(stop: &Stop, look: TailLook, proven: bool) -> Vec<&'static str> {
        let damaged = matches!(stop, Stop::Damaged { .. });
        let examined = match look.authority {
            Authority::Reader => false,
            Authority::Open => true,
            Authority::Final => look.whole_log || damaged,
        };
        let rows = [
            (!examined, "NotExamined"),
            (
                examined && !proven && matches!(stop, Stop::Clean { .. }),
                "CleanEnd",
            ),
            (
                examined && !proven && matches!(stop, Stop::Foreign { .. }),
                "OlderGeneration",
            ),
            (examined && !proven && damaged, "TornTail"),
            (examined && proven && !look.salvage, "DurableDamage"),
            (examined && proven && look.salvage, "SalvagedDamage"),
        ];
        rows.into_iter()
            .filter(|(hit, _)| *hit)
            .map(|(_, c)| c)
            .collect()
    }

    fn label(case: &TailCase) -> &'static str {
        match case {
            TailCase::NotExamined => "NotExamined",
            TailCase::CleanEnd => "CleanEnd",
            TailCase::OlderGeneration => "OlderGeneration",
            TailCase::TornTail { .. } => "TornTail",
            TailCase::DurableDamage { .. } => "DurableDamage",
            TailCase::SalvagedDamage => "SalvagedDamage",
        }
    }

    #[test]
    fn every_tail_input_lands_on_exactly_one_case() {
        for stop in stops() {
            for look in looks() {
                for proven in [false, true] {
                    let rows = tail_rows(&stop, look, proven);
                    assert_eq!(rows.len(), 1, "{stop:?} {look:?} proven={proven}");
                    let past_end = || {
                        Ok::<_, Infallible>(if proven {
                            PastEnd::Proven {
                                offset: 100,
                                detail: "later commit".into(),
                            }
                        } else {
                            PastEnd::Unproven
                        })
                    };
                    let case = classify_tail_case(&stop, look, past_end).expect("infallible");
                    assert_eq!(label(&case), rows[0], "{stop:?} {look:?} proven={proven}");
                    if let TailCase::TornTail { repair } = case {
                        let may_repair = look.authority == Authority::Final && look.writable;
                        assert_eq!(repair, may_repair, "{look:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn every_stale_input_lands_on_exactly_one_case() {
        for proven in [false, true] {
            for dirty_end in [90, 100, 200] {
                for salvage in [false, true] {
                    let past_end = if proven {
                        PastEnd::Proven {
                            offset: 100,
                            detail: "later commit".into(),
                        }
                    } else {
                        PastEnd::Unproven
                    };
                    let rows = [
                        (proven && !salvage, "DurableDamage"),
                        ((!proven || salvage) && dirty_end > 100, "ZeroThrough"),
                        ((!proven || salvage) && dirty_end <= 100, "Nothing"),
                    ];
                    let hits: Vec<_> = rows.iter().filter(|(hit, _)| *hit).collect();
                    assert_eq!(hits.len(), 1);
                    let got = match classify_stale(past_end, dirty_end, 100, salvage) {
                        StaleCase::Nothing => "Nothing",
                        StaleCase::ZeroThrough { dirty_end: d } => {
                            assert_eq!(d, dirty_end);
                            "ZeroThrough"
                        }
                        StaleCase::DurableDamage { .. } => "DurableDamage",
                    };
                    assert_eq!(got, hits[0].1, "proven={proven} dirty_end={dirty_end}");
                }
            }
        }
    }
}
