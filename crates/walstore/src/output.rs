//! Writing one sorted run: snapshot files of about the target size, written under temporary
//! names, synced, then renamed into place with one directory sync (FORMAT.md §5).
//!
//! Invariant: the run's range deletions go into its first file (a file of range deletions
//! alone when the run has no entry), so a run's files, in key order, carry them in order.

use crate::error::{Error, Result};
use crate::format::{snapshot_name, snapshot_tmp_name};
use crate::options::Options;
use crate::snapshot::{RangeDelete, SegmentMeta, SegmentWriter};
use crate::storage::{OpenMode, Storage};
use std::path::Path;

/// New snapshot files being written for one run, rolled over at the target size.
pub(crate) struct Output<'s> {
    storage: &'s dyn Storage,
    dir: &'s Path,
    faults: crate::faults::EngineFaults,
    pub(crate) next_id: u64,
    target: u64,
    current: Option<SegmentWriter>,
    /// Range deletions not written yet: they go into the first file.
    range_deletes: Vec<RangeDelete>,
    /// Files finished, under their temporary names.
    pub(crate) written: Vec<SegmentMeta>,
}

impl<'s> Output<'s> {
    /// An output in `dir` whose files take ids from `next_id` on.
    pub(crate) fn in_dir(
        storage: &'s dyn Storage,
        dir: &'s Path,
        opts: &Options,
        next_id: u64,
    ) -> Self {
        Output {
            storage,
            dir,
            faults: opts.faults,
            next_id,
            target: opts.segment_size_bytes_target,
            current: None,
            range_deletes: Vec::new(),
            written: Vec::new(),
        }
    }

    /// The directory the files go to.
    pub(crate) fn dir(&self) -> &Path {
        self.dir
    }

    /// Sets the run's range deletions (sorted, non-overlapping); call before the first `add`.
    pub(crate) fn set_range_deletes(&mut self, deletes: Vec<RangeDelete>) {
        debug_assert!(self.current.is_none() && self.written.is_empty());
        self.range_deletes = deletes;
    }

    fn open_file(&mut self) -> Result<&mut SegmentWriter> {
        let id = self.next_id;
        self.next_id += 1;
        let path = self.dir.join(snapshot_tmp_name(id));
        let mut writer = SegmentWriter::create(self.storage, path, id)?;
        writer.set_range_deletes(std::mem::take(&mut self.range_deletes));
        Ok(self.current.insert(writer))
    }

    /// Appends an entry (`None`: a tombstone); keys must arrive in strictly increasing order.
    pub(crate) fn add(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let writer = match self.current.take() {
            Some(w) => self.current.insert(w),
            None => self.open_file()?,
        };
        writer.add(key, value)?;
        if writer.body_bytes() >= self.target {
            self.finish_current()?;
        }
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        if let Some(writer) = self.current.take() {
            let sync = !self.faults.rename_snapshot_before_fsync();
            self.written.push(writer.finish(sync)?);
        }
        Ok(())
    }

    /// Finishes the last file (or writes the range deletions alone when nothing else was
    /// written), renames every file into place, then syncs the directory. Returns the run's
    /// files in key order.
    pub(crate) fn publish_files(&mut self) -> Result<Vec<SegmentMeta>> {
        if self.written.is_empty() && self.current.is_none() && !self.range_deletes.is_empty() {
            self.open_file()?;
        }
        self.finish_current()?;
        for meta in &self.written {
            let tmp = self.dir.join(snapshot_tmp_name(meta.file_id));
            let path = self.dir.join(snapshot_name(meta.file_id));
            self.storage
                .rename(&tmp, &path)
                .map_err(|e| Error::io("rename", &tmp, e))?;
            if self.faults.rename_snapshot_before_fsync() {
                let file = self
                    .storage
                    .open(&path, OpenMode::ReadWrite)
                    .map_err(|e| Error::io("open", &path, e))?;
                file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
            }
        }
        if !self.written.is_empty() && !self.faults.skip_dir_fsync() {
            self.storage
                .sync_dir(self.dir)
                .map_err(|e| Error::io("fsync directory", self.dir, e))?;
        }
        Ok(self.written.clone())
    }

    /// Writes one run: `entries` (in strictly increasing key order; `None`: a tombstone) and
    /// the run's range `deletes`, published ([`Output::publish_files`]). A `bottom` run (no
    /// older run exists) keeps neither tombstones nor range deletions: there is nothing left
    /// for them to hide. On failure the files written are removed (best effort).
    pub(crate) fn write_run<'e>(
        &mut self,
        entries: impl Iterator<Item = (&'e [u8], Option<&'e [u8]>)>,
        deletes: Vec<RangeDelete>,
        bottom: bool,
    ) -> Result<Vec<SegmentMeta>> {
        if !bottom {
            self.set_range_deletes(deletes);
        }
        let written = entries
            .filter(|(_, v)| v.is_some() || !bottom)
            .try_for_each(|(k, v)| self.add(k, v))
            .and_then(|()| self.publish_files());
        if written.is_err() {
            self.discard();
        }
        written
    }

    /// Best-effort removal of the files written, after a failure before they were installed.
    pub(crate) fn discard(&mut self) {
        self.current = None;
        for meta in &self.written {
            for name in [snapshot_tmp_name(meta.file_id), snapshot_name(meta.file_id)] {
                let _ = self.storage.remove_file(&self.dir.join(name));
            }
        }
    }
}
