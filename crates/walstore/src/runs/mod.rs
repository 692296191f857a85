//! The set of sorted runs has one owner: this module. It reads the manifest (with the rules
//! of an open, a reader and a holder of the writer lock, and salvage), maps its runs into
//! memory, persists every change to the set ([`apply`], the only writer of a store's
//! manifest, and [`create`] for a new one) and removes the files no manifest names.
//! Checkpoints and merges sit above it: they build a [`RunEdit`] and hand it to [`apply`].
//!
//! Invariant: the manifest is written only by [`write_manifest`] (temp file, fsync, rename,
//! directory fsync), and changed only under the writer lock.

mod edit;

pub(crate) use edit::{file_ids, RunEdit};

use crate::cases::Authority;
use crate::core::{Access, Core, MergeGuard, WriterGuard};
use crate::error::{Error, Result};
use crate::format::{parse_snapshot_name, snapshot_name, MANIFEST_NAME, MANIFEST_TMP_NAME};
use crate::manifest::Manifest;
use crate::options::RecoveryMode;
use crate::run::{self, SegmentSet};
use crate::snapshot::Segment;
use crate::storage::{OpenMode, Storage};
use crate::wal::WalHeader;
use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// The manifest as `access` may read it. `None`: a reader without the lock found none (a
/// checkpoint in another process is between its unlink and rename: look again). In salvage
/// mode a damaged manifest is replaced by what the WAL header says (RECOVERY.md O5).
pub(crate) fn read(core: &Core, access: Access<'_>) -> Result<Option<Manifest>> {
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    match Manifest::read(core.storage(), core.dir()) {
        Ok(Some(m)) => Ok(Some(m)),
        Ok(None) if access.authority() == Authority::Reader => Ok(None),
        Ok(None) => Err(missing_manifest(core)),
        Err(e) if salvage && e.is_corruption() => manifest_from_wal_header(core).map(Some),
        Err(e) => Err(e),
    }
}

/// The manifest, read under the writer lock: a store without one is damaged (it had one when
/// it was opened).
pub(crate) fn read_locked(core: &Core, guard: &WriterGuard) -> Result<Manifest> {
    read(core, Access::Writer(guard))?.ok_or_else(|| missing_manifest(core))
}

/// The manifest, read by the holder of the merge lock (without the writer lock: a manifest
/// is replaced by a rename, never missing).
pub(crate) fn read_merging(core: &Core, merging: &MergeGuard<'_>) -> Result<Manifest> {
    read(core, Access::Merger(merging))?.ok_or_else(|| missing_manifest(core))
}

fn missing_manifest(core: &Core) -> Error {
    Error::corruption(core.dir().join(MANIFEST_NAME), 0, "the MANIFEST is missing")
}

/// In salvage mode with a damaged manifest: generation, salt and base from the WAL header.
fn manifest_from_wal_header(core: &Core) -> Result<Manifest> {
    let path = core.wal().path();
    match WalHeader::read(core.wal().file()).map_err(|e| Error::io("read", path, e))? {
        Ok(h) => Ok(Manifest {
            generation: h.generation,
            salt: h.salt,
            base_txn: h.base_txn,
            next_file_id: u64::MAX,
            runs: Vec::new(),
        }),
        Err(e) => Err(Error::corruption(
            path,
            0,
            format!("manifest and WAL header both unusable: {e}"),
        )),
    }
}

/// Maps the runs `manifest` names, reusing the files `mapped` already maps. `None`: a file
/// is missing to a reader without the lock (a merge in another process removed it after its
/// manifest switch: look again). A missing file is corruption otherwise; in salvage mode a
/// damaged file is left out, and a run left with no file with it.
pub(crate) fn map(
    core: &Core,
    manifest: &Manifest,
    mapped: &[Arc<SegmentSet>],
    access: Access<'_>,
) -> Result<Option<Vec<Arc<SegmentSet>>>> {
    let salvage = core.opts().recovery == RecoveryMode::Salvage;
    let known = run::mapped_files(mapped);
    let faults = core.opts().faults;
    let mut runs = Vec::with_capacity(manifest.runs.len());
    for metas in &manifest.runs {
        let (mut segments, mut kept) = (Vec::new(), Vec::new());
        for meta in metas {
            let segment = match known.get(&meta.file_id) {
                Some(seg) => Arc::clone(seg),
                // A salvage open checks every page now, to leave a damaged file out whole
                // (a normal open checks each page at its first read, FORMAT.md §5.4).
                None => match Segment::open(core.storage(), core.dir(), meta).and_then(|seg| {
                    if salvage {
                        seg.verify_against(meta).map(|()| seg)
                    } else {
                        Ok(seg)
                    }
                }) {
                    Ok(seg) => Arc::new(seg),
                    Err(Error::Io { source, .. })
                        if source.kind() == io::ErrorKind::NotFound
                            && access.authority() == Authority::Reader =>
                    {
                        return Ok(None)
                    }
                    Err(e) if salvage && e.is_corruption() => continue,
                    Err(Error::Io { source, path, .. })
                        if source.kind() == io::ErrorKind::NotFound =>
                    {
                        return Err(Error::corruption(
                            path,
                            0,
                            "snapshot file named by the MANIFEST is missing",
                        ))
                    }
                    Err(e) => return Err(e),
                },
            };
            segments.push(segment);
            kept.push(meta.clone());
        }
        if !segments.is_empty() {
            runs.push(Arc::new(SegmentSet::new(segments, kept, faults)));
        }
    }
    Ok(Some(runs))
}

/// [`map`] under the writer lock, where every verdict is final.
pub(crate) fn map_locked(
    core: &Core,
    guard: &WriterGuard,
    manifest: &Manifest,
    mapped: &[Arc<SegmentSet>],
) -> Result<Vec<Arc<SegmentSet>>> {
    map(core, manifest, mapped, Access::Writer(guard))?.ok_or_else(|| {
        Error::corruption(core.dir(), 0, "store files changed under the writer lock")
    })
}

/// Persists `edit` applied to `base` (the manifest read under the same hold of the writer
/// lock) and returns the new manifest. The poison rule lives here: from the rename on, a
/// manifest that begins a new generation may be the durable one, so a failed write of it
/// poisons the handle (it cannot tell which generation is durable); an edit within the
/// generation names the same data either way and poisons nothing.
pub(crate) fn apply(
    core: &Core,
    guard: &WriterGuard,
    base: &Manifest,
    edit: &RunEdit,
) -> Result<Manifest> {
    core.assert_writer(guard);
    let edit = &*checkpoint_edit(core.opts().faults, edit);
    let next = edit
        .transform(base)
        .map_err(|detail| Error::corruption(core.dir().join(MANIFEST_NAME), 0, detail))?;
    let sync_dir = !core.opts().faults.skip_dir_fsync();
    if let Err(e) = write_manifest(core.storage(), core.dir(), &next, sync_dir) {
        if edit.changes_generation() {
            core.wal().poison("checkpoint manifest switch");
        }
        return Err(e);
    }
    Ok(next)
}

/// Writes the first manifest of a new store in `dir` (creation, a backup's copy), under
/// whatever makes `dir` this caller's alone.
pub(crate) fn create(storage: &dyn Storage, dir: &Path, manifest: &Manifest) -> Result<()> {
    write_manifest(storage, dir, manifest, true)
}

/// Replaces the manifest atomically: temp file, sync, rename, directory sync.
fn write_manifest(
    storage: &dyn Storage,
    dir: &Path,
    manifest: &Manifest,
    sync_dir: bool,
) -> Result<()> {
    let tmp = dir.join(MANIFEST_TMP_NAME);
    let path = dir.join(MANIFEST_NAME);
    let file = storage
        .open(&tmp, OpenMode::CreateTruncate)
        .map_err(|e| Error::io("create", &tmp, e))?;
    file.write_all_at(&manifest.encode(), 0)
        .map_err(|e| Error::io("write", &tmp, e))?;
    file.sync_all().map_err(|e| Error::io("fsync", &tmp, e))?;
    drop(file);
    storage
        .rename(&tmp, &path)
        .map_err(|e| Error::io("rename", &tmp, e))?;
    if sync_dir {
        storage
            .sync_dir(dir)
            .map_err(|e| Error::io("fsync directory", dir, e))?;
    }
    Ok(())
}

/// Removes snapshot files the manifest does not name, temporary files, and a stale
/// `MANIFEST.tmp`; returns how many it removed. Only the holder of both locks removes
/// anything: no merge and no checkpoint is then writing files the manifest does not name yet.
/// Failures are harmless (the files are removed next time) and ignored.
pub(crate) fn remove_orphans(core: &Core, guard: &WriterGuard, _merging: &MergeGuard<'_>) -> usize {
    let Ok(manifest) = read_locked(core, guard) else {
        return 0;
    };
    let storage = core.storage();
    let dir = core.dir();
    let Ok(names) = storage.list_dir(dir) else {
        return 0;
    };
    let live: HashSet<String> = manifest.files().map(|m| snapshot_name(m.file_id)).collect();
    let orphans: Vec<String> = names
        .into_iter()
        .filter(|name| {
            name == MANIFEST_TMP_NAME
                || (parse_snapshot_name(name).is_some() && !live.contains(name))
        })
        .collect();
    // The manifest that stopped naming them must be durable before they go: its rename's
    // directory fsync may have failed (a merge's switch does not poison).
    if orphans.is_empty() || storage.sync_dir(dir).is_err() {
        return 0;
    }
    orphans
        .iter()
        .filter(|name| storage.remove_file(&dir.join(name)).is_ok())
        .count()
}

/// `edit` as the engine applies it: with the broken variant `checkpoint_tail_run_below`, a
/// checkpoint that adds two runs (the tail run, then the first run) adds them in the other
/// order (`faults.rs`).
fn checkpoint_edit(
    faults: crate::faults::EngineFaults,
    edit: &RunEdit,
) -> std::borrow::Cow<'_, RunEdit> {
    match edit {
        RunEdit::NewGeneration { added, .. }
            if faults.checkpoint_tail_run_below() && added.len() == 2 =>
        {
            let mut swapped = edit.clone();
            if let RunEdit::NewGeneration { added, .. } = &mut swapped {
                added.reverse();
            }
            std::borrow::Cow::Owned(swapped)
        }
        _ => std::borrow::Cow::Borrowed(edit),
    }
}
