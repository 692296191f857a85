//! What the recorder knows of the files a traced program touches: the live bytes of every file
//! of the recorded directory, the bytes of files outside it that the program wrote from their
//! creation on (a file moved in later becomes a create with those bytes), the unnamed files of
//! `O_TMPFILE`, and what the program left outside the directory. Each change inside the
//! directory is emitted as an [`Op`].

use super::super::ops::{Op, Recording};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The largest file the recorder models.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Where a path lies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loc {
    /// In the recorded directory: the name relative to it (`""`: the directory).
    Inside(String),
    /// Elsewhere, a file whose state may matter.
    Outside(PathBuf),
    /// A pipe, socket, device, `/proc`, `/sys`, or an unlinked file.
    Ignored,
}

/// The source of bytes moved or linked into the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A named file.
    At(Loc),
    /// An `O_TMPFILE` file.
    Anonymous(u64),
}

/// A file outside the directory (or unnamed) that the program wrote.
#[derive(Debug, Clone, Default)]
struct Loose {
    /// Its bytes, when the recording saw all of them (created or truncated by the program).
    data: Option<Vec<u8>>,
    /// Synced since its last change.
    synced: bool,
}

/// The recorder's model.
#[derive(Debug, Default)]
pub struct Model {
    roots: Vec<PathBuf>,
    allowed: Vec<PathBuf>,
    inside: BTreeMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    outside: HashMap<PathBuf, Loose>,
    anonymous: HashMap<u64, Loose>,
    outside_dirs: BTreeSet<PathBuf>,
    outside_removed: BTreeSet<PathBuf>,
    mapped: BTreeSet<String>,
    /// The operations so far.
    pub out: Recording,
}

impl Model {
    /// The directory under its spellings (`roots`), its files and subdirectories before the
    /// run, and the paths outside whose changes are not state (`allowed`).
    pub fn new(
        roots: Vec<PathBuf>,
        allowed: Vec<PathBuf>,
        files: BTreeMap<String, Vec<u8>>,
        dirs: BTreeSet<String>,
    ) -> Self {
        Model {
            roots,
            allowed,
            inside: files,
            dirs,
            ..Model::default()
        }
    }

    /// Where `path` (absolute, normalised) lies.
    pub fn locate(&self, path: &Path) -> Loc {
        let text = path.to_string_lossy();
        if text.ends_with(" (deleted)") || !path.is_absolute() {
            return Loc::Ignored;
        }
        for root in &self.roots {
            if let Ok(rest) = path.strip_prefix(root) {
                return Loc::Inside(rest.to_string_lossy().into_owned());
            }
        }
        let special = ["/dev", "/proc", "/sys"];
        if special.iter().any(|s| path.starts_with(s)) {
            return Loc::Ignored;
        }
        // Allowed paths are followed too (a file there may be moved in later); they are only
        // left out of what the program left outside.
        Loc::Outside(path.to_path_buf())
    }

    /// Whether `rel` is the directory or one of its subdirectories.
    pub fn is_dir(&self, rel: &str) -> bool {
        rel.is_empty() || self.dirs.contains(rel)
    }

    /// A call inside the directory that is not modelled: the run cannot be judged.
    pub fn refuse(&mut self, what: String) {
        self.out.unmodelled.push(what);
    }

    /// `open`: creates (`O_CREAT` of a missing name, `O_EXCL`) or truncates (`O_TRUNC` for
    /// writing) a file.
    pub fn open(&mut self, loc: &Loc, create: bool, exclusive: bool, truncate: bool) {
        match loc {
            Loc::Inside(rel) if !self.is_dir(rel) => {
                if create && !self.inside.contains_key(rel) {
                    self.inside.insert(rel.clone(), Vec::new());
                    self.out.ops.push(Op::Create { path: rel.clone() });
                } else if truncate && self.inside.get(rel).is_some_and(|d| !d.is_empty()) {
                    self.truncate(&Source::At(loc.clone()), 0);
                }
            }
            Loc::Outside(p) => {
                let known = exclusive || truncate;
                if known {
                    self.outside.insert(p.clone(), Loose::new_empty());
                } else if create {
                    self.outside.entry(p.clone()).or_default();
                }
            }
            _ => {}
        }
    }

    /// A new `O_TMPFILE` file.
    pub fn open_anonymous(&mut self, id: u64) {
        self.anonymous.insert(id, Loose::new_empty());
    }

    /// The size of a file, if known.
    pub fn size(&self, source: &Source) -> Option<u64> {
        self.bytes(source).map(|b| b.len() as u64)
    }

    /// The bytes of a file, if known.
    pub fn bytes(&self, source: &Source) -> Option<&[u8]> {
        match source {
            Source::At(Loc::Inside(rel)) => self.inside.get(rel).map(Vec::as_slice),
            Source::At(Loc::Outside(p)) => self.outside.get(p)?.data.as_deref(),
            Source::Anonymous(id) => self.anonymous.get(id)?.data.as_deref(),
            Source::At(Loc::Ignored) => None,
        }
    }

    /// Bytes written at `offset`.
    pub fn write(&mut self, to: &Source, offset: u64, data: &[u8]) {
        if data.is_empty() || self.too_large(offset.saturating_add(data.len() as u64)) {
            return;
        }
        match to {
            Source::At(Loc::Inside(rel)) => {
                let file = self.inside.entry(rel.clone()).or_default();
                splice(file, offset, data);
                self.out.ops.push(Op::Write {
                    path: rel.clone(),
                    offset,
                    data: data.to_vec(),
                });
            }
            Source::At(Loc::Outside(p)) => {
                self.outside
                    .entry(p.clone())
                    .or_default()
                    .write(offset, data);
            }
            Source::Anonymous(id) => {
                self.anonymous.entry(*id).or_default().write(offset, data);
            }
            Source::At(Loc::Ignored) => {}
        }
    }

    /// A size change (`ftruncate`, `truncate`, `O_TRUNC`, `fallocate`).
    pub fn truncate(&mut self, of: &Source, len: u64) {
        if self.too_large(len) {
            return;
        }
        match of {
            Source::At(Loc::Inside(rel)) => {
                let file = self.inside.entry(rel.clone()).or_default();
                file.resize(to_len(len), 0);
                self.out.ops.push(Op::Truncate {
                    path: rel.clone(),
                    len,
                });
            }
            Source::At(Loc::Outside(p)) => {
                self.outside.entry(p.clone()).or_default().resize(len);
            }
            Source::Anonymous(id) => self.anonymous.entry(*id).or_default().resize(len),
            Source::At(Loc::Ignored) => {}
        }
    }

    /// Bytes the recording does not have were written into a file (`splice` from a pipe,
    /// `copy_file_range` from a file the program did not write): refused inside the
    /// directory, the file's bytes unknown from then on outside it.
    pub fn write_unknown(&mut self, to: &Source, what: &str) {
        match to {
            Source::At(Loc::Inside(rel)) => self.refuse(format!(
                "{what} into {rel}: bytes the recording does not have"
            )),
            Source::At(Loc::Outside(p)) => self.outside.entry(p.clone()).or_default().data = None,
            Source::Anonymous(id) => self.anonymous.entry(*id).or_default().data = None,
            Source::At(Loc::Ignored) => {}
        }
    }

    /// A file this large is not simulated (images live in memory): the run is refused.
    fn too_large(&mut self, end: u64) -> bool {
        if end <= MAX_FILE_BYTES {
            return false;
        }
        self.refuse(format!(
            "a write or size change to {end} bytes (files over {MAX_FILE_BYTES} bytes are not simulated)"
        ));
        true
    }

    /// `fsync`, `fdatasync`.
    pub fn fsync(&mut self, of: &Source, data_only: bool) {
        match of {
            Source::At(Loc::Inside(rel)) if self.is_dir(rel) => {
                self.out.ops.push(Op::DirFsync { path: rel.clone() });
            }
            Source::At(Loc::Inside(rel)) => self.out.ops.push(Op::Fsync {
                path: rel.clone(),
                data_only,
            }),
            Source::At(Loc::Outside(p)) => {
                if let Some(f) = self.outside.get_mut(p) {
                    f.synced = true;
                }
            }
            Source::Anonymous(id) => {
                if let Some(f) = self.anonymous.get_mut(id) {
                    f.synced = true;
                }
            }
            Source::At(Loc::Ignored) => {}
        }
    }

    /// `sync`, `syncfs`: every file durable.
    pub fn sync_all(&mut self) {
        for f in self.outside.values_mut().chain(self.anonymous.values_mut()) {
            f.synced = true;
        }
        self.out.ops.push(Op::SyncAll);
    }

    /// A rename.
    pub fn rename(&mut self, from: &Loc, to: &Loc) {
        match (from, to) {
            (Loc::Inside(f), Loc::Inside(t)) => {
                if self.is_dir(f) {
                    self.refuse(format!("rename of a directory: {f} -> {t}"));
                    return;
                }
                if let Some(data) = self.inside.remove(f) {
                    self.inside.insert(t.clone(), data);
                }
                self.out.ops.push(Op::Rename {
                    from: f.clone(),
                    to: t.clone(),
                });
            }
            (Loc::Inside(f), _) => {
                let data = self.inside.remove(f);
                self.out.ops.push(Op::Unlink { path: f.clone() });
                if let Loc::Outside(p) = to {
                    self.outside.insert(
                        p.clone(),
                        Loose {
                            data,
                            synced: false,
                        },
                    );
                }
            }
            (_, Loc::Inside(t)) => {
                let loose = match from {
                    Loc::Outside(p) => self.outside.remove(p),
                    _ => None,
                };
                self.move_in(&format!("rename {}", shown(from)), loose, t);
            }
            (Loc::Outside(f), _) => match self.outside.remove(f) {
                Some(l) => {
                    if let Loc::Outside(t) = to {
                        self.outside.insert(t.clone(), l);
                    }
                }
                None => {
                    self.outside_removed.insert(f.clone());
                }
            },
            (Loc::Ignored, _) => {}
        }
    }

    /// A hard link (`link`, `linkat`, `linkat` of an `O_TMPFILE` descriptor).
    pub fn link(&mut self, from: &Source, to: &Loc) {
        match (from, to) {
            (Source::At(Loc::Inside(f)), Loc::Inside(t)) => {
                if let Some(data) = self.inside.get(f).cloned() {
                    self.inside.insert(t.clone(), data);
                }
                self.out.ops.push(Op::Link {
                    from: f.clone(),
                    to: t.clone(),
                });
            }
            (_, Loc::Inside(t)) => {
                let loose = match from {
                    Source::At(Loc::Outside(p)) => self.outside.get(p).cloned(),
                    Source::Anonymous(id) => self.anonymous.remove(id),
                    _ => None,
                };
                self.move_in(&format!("link {}", shown_source(from)), loose, t);
            }
            (_, Loc::Outside(t)) => {
                let data = self.bytes(from).map(<[u8]>::to_vec);
                self.outside.insert(
                    t.clone(),
                    Loose {
                        data,
                        synced: false,
                    },
                );
            }
            (_, Loc::Ignored) => {}
        }
    }

    fn move_in(&mut self, what: &str, loose: Option<Loose>, to: &str) {
        match loose.and_then(|l| l.data.map(|d| (d, l.synced))) {
            Some((data, synced)) => {
                self.inside.insert(to.to_string(), data.clone());
                self.out.ops.push(Op::MoveIn {
                    path: to.to_string(),
                    data,
                    synced,
                });
            }
            None => self.refuse(format!(
                "{what} -> {to}: a file moved in from outside the directory whose bytes the \
                 recording does not have (not created or truncated by the program)"
            )),
        }
    }

    /// An unlink (or `rmdir` with `dir`).
    pub fn unlink(&mut self, loc: &Loc, dir: bool) {
        match loc {
            Loc::Inside(rel) if dir => {
                self.refuse(format!("rmdir {rel} (directories are kept in images)"));
            }
            Loc::Inside(rel) => {
                self.inside.remove(rel);
                self.out.ops.push(Op::Unlink { path: rel.clone() });
            }
            Loc::Outside(p) if dir => {
                if !self.outside_dirs.remove(p) {
                    self.outside_removed.insert(p.clone());
                }
            }
            Loc::Outside(p) => {
                if self.outside.remove(p).is_none() {
                    self.outside_removed.insert(p.clone());
                }
            }
            Loc::Ignored => {}
        }
    }

    /// `mkdir`.
    pub fn mkdir(&mut self, loc: &Loc) {
        match loc {
            Loc::Inside(rel) if !rel.is_empty() => {
                self.dirs.insert(rel.clone());
                self.out.ops.push(Op::Mkdir { path: rel.clone() });
            }
            Loc::Outside(p) => {
                self.outside_dirs.insert(p.clone());
            }
            _ => {}
        }
    }

    /// A writable shared mapping of a file: its bytes written through the map are not
    /// recorded; the file is shared memory, not state (see docs/CRASHTEST.md).
    pub fn mapped(&mut self, rel: &str) {
        self.mapped.insert(rel.to_string());
    }

    /// The recording, with what the program left outside the directory.
    pub fn finish(mut self) -> Recording {
        let mut outside: BTreeSet<String> = self
            .outside
            .keys()
            .chain(self.outside_dirs.iter())
            .chain(self.outside_removed.iter())
            .filter(|p| !self.allowed.iter().any(|a| p.starts_with(a)))
            .map(|p| p.display().to_string())
            .collect();
        self.out.outside.extend(std::mem::take(&mut outside));
        self.out.mapped = self.mapped.into_iter().collect();
        self.out
    }
}

impl Loose {
    fn new_empty() -> Self {
        Loose {
            data: Some(Vec::new()),
            synced: false,
        }
    }

    fn resize(&mut self, len: u64) {
        if let Some(d) = &mut self.data {
            d.resize(to_len(len), 0);
        }
        self.synced = false;
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(d) = &mut self.data {
            splice(d, offset, data);
        }
        self.synced = false;
    }
}

fn to_len(len: u64) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

fn splice(file: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let start = to_len(offset);
    let end = start.saturating_add(data.len());
    if file.len() < end {
        file.resize(end, 0);
    }
    file[start..end].copy_from_slice(data);
}

fn shown(loc: &Loc) -> String {
    match loc {
        Loc::Inside(rel) => rel.clone(),
        Loc::Outside(p) => p.display().to_string(),
        Loc::Ignored => "(an ignored path)".into(),
    }
}

fn shown_source(source: &Source) -> String {
    match source {
        Source::At(loc) => shown(loc),
        Source::Anonymous(_) => "(an O_TMPFILE file)".into(),
    }
}
