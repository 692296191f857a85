//! Turns an `strace -f -xx -y` log into the [`Op`]s inside one directory.
//!
//! With `-xx` every string and every `-y` path annotation is hexadecimal (`"\x61"`,
//! `3<\x2f\x74>`), so no argument holds a quote, comma or bracket of its own and a line splits
//! at top-level commas (`syntax.rs`). With `-y` each descriptor argument names the file it
//! refers to *now* (after a rename, the new name), which is the name the operation is recorded
//! under. Write offsets are not in the log: each process has a table of descriptors naming open
//! file descriptions, as the kernel keeps them (`procs.rs`); the bytes of every file the
//! program touches are followed in `model.rs`, which emits the operations.
//!
//! Invariant: a call that changes the directory in a way the model does not follow is listed
//! in [`Recording::unmodelled`], and such a run is not judged.

use super::ops::{Op, Recording};
use model::{Loc, Model, Source};
use procs::{Description, Procs};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use syntax::{
    bracketed_number, decode_iov, decode_string, decode_text, fd_arg, join, normalize,
    parse_address, proc_fd, split_call, split_pid, Call,
};

mod model;
mod procs;
mod syntax;
pub use model::MAX_FILE_BYTES;
pub use syntax::truncated_string;

/// The system calls to trace (`-e trace=`).
pub const TRACED: &str = "open,openat,openat2,creat,write,pwrite64,writev,pwritev,pwritev2,\
read,readv,lseek,ftruncate,truncate,fallocate,rename,renameat,renameat2,unlink,unlinkat,mkdir,\
mkdirat,rmdir,fsync,fdatasync,sync,syncfs,close,close_range,dup,dup2,dup3,fcntl,chdir,fchdir,\
link,linkat,symlink,symlinkat,clone,clone3,fork,vfork,execve,execveat,copy_file_range,sendfile,\
splice,mmap,msync";

/// What the recorder is told before it reads the log.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The recorded directory under each of its spellings (absolute, canonical).
    pub roots: Vec<PathBuf>,
    /// Paths outside the directory whose changes are not the program's state.
    pub allowed: Vec<PathBuf>,
    /// The file the program's standard output goes to.
    pub stdout: PathBuf,
    /// The working directory the program starts in.
    pub cwd: PathBuf,
    /// The directory's files before the run (relative names).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Its subdirectories (relative names).
    pub dirs: BTreeSet<String>,
}

/// The parser's state.
#[derive(Debug)]
pub struct Parser {
    stdout: PathBuf,
    procs: Procs,
    model: Model,
    /// Writable shared maps of files of the directory: (address, length, name).
    maps: Vec<(u64, u64, String)>,
    next_anonymous: u64,
    unfinished: HashMap<String, String>,
    partial_line: Vec<u8>,
}

impl Parser {
    /// A parser for a program started as described by `setup`.
    pub fn new(setup: Setup) -> Self {
        Parser {
            stdout: setup.stdout,
            procs: Procs::new(setup.cwd),
            model: Model::new(setup.roots, setup.allowed, setup.files, setup.dirs),
            maps: Vec::new(),
            next_anonymous: 0,
            unfinished: HashMap::new(),
            partial_line: Vec::new(),
        }
    }

    /// Parses a whole log.
    pub fn parse_log(mut self, log: &str) -> Recording {
        for line in log.lines() {
            self.line(line);
        }
        if !self.partial_line.is_empty() {
            let line = String::from_utf8_lossy(&self.partial_line).into_owned();
            self.model.out.ops.push(Op::Stdout { line });
        }
        self.model.finish()
    }

    fn line(&mut self, raw: &str) {
        // `-f` with `-o`: "PID call(...)"; without `-o`: "[pid PID] call(...)".
        let (pid, rest) = split_pid(raw);
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            return;
        }
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            let head = head.trim_end().to_string();
            if ["clone", "clone3", "fork", "vfork"]
                .iter()
                .any(|c| head.starts_with(&format!("{c}(")))
            {
                self.procs.clone_started(pid, &head);
            }
            self.unfinished.insert(pid.to_string(), head);
            return;
        }
        let joined;
        let text = if let Some(after) = rest.strip_prefix("<... ") {
            let Some(pos) = after.find(" resumed>") else {
                return;
            };
            let tail = &after[pos + " resumed>".len()..];
            let Some(head) = self.unfinished.remove(pid) else {
                return;
            };
            joined = join(&head, tail);
            joined.as_str()
        } else {
            rest
        };
        if let Some(call) = split_call(text) {
            let pid = pid.to_string();
            self.call(&pid, &call);
        }
    }

    fn call(&mut self, pid: &str, c: &Call<'_>) {
        if c.ret.starts_with('-') || c.ret.starts_with('?') {
            if matches!(c.name, "clone" | "clone3" | "fork" | "vfork") {
                self.procs.clone_failed(pid);
            }
            return; // failed: no effect
        }
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        match c.name {
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" => self.write_call(pid, c),
            "read" | "readv" => self.read(pid, arg(0), c.ret),
            "lseek" => self.lseek(pid, arg(0), c.ret),
            "open" | "openat" | "openat2" | "creat" => self.open_call(pid, c),
            "close" | "close_range" | "dup" | "dup2" | "dup3" | "fcntl" => {
                self.descriptor_call(pid, c);
            }
            "clone" | "clone3" | "fork" | "vfork" | "execve" | "execveat" | "chdir" | "fchdir" => {
                self.process_call(pid, c)
            }
            _ => self.file_call(pid, c),
        }
    }

    /// Calls on names and files: truncation, allocation, syncs, renames, links, unlinks,
    /// directories, copies between descriptors, maps.
    fn file_call(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        match c.name {
            "ftruncate" => {
                let of = self.fd_source(pid, arg(0));
                if let Ok(len) = arg(1).parse() {
                    self.model.truncate(&of, len);
                }
            }
            "truncate" => {
                let loc = self.locate(pid, None, arg(0));
                if let Ok(len) = arg(1).parse() {
                    self.model.truncate(&Source::At(loc), len);
                }
            }
            "fallocate" => self.fallocate(pid, c),
            "fsync" | "fdatasync" => {
                let of = self.fd_source(pid, arg(0));
                self.model.fsync(&of, c.name == "fdatasync");
            }
            "sync" | "syncfs" => self.model.sync_all(),
            "copy_file_range" | "sendfile" | "splice" => self.transfer(pid, c),
            "mmap" => self.mmap(pid, c),
            "msync" => self.msync(arg(0)),
            _ => self.name_call(pid, c),
        }
    }

    fn name_call(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        match c.name {
            "rename" => self.rename(pid, None, arg(0), None, arg(1), ""),
            "renameat" => self.rename(pid, Some(arg(0)), arg(1), Some(arg(2)), arg(3), ""),
            "renameat2" => self.rename(pid, Some(arg(0)), arg(1), Some(arg(2)), arg(3), arg(4)),
            "link" => self.link(pid, None, arg(0), None, arg(1), ""),
            "linkat" => self.link(pid, Some(arg(0)), arg(1), Some(arg(2)), arg(3), arg(4)),
            "symlink" => self.symlink(pid, arg(0), None, arg(1)),
            "symlinkat" => self.symlink(pid, arg(0), Some(arg(1)), arg(2)),
            "unlink" => self.unlink(pid, None, arg(0), ""),
            "unlinkat" => self.unlink(pid, Some(arg(0)), arg(1), arg(2)),
            "rmdir" => self.unlink(pid, None, arg(0), "AT_REMOVEDIR"),
            "mkdir" => {
                let loc = self.locate(pid, None, arg(0));
                self.model.mkdir(&loc);
            }
            "mkdirat" => {
                let loc = self.locate(pid, Some(arg(0)), arg(1));
                self.model.mkdir(&loc);
            }
            _ => {}
        }
    }

    fn process_call(&mut self, pid: &str, c: &Call<'_>) {
        match c.name {
            "clone" | "clone3" | "fork" | "vfork" => {
                let flags = c.args.join(",");
                self.procs.fork(pid, c.ret.trim(), &flags);
            }
            "execve" | "execveat" => self.procs.exec(pid),
            "chdir" => {
                let dir = self.resolve(pid, None, c.args.first().copied().unwrap_or(""));
                self.procs.chdir(pid, dir);
            }
            _ => {
                // fchdir
                if let (_, Some(dir)) = fd_arg(c.args.first().copied().unwrap_or("")) {
                    self.procs.chdir(pid, normalize(&dir));
                }
            }
        }
    }

    fn descriptor_call(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        let fd = |text: &str| fd_arg(text).0;
        match (c.name, fd(arg(0))) {
            ("close", Some(old)) => self.procs.close(pid, old),
            ("close_range", _) => {
                if let (Ok(first), Ok(last)) = (arg(0).parse(), arg(1).parse::<u64>()) {
                    let last = i64::try_from(last).unwrap_or(i64::MAX);
                    let cloexec = arg(2).contains("CLOSE_RANGE_CLOEXEC");
                    self.procs.close_range(pid, first, last, cloexec);
                }
            }
            ("dup" | "dup2", Some(old)) => {
                if let Some(new) = fd(c.ret) {
                    self.procs.dup(pid, old, new, false);
                }
            }
            ("dup3", Some(old)) => {
                if let Some(new) = fd(c.ret) {
                    self.procs.dup(pid, old, new, arg(2).contains("O_CLOEXEC"));
                }
            }
            ("fcntl", Some(old)) => self.fcntl(pid, old, arg(1), arg(2), c.ret),
            _ => {}
        }
    }

    fn fcntl(&mut self, pid: &str, fd: i64, cmd: &str, value: &str, ret: &str) {
        if cmd.starts_with("F_DUPFD") {
            if let Some(new) = fd_arg(ret).0 {
                self.procs
                    .dup(pid, fd, new, cmd.starts_with("F_DUPFD_CLOEXEC"));
            }
        } else if cmd == "F_SETFD" {
            self.procs
                .set_cloexec(pid, fd, value.contains("FD_CLOEXEC"));
        }
    }

    fn open_call(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        let (dirfd, path, flags) = match c.name {
            "open" => (None, arg(0), arg(1)),
            "creat" => (None, arg(0), "O_CREAT|O_WRONLY|O_TRUNC"),
            _ => (Some(arg(0)), arg(1), arg(2)),
        };
        let (Some(fd), ret_path) = fd_arg(c.ret) else {
            return;
        };
        let cloexec = flags.contains("O_CLOEXEC");
        let append = flags.contains("O_APPEND");
        if flags.contains("O_TMPFILE") {
            self.next_anonymous += 1;
            let id = self.next_anonymous;
            self.model.open_anonymous(id);
            let description = Description {
                anonymous: Some(id),
                append,
                ..Description::default()
            };
            self.procs.open(pid, fd, description, cloexec);
            return;
        }
        let full = ret_path.map_or_else(|| self.resolve(pid, dirfd, path), |p| normalize(&p));
        let loc = self.model.locate(&full);
        let writable = flags.contains("O_WRONLY") || flags.contains("O_RDWR");
        let create = flags.contains("O_CREAT") && !flags.contains("O_DIRECTORY");
        let truncate = flags.contains("O_TRUNC") && writable;
        self.model
            .open(&loc, create, flags.contains("O_EXCL"), truncate);
        let description = Description {
            append,
            path: Some(full),
            ..Description::default()
        };
        self.procs.open(pid, fd, description, cloexec);
    }

    fn write_call(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        let (data, at) = match c.name {
            "write" => (decode_string(arg(1)), None),
            "pwrite64" => (decode_string(arg(1)), Some(arg(3).parse().unwrap_or(0))),
            "writev" => (decode_iov(arg(1)), None),
            _ => (decode_iov(arg(1)), Some(arg(3).parse().unwrap_or(0))),
        };
        let Ok(n) = c.ret.parse::<usize>() else {
            return;
        };
        let data = &data[..n.min(data.len())];
        if let (_, Some(path)) = fd_arg(arg(0)) {
            if path == self.stdout {
                self.stdout_bytes(data);
                return;
            }
        }
        let to = self.fd_source(pid, arg(0));
        let offset = self.advance(pid, arg(0), &to, at, n as u64);
        self.model.write(&to, offset, data);
    }

    /// Where a transfer of `n` bytes through a descriptor goes (`at`: an explicit offset,
    /// which leaves the descriptor's own alone), moving the descriptor's offset past it.
    /// `O_APPEND` writes go to the end of the file, `pwrite` too (Linux).
    fn advance(&mut self, pid: &str, fd_text: &str, file: &Source, at: Option<u64>, n: u64) -> u64 {
        let size = self.model.size(file);
        let Some(d) = fd_arg(fd_text)
            .0
            .and_then(|fd| self.procs.description(pid, fd))
        else {
            return at.unwrap_or(0);
        };
        if d.append {
            let end = size.unwrap_or(d.offset);
            d.offset = end + n;
            return end;
        }
        match at {
            Some(off) => off,
            None => {
                let off = d.offset;
                d.offset += n;
                off
            }
        }
    }

    fn read(&mut self, pid: &str, fd_text: &str, ret: &str) {
        if let (Some(fd), Ok(n)) = (fd_arg(fd_text).0, ret.parse::<u64>()) {
            if let Some(d) = self.procs.description(pid, fd) {
                d.offset += n;
            }
        }
    }

    fn lseek(&mut self, pid: &str, fd_text: &str, ret: &str) {
        if let (Some(fd), Ok(n)) = (fd_arg(fd_text).0, ret.parse::<u64>()) {
            if let Some(d) = self.procs.description(pid, fd) {
                d.offset = n;
            }
        }
    }

    /// `fallocate(fd, mode, offset, len)`: plain allocation extends the size (zeros), a hole
    /// punched or a range zeroed writes zeros; the other modes are refused.
    fn fallocate(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        let file = self.fd_source(pid, arg(0));
        let (Ok(offset), Ok(len)) = (arg(2).parse::<u64>(), arg(3).parse::<u64>()) else {
            return;
        };
        let mode = arg(1);
        let size = self.model.size(&file).unwrap_or(0);
        let end = offset.saturating_add(len);
        let keep_size = mode.contains("FALLOC_FL_KEEP_SIZE");
        if mode == "0" || mode == "FALLOC_FL_KEEP_SIZE" {
            if !keep_size && end > size {
                self.model.truncate(&file, end);
            }
        } else if mode.contains("FALLOC_FL_PUNCH_HOLE") || mode.contains("FALLOC_FL_ZERO_RANGE") {
            let stop = if keep_size { end.min(size) } else { end };
            if stop > offset && stop - offset <= MAX_FILE_BYTES {
                let zeros = vec![0; usize::try_from(stop - offset).unwrap_or(0)];
                self.model.write(&file, offset, &zeros);
            }
        } else if matches!(file, Source::At(Loc::Inside(_))) {
            let text = decode_text(&c.args.join(", "));
            self.model.refuse(format!("fallocate({text})"));
        }
    }

    /// `copy_file_range(in, off_in, out, off_out, len, flags)`, `sendfile(out, in, off, n)`,
    /// `splice(in, off_in, out, off_out, len, flags)`: a write of the source's bytes.
    fn transfer(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        let Ok(n) = c.ret.parse::<u64>() else { return };
        let (input, in_off, output, out_off) = match c.name {
            "sendfile" => (arg(1), arg(2), arg(0), "NULL"),
            _ => (arg(0), arg(1), arg(2), arg(3)),
        };
        let from = self.fd_source(pid, input);
        let to = self.fd_source(pid, output);
        let start = self.advance(
            pid,
            input,
            &Source::At(Loc::Ignored),
            bracketed_number(in_off),
            n,
        );
        let at = self.advance(pid, output, &to, bracketed_number(out_off), n);
        let bytes = self.model.bytes(&from).and_then(|b| {
            let s = usize::try_from(start).ok()?;
            let e = s.checked_add(usize::try_from(n).ok()?)?;
            b.get(s..e).map(<[u8]>::to_vec)
        });
        match bytes {
            Some(data) => self.model.write(&to, at, &data),
            None => self.model.write_unknown(&to, c.name),
        }
    }

    /// `mmap(addr, len, prot, flags, fd, off)`: a writable shared map of a file of the
    /// directory makes it shared memory.
    fn mmap(&mut self, pid: &str, c: &Call<'_>) {
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        if !(arg(2).contains("PROT_WRITE") && arg(3).contains("MAP_SHARED")) {
            return;
        }
        if let Source::At(Loc::Inside(rel)) = self.fd_source(pid, arg(4)) {
            let addr = parse_address(c.ret);
            let len = arg(1).parse().unwrap_or(0);
            if let Some(addr) = addr {
                self.maps.push((addr, len, rel.clone()));
            }
            self.model.mapped(&rel);
        }
    }

    /// `msync` of a map of a file of the directory: the program relies on bytes written
    /// through the map, which the recording does not have.
    fn msync(&mut self, addr: &str) {
        let Some(addr) = parse_address(addr) else {
            return;
        };
        let hit = self
            .maps
            .iter()
            .find(|(start, len, _)| (*start..start.saturating_add(*len)).contains(&addr));
        if let Some((_, _, rel)) = hit {
            let what = format!(
                "msync of a shared map of {rel}: bytes written through a map are not recorded"
            );
            self.model.refuse(what);
        }
    }

    fn rename(
        &mut self,
        pid: &str,
        d1: Option<&str>,
        from: &str,
        d2: Option<&str>,
        to: &str,
        flags: &str,
    ) {
        let from = self.locate(pid, d1, from);
        let to = self.locate(pid, d2, to);
        let inside = |l: &Loc| matches!(l, Loc::Inside(_));
        if (flags.contains("RENAME_EXCHANGE") || flags.contains("RENAME_WHITEOUT"))
            && (inside(&from) || inside(&to))
        {
            self.model
                .refuse(format!("renameat2 with {flags}: {from:?} <-> {to:?}"));
            return;
        }
        self.model.rename(&from, &to);
    }

    /// `link`, `linkat`, including an `O_TMPFILE` descriptor (`AT_EMPTY_PATH`, or
    /// `/proc/self/fd/N` with `AT_SYMLINK_FOLLOW`).
    fn link(
        &mut self,
        pid: &str,
        d1: Option<&str>,
        from: &str,
        d2: Option<&str>,
        to: &str,
        flags: &str,
    ) {
        let source = if flags.contains("AT_EMPTY_PATH") && decode_text(from).is_empty() {
            self.fd_source(pid, d1.unwrap_or(""))
        } else {
            let path = self.resolve(pid, d1, from);
            match proc_fd(&path, pid) {
                Some((owner, fd)) => self.fd_source(&owner, &fd.to_string()),
                None => Source::At(self.model.locate(&path)),
            }
        };
        let to = self.locate(pid, d2, to);
        self.model.link(&source, &to);
    }

    fn symlink(&mut self, pid: &str, target: &str, dirfd: Option<&str>, path: &str) {
        if let Loc::Inside(rel) = self.locate(pid, dirfd, path) {
            let target = decode_text(target);
            self.model.refuse(format!("symlink {rel} -> {target}"));
        }
    }

    fn unlink(&mut self, pid: &str, dirfd: Option<&str>, path: &str, flags: &str) {
        let loc = self.locate(pid, dirfd, path);
        self.model.unlink(&loc, flags.contains("AT_REMOVEDIR"));
    }

    fn stdout_bytes(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial_line).into_owned();
                self.partial_line.clear();
                self.model.out.ops.push(Op::Stdout { line });
            } else {
                self.partial_line.push(b);
            }
        }
    }

    /// The file a descriptor argument names: its `-y` annotation, else the description's.
    fn fd_source(&mut self, pid: &str, fd_text: &str) -> Source {
        let (fd, path) = fd_arg(fd_text);
        let description = fd.and_then(|fd| self.procs.description(pid, fd)).cloned();
        if let Some(id) = description.as_ref().and_then(|d| d.anonymous) {
            return Source::Anonymous(id);
        }
        match path.or_else(|| description.and_then(|d| d.path)) {
            Some(p) => Source::At(self.model.locate(&normalize(&p))),
            None => Source::At(Loc::Ignored),
        }
    }

    fn locate(&mut self, pid: &str, dirfd: Option<&str>, path_arg: &str) -> Loc {
        let path = self.resolve(pid, dirfd, path_arg);
        self.model.locate(&path)
    }

    /// An absolute path for a path argument relative to a directory descriptor or the cwd.
    fn resolve(&mut self, pid: &str, dirfd: Option<&str>, path_arg: &str) -> PathBuf {
        let path = PathBuf::from(decode_text(path_arg));
        if path.is_absolute() {
            return normalize(&path);
        }
        let base = match dirfd.map(fd_arg) {
            Some((_, Some(dir))) => dir,
            _ => self.procs.cwd(pid),
        };
        normalize(&base.join(path))
    }
}

#[cfg(test)]
mod tests;
