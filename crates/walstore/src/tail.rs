//! The end of the log after a scan (RECOVERY.md L1-L5): what it means, and what is done
//! about it. The verdict is [`classify_tail_case`]'s; this module gathers its evidence and
//! acts on it.

use crate::cases::{classify_tail_case, PastEnd, TailCase, TailLook};
use crate::core::{Access, Core};
use crate::error::{Error, Result};
use crate::options::RecoveryMode;
use crate::version::Version;
use crate::wal::scan::{classify_tail, ReadConfig, ScanEnd};

/// Decides what the end of the log means (RECOVERY.md L1-L5, [`classify_tail_case`]) and
/// acts on it: report corruption, or (holding the lock) zero and sync a torn tail so nothing
/// appended later can join it.
pub(crate) fn settle_tail(
    core: &Core,
    version: &Version,
    end: &ScanEnd,
    access: Access<'_>,
    whole_log: bool,
) -> Result<()> {
    let wal = core.wal().file();
    let path = core.wal().path();
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    let look = TailLook {
        authority: access.authority(),
        whole_log,
        writable: matches!(access, Access::Writer(_)) && !core.is_read_only(),
        salvage,
    };
    let mut seen = None;
    let case = classify_tail_case(&end.stop, look, || {
        let limit = wal.len().map_err(|e| Error::io("stat", path, e))?;
        let class = classify_tail(
            wal,
            limit,
            version.salt,
            version.last_txn + 1,
            end.stop.offset(),
            ReadConfig::of(core.opts()),
        )
        .map_err(|e| Error::io("read", path, e))?;
        seen = Some((limit, class.dirty_end));
        Ok::<_, Error>(match class.corruption {
            Some(_) if core.opts().faults.mid_log_damage_is_torn_tail() => PastEnd::Unproven,
            Some((offset, detail)) => PastEnd::Proven { offset, detail },
            None => PastEnd::Unproven,
        })
    })?;
    match case {
        TailCase::DurableDamage { offset, detail } => Err(Error::corruption(path, offset, detail)),
        TailCase::TornTail { repair: true } => {
            let (Some((limit, dirty_end)), Access::Writer(guard)) = (seen, access) else {
                unreachable!(
                    "a torn tail is repaired only by a writer, after the look past the end"
                )
            };
            core.assert_writer(guard);
            let zero_to = dirty_end
                .max(end.stop.offset() + 1)
                .next_multiple_of(4096)
                .min(limit);
            core.wal().zero_torn_tail(version.wal_end, zero_to)
        }
        TailCase::NotExamined
        | TailCase::CleanEnd
        | TailCase::OlderGeneration
        | TailCase::TornTail { repair: false }
        | TailCase::SalvagedDamage => Ok(()),
    }
}
