//! walstore's implementation of the harness's optional structural check hook
//! ([`StructuralCheck`]), on walstore's file knowledge in [`crate::layout`].

use super::api::StructuralCheck;
use crate::image::Image;
use crate::layout::{
    check_snapshot, is_snapshot_name, manifest_snapshot_ids, put_value_len_for, snapshot_name,
    MANIFEST,
};
use crate::oracle::{Invariant, Violation};
use crate::simfs::SimFs;
use std::path::Path;

/// walstore's structural check: the WAL is `wal`; the manifest and the snapshot files it
/// names must check out.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalstoreLayout;

impl StructuralCheck for WalstoreLayout {
    fn is_log(&self, name: &str) -> bool {
        name == "wal"
    }

    fn check_image(&self, image: &Image) -> Result<(), Violation> {
        check_final_names(image)
    }

    fn check_after_checkpoint(&self, fs: &SimFs, dir: &Path) -> Result<(), Violation> {
        check_directory(fs, dir)
    }

    fn is_checkpoint_file(&self, file: &Path, offset: u64, checkpoints_done: bool) -> bool {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
        // The manifest, the snapshot files and the WAL header (reset by checkpoints) are
        // what a checkpoint changes.
        name.as_deref() == Some(MANIFEST)
            || name.as_deref().is_some_and(is_snapshot_name)
            || (offset < 4096 && checkpoints_done)
    }

    fn probe_value_len(&self, key: &str, log_bytes: u64) -> Option<usize> {
        put_value_len_for(key, log_bytes)
    }
}

/// Files under their final names are complete: the manifest and every `snap-*.dat` check out.
/// The engine renames files into place only after syncing them, so no crash can leave a
/// final name on incomplete bytes.
fn check_final_names(image: &Image) -> Result<(), Violation> {
    for (path, bytes) in &image.files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let verdict = if name == MANIFEST {
            manifest_snapshot_ids(bytes).map(|_| ())
        } else if is_snapshot_name(&name) {
            check_snapshot(bytes)
        } else {
            Ok(())
        };
        if let Err(why) = verdict {
            return Err(Violation::new(
                Invariant::StructuralIntegrity,
                format!(
                    "after the crash {} exists under its final name but is incomplete: {why}",
                    path.display()
                ),
                "files are renamed into place only once durable",
                format!("{} bytes that do not check out", bytes.len()),
            ));
        }
    }
    Ok(())
}

/// After a checkpoint: no temporary file left, every snapshot file named by the manifest
/// exists and checks out, and no other snapshot file is left behind.
fn check_directory(fs: &SimFs, dir: &Path) -> Result<(), Violation> {
    let names = walstore::storage::Storage::list_dir(fs, dir).unwrap_or_default();
    let bad = |detail: String| {
        Violation::new(
            Invariant::StructuralIntegrity,
            detail,
            "after a checkpoint: LOCK, MANIFEST, wal and the snapshot files the manifest names",
            names.join(" "),
        )
    };
    let manifest = fs
        .read_live(&dir.join(MANIFEST))
        .ok_or_else(|| bad("no MANIFEST after a checkpoint".into()))?;
    let ids = manifest_snapshot_ids(&manifest).map_err(|e| bad(format!("MANIFEST: {e}")))?;
    let referenced: Vec<String> = ids.iter().map(|id| snapshot_name(*id)).collect();
    for name in &referenced {
        let bytes = fs
            .read_live(&dir.join(name))
            .ok_or_else(|| bad(format!("{name} is named by the manifest but missing")))?;
        check_snapshot(&bytes).map_err(|e| bad(format!("{name}: {e}")))?;
    }
    for name in &names {
        let stray =
            name.ends_with(".tmp") || (is_snapshot_name(name) && !referenced.contains(name));
        if stray {
            return Err(bad(format!("{name} is left behind after a checkpoint")));
        }
    }
    Ok(())
}
