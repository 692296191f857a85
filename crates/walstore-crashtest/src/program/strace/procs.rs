//! The processes of a traced tree and their descriptor tables, as the kernel keeps them: a
//! descriptor names an open file description (offset, `O_APPEND`) that `dup` and inheritance
//! share; `fork` copies the table (the copies share the descriptions), `clone(CLONE_FILES)` (a
//! thread) shares the table itself, `clone(CLONE_FS)` shares the working directory; `execve`
//! closes the close-on-exec descriptors.

use std::collections::HashMap;
use std::path::PathBuf;

/// An open file description.
#[derive(Debug, Clone, Default)]
pub struct Description {
    /// Where the next `write`/`read` goes.
    pub offset: u64,
    /// `O_APPEND`: every write goes to the end.
    pub append: bool,
    /// A file without a name (`O_TMPFILE`): its number in the recorder's table.
    pub anonymous: Option<u64>,
    /// The path it was opened under.
    pub path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    description: u64,
    cloexec: bool,
}

#[derive(Debug, Clone, Copy)]
struct Process {
    table: u64,
    fs: u64,
}

/// Every process seen, by the id strace prints.
#[derive(Debug)]
pub struct Procs {
    descriptions: HashMap<u64, Description>,
    tables: HashMap<u64, HashMap<i64, Slot>>,
    cwds: HashMap<u64, PathBuf>,
    procs: HashMap<String, Process>,
    /// `clone` calls not yet returned: (parent, flags). strace may print a child's first call
    /// before its parent's `clone` returns.
    cloning: Vec<(String, String)>,
    initial_cwd: PathBuf,
    next_id: u64,
}

impl Procs {
    /// No process yet; the first one seen works in `cwd`.
    pub fn new(cwd: PathBuf) -> Self {
        Procs {
            descriptions: HashMap::new(),
            tables: HashMap::new(),
            cwds: HashMap::new(),
            procs: HashMap::new(),
            cloning: Vec::new(),
            initial_cwd: cwd,
            next_id: 0,
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The process, created on first sight: as the child of an unfinished `clone` if there is
    /// one, else as a new root.
    fn process(&mut self, pid: &str) -> Process {
        if let Some(p) = self.procs.get(pid) {
            return *p;
        }
        if let Some((parent, flags)) = self.cloning.pop() {
            self.fork(&parent, pid, &flags);
        } else {
            let (table, fs) = (self.id(), self.id());
            self.tables.insert(table, HashMap::new());
            self.cwds.insert(fs, self.initial_cwd.clone());
            self.procs.insert(pid.to_string(), Process { table, fs });
        }
        self.procs[pid]
    }

    /// A `clone`/`fork` of `parent` began (its flags as printed) and has not returned yet.
    pub fn clone_started(&mut self, parent: &str, flags: &str) {
        self.process(parent);
        self.cloning.push((parent.to_string(), flags.to_string()));
    }

    /// A `clone`/`fork` of `parent` failed.
    pub fn clone_failed(&mut self, parent: &str) {
        if let Some(i) = self.cloning.iter().rposition(|(p, _)| p == parent) {
            self.cloning.remove(i);
        }
    }

    /// `parent` made `child` with `flags` (`clone` flags as printed; empty for `fork`).
    pub fn fork(&mut self, parent: &str, child: &str, flags: &str) {
        if let Some(i) = self.cloning.iter().rposition(|(p, _)| p == parent) {
            self.cloning.remove(i);
        }
        if self.procs.contains_key(child) {
            return; // seen already (its first call came before the clone returned)
        }
        let p = self.process(parent);
        let table = if flags.contains("CLONE_FILES") {
            p.table
        } else {
            let copy = self.tables.get(&p.table).cloned().unwrap_or_default();
            let id = self.id();
            self.tables.insert(id, copy);
            id
        };
        let fs = if flags.contains("CLONE_FS") {
            p.fs
        } else {
            let cwd = self.cwds.get(&p.fs).cloned().unwrap_or_default();
            let id = self.id();
            self.cwds.insert(id, cwd);
            id
        };
        self.procs.insert(child.to_string(), Process { table, fs });
    }

    /// A successful `execve`: close-on-exec descriptors are closed.
    pub fn exec(&mut self, pid: &str) {
        let p = self.process(pid);
        if let Some(t) = self.tables.get_mut(&p.table) {
            t.retain(|_, s| !s.cloexec);
        }
    }

    /// The working directory.
    pub fn cwd(&mut self, pid: &str) -> PathBuf {
        let p = self.process(pid);
        self.cwds.get(&p.fs).cloned().unwrap_or_default()
    }

    /// `chdir`, `fchdir`.
    pub fn chdir(&mut self, pid: &str, dir: PathBuf) {
        let p = self.process(pid);
        self.cwds.insert(p.fs, dir);
    }

    /// `fd` now names a new open file description.
    pub fn open(&mut self, pid: &str, fd: i64, description: Description, cloexec: bool) {
        let p = self.process(pid);
        let id = self.id();
        self.descriptions.insert(id, description);
        self.tables.entry(p.table).or_default().insert(
            fd,
            Slot {
                description: id,
                cloexec,
            },
        );
    }

    /// `close`.
    pub fn close(&mut self, pid: &str, fd: i64) {
        let p = self.process(pid);
        if let Some(t) = self.tables.get_mut(&p.table) {
            t.remove(&fd);
        }
    }

    /// `dup`, `dup2`, `dup3`, `fcntl(F_DUPFD)`: `new` shares `old`'s description.
    pub fn dup(&mut self, pid: &str, old: i64, new: i64, cloexec: bool) {
        let p = self.process(pid);
        let Some(t) = self.tables.get_mut(&p.table) else {
            return;
        };
        match t.get(&old).copied() {
            Some(slot) => {
                t.insert(
                    new,
                    Slot {
                        description: slot.description,
                        cloexec,
                    },
                );
            }
            None => {
                t.remove(&new);
            }
        }
    }

    /// `close_range(first, last, flags)`: closed, or marked close-on-exec.
    pub fn close_range(&mut self, pid: &str, first: i64, last: i64, cloexec_only: bool) {
        let p = self.process(pid);
        if let Some(t) = self.tables.get_mut(&p.table) {
            if cloexec_only {
                for (_, slot) in t.iter_mut().filter(|(fd, _)| (first..=last).contains(*fd)) {
                    slot.cloexec = true;
                }
            } else {
                t.retain(|fd, _| !(first..=last).contains(fd));
            }
        }
    }

    /// `fcntl(F_SETFD)`.
    pub fn set_cloexec(&mut self, pid: &str, fd: i64, cloexec: bool) {
        let p = self.process(pid);
        if let Some(slot) = self.tables.get_mut(&p.table).and_then(|t| t.get_mut(&fd)) {
            slot.cloexec = cloexec;
        }
    }

    /// The description `fd` names in `pid`, if the recorder saw it opened.
    pub fn description(&mut self, pid: &str, fd: i64) -> Option<&mut Description> {
        let p = self.process(pid);
        let slot = self.tables.get(&p.table)?.get(&fd)?;
        self.descriptions.get_mut(&slot.description)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_shares_offsets_but_not_later_descriptors() {
        let mut p = Procs::new(PathBuf::from("/"));
        p.open("1", 3, Description::default(), false);
        p.fork("1", "2", "flags=SIGCHLD");
        p.description("2", 3).expect("inherited").offset = 7;
        assert_eq!(p.description("1", 3).expect("the parent's").offset, 7);
        p.open("2", 4, Description::default(), false);
        assert!(p.description("1", 4).is_none());
        p.open("1", 4, Description::default(), false);
        p.description("1", 4).expect("the parent's own").offset = 1;
        assert_eq!(p.description("2", 4).expect("the child's own").offset, 0);
    }

    #[test]
    fn threads_share_the_table_and_the_working_directory() {
        let mut p = Procs::new(PathBuf::from("/"));
        p.clone_started("1", "flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_THREAD");
        // The thread's first call is printed before the clone returns.
        p.open("2", 5, Description::default(), false);
        p.fork("1", "2", "ignored: seen already");
        assert!(p.description("1", 5).is_some());
        p.chdir("1", PathBuf::from("/x"));
        assert_eq!(p.cwd("2"), PathBuf::from("/x"));
    }

    #[test]
    fn exec_closes_close_on_exec_descriptors() {
        let mut p = Procs::new(PathBuf::from("/"));
        p.open("1", 3, Description::default(), true);
        p.open("1", 4, Description::default(), false);
        p.exec("1");
        assert!(p.description("1", 3).is_none());
        assert!(p.description("1", 4).is_some());
    }
}
