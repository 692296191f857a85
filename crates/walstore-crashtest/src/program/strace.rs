//! Turns an `strace -f -xx -y -s N` log into the [`Op`]s inside one directory.
//!
//! With `-xx` every string and every `-y` path annotation is hexadecimal (`"\x61"`,
//! `3<\x2f\x74>`), so no argument holds a quote, comma or bracket of its own and a line splits
//! at top-level commas. With `-y` each descriptor argument names the file it refers to *now*
//! (after a rename, the new name), which is the name the operation is recorded under.
//! Write offsets are not in the log: a table of descriptors follows `open`, `lseek` (whose
//! result is the new offset), `read`, `write`, `dup` and `close`; `O_APPEND` writes go to the
//! file's end, whose size the parser tracks for every file of the directory.

use super::ops::{Op, Recording};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

/// The system calls to trace (`-e trace=`).
pub const TRACED: &str = "open,openat,creat,write,pwrite64,writev,pwritev,pwritev2,read,readv,\
lseek,ftruncate,truncate,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,fsync,\
fdatasync,close,dup,dup2,dup3,fcntl,chdir,link,linkat,symlink,symlinkat,fallocate,sync,syncfs";

#[derive(Debug, Clone)]
struct Fd {
    offset: u64,
    append: bool,
}

/// The parser's state.
#[derive(Debug)]
pub struct Parser {
    /// The recorded directory, as given (absolute) and canonical.
    roots: Vec<PathBuf>,
    /// The file the program's standard output goes to.
    stdout: PathBuf,
    cwd: PathBuf,
    fds: HashMap<i64, Fd>,
    /// Sizes of the files of the directory (relative names).
    sizes: BTreeMap<String, u64>,
    dirs: BTreeSet<String>,
    unfinished: HashMap<String, String>,
    partial_line: Vec<u8>,
    out: Recording,
}

/// One parsed call.
struct Call<'a> {
    name: &'a str,
    args: Vec<&'a str>,
    ret: &'a str,
}

impl Parser {
    /// A parser for a program working in `roots` (the same directory under several spellings)
    /// whose files had `sizes` before the run, writing its stdout to `stdout`.
    pub fn new(
        roots: Vec<PathBuf>,
        stdout: PathBuf,
        cwd: PathBuf,
        sizes: BTreeMap<String, u64>,
        dirs: BTreeSet<String>,
    ) -> Self {
        Parser {
            roots,
            stdout,
            cwd,
            fds: HashMap::new(),
            sizes,
            dirs,
            unfinished: HashMap::new(),
            partial_line: Vec::new(),
            out: Recording::default(),
        }
    }

    /// Parses a whole log.
    pub fn parse_log(mut self, log: &str) -> Recording {
        for line in log.lines() {
            self.line(line);
        }
        if !self.partial_line.is_empty() {
            let line = String::from_utf8_lossy(&self.partial_line).into_owned();
            self.out.ops.push(Op::Stdout { line });
        }
        self.out
    }

    fn line(&mut self, raw: &str) {
        // `-f` with `-o`: "PID call(...)"; without `-o`: "[pid PID] call(...)".
        let (pid, rest) = split_pid(raw);
        let rest = rest.trim_start();
        if rest.starts_with("---") || rest.starts_with("+++") {
            return;
        }
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            self.unfinished
                .insert(pid.to_string(), head.trim_end().to_string());
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
            joined = if head.ends_with('(')
                || head.ends_with(',')
                || tail.starts_with(')')
                || tail.starts_with(',')
            {
                format!("{head}{tail}")
            } else {
                format!("{head}, {tail}")
            };
            joined.as_str()
        } else {
            rest
        };
        if let Some(call) = split_call(text) {
            self.call(&call);
        }
    }

    fn call(&mut self, c: &Call<'_>) {
        if c.ret.starts_with('-') || c.ret.starts_with('?') {
            return; // failed: no effect
        }
        let arg = |i: usize| c.args.get(i).copied().unwrap_or("");
        match c.name {
            "open" => self.open(None, arg(0), arg(1), c.ret),
            "openat" => self.open(Some(arg(0)), arg(1), arg(2), c.ret),
            "creat" => self.open(None, arg(0), "O_CREAT|O_WRONLY|O_TRUNC", c.ret),
            "write" => self.write(arg(0), &decode_string(arg(1)), None, c.ret),
            "pwrite64" => {
                let off = arg(3).parse().ok();
                self.write(arg(0), &decode_string(arg(1)), off.or(Some(0)), c.ret)
            }
            "writev" => self.write(arg(0), &decode_iov(arg(1)), None, c.ret),
            "pwritev" | "pwritev2" => {
                let off = arg(3).parse().ok();
                self.write(arg(0), &decode_iov(arg(1)), off.or(Some(0)), c.ret)
            }
            "read" | "readv" => {
                let (fd, _) = fd_arg(arg(0));
                if let (Some(fd), Ok(n)) = (fd, c.ret.parse::<u64>()) {
                    if let Some(entry) = self.fds.get_mut(&fd) {
                        entry.offset += n;
                    }
                }
            }
            "lseek" => {
                let (fd, _) = fd_arg(arg(0));
                if let (Some(fd), Ok(n)) = (fd, c.ret.parse::<u64>()) {
                    self.fds
                        .entry(fd)
                        .or_insert(Fd {
                            offset: 0,
                            append: false,
                        })
                        .offset = n;
                }
            }
            "ftruncate" => {
                let (_, path) = fd_arg(arg(0));
                if let (Some(rel), Ok(len)) = (path.and_then(|p| self.rel(&p)), arg(1).parse()) {
                    self.truncate(rel, len);
                }
            }
            "truncate" => {
                let path = self.resolve(None, arg(0));
                if let (Some(rel), Ok(len)) = (self.rel(&path), arg(1).parse()) {
                    self.truncate(rel, len);
                }
            }
            "rename" => self.rename(None, arg(0), None, arg(1)),
            "renameat" | "renameat2" => self.rename(Some(arg(0)), arg(1), Some(arg(2)), arg(3)),
            "unlink" => self.unlink(None, arg(0), ""),
            "unlinkat" => self.unlink(Some(arg(0)), arg(1), arg(2)),
            "rmdir" => self.unlink(None, arg(0), "AT_REMOVEDIR"),
            "mkdir" => self.mkdir(None, arg(0)),
            "mkdirat" => self.mkdir(Some(arg(0)), arg(1)),
            "fsync" | "fdatasync" => {
                let (_, path) = fd_arg(arg(0));
                if let Some(rel) = path.and_then(|p| self.rel(&p)) {
                    if rel.is_empty() || self.dirs.contains(&rel) {
                        self.out.ops.push(Op::DirFsync { path: rel });
                    } else {
                        self.out.ops.push(Op::Fsync {
                            path: rel,
                            data_only: c.name == "fdatasync",
                        });
                    }
                }
            }
            "sync" => self.out.ops.push(Op::SyncAll),
            "syncfs" => {
                let (_, path) = fd_arg(arg(0));
                if path.and_then(|p| self.rel(&p)).is_some() {
                    self.out.ops.push(Op::SyncAll);
                }
            }
            "close" => {
                if let (Some(fd), _) = fd_arg(arg(0)) {
                    self.fds.remove(&fd);
                }
            }
            "dup" | "dup2" | "dup3" | "fcntl" => {
                if c.name == "fcntl" && !arg(1).starts_with("F_DUPFD") {
                    return;
                }
                let (old, _) = fd_arg(arg(0));
                let (new, _) = fd_arg(c.ret);
                if let (Some(old), Some(new)) = (old, new) {
                    if let Some(entry) = self.fds.get(&old).cloned() {
                        self.fds.insert(new, entry);
                    }
                }
            }
            "chdir" => {
                self.cwd = self.resolve(None, arg(0));
            }
            "link" | "linkat" | "symlink" | "symlinkat" | "fallocate" => {
                let text = c.args.join(", ");
                let touched = c
                    .args
                    .iter()
                    .any(|a| self.rel(&self.resolve(None, a)).is_some() || self.fd_in_dir(a));
                if touched {
                    self.out
                        .unmodelled
                        .push(format!("{}({})", c.name, decode_text(&text)));
                }
            }
            _ => {}
        }
    }

    fn fd_in_dir(&self, arg: &str) -> bool {
        let (_, path) = fd_arg(arg);
        path.and_then(|p| self.rel(&p)).is_some()
    }

    fn open(&mut self, dirfd: Option<&str>, path: &str, flags: &str, ret: &str) {
        let (fd, ret_path) = fd_arg(ret);
        let Some(fd) = fd else { return };
        let full = ret_path.unwrap_or_else(|| self.resolve(dirfd, path));
        let append = flags.contains("O_APPEND");
        let mut offset = 0;
        if let Some(rel) = self.rel(&full) {
            let is_dir =
                rel.is_empty() || self.dirs.contains(&rel) || flags.contains("O_DIRECTORY");
            if !is_dir {
                let existed = self.sizes.contains_key(&rel);
                if flags.contains("O_CREAT") && !existed {
                    self.out.ops.push(Op::Create { path: rel.clone() });
                    self.sizes.insert(rel.clone(), 0);
                } else if flags.contains("O_TRUNC")
                    && (flags.contains("O_WRONLY") || flags.contains("O_RDWR"))
                    && self.sizes.get(&rel).copied().unwrap_or(0) > 0
                {
                    self.truncate(rel.clone(), 0);
                }
                if append {
                    offset = self.sizes.get(&rel).copied().unwrap_or(0);
                }
            }
        }
        self.fds.insert(fd, Fd { offset, append });
    }

    fn write(&mut self, fd_text: &str, data: &[u8], at: Option<u64>, ret: &str) {
        let Ok(n) = ret.parse::<usize>() else { return };
        let data = &data[..n.min(data.len())];
        let (fd, path) = fd_arg(fd_text);
        let Some(path) = path else { return };
        if path == self.stdout {
            self.stdout_bytes(data);
            return;
        }
        let Some(rel) = self.rel(&path) else {
            // Not in the directory: only the descriptor's offset matters.
            if let (Some(fd), None) = (fd, at) {
                if let Some(entry) = self.fds.get_mut(&fd) {
                    entry.offset += n as u64;
                }
            }
            return;
        };
        let size = self.sizes.get(&rel).copied().unwrap_or(0);
        let offset = match at {
            Some(off) => off,
            None => {
                let entry = fd.and_then(|fd| self.fds.get_mut(&fd));
                match entry {
                    Some(e) => {
                        if e.append {
                            e.offset = size;
                        }
                        let off = e.offset;
                        e.offset += n as u64;
                        off
                    }
                    None => 0,
                }
            }
        };
        let end = offset + data.len() as u64;
        if end > size {
            self.sizes.insert(rel.clone(), end);
        }
        if !data.is_empty() {
            self.out.ops.push(Op::Write {
                path: rel,
                offset,
                data: data.to_vec(),
            });
        }
    }

    fn stdout_bytes(&mut self, data: &[u8]) {
        for &b in data {
            if b == b'\n' {
                let line = String::from_utf8_lossy(&self.partial_line).into_owned();
                self.partial_line.clear();
                self.out.ops.push(Op::Stdout { line });
            } else {
                self.partial_line.push(b);
            }
        }
    }

    fn truncate(&mut self, rel: String, len: u64) {
        self.sizes.insert(rel.clone(), len);
        self.out.ops.push(Op::Truncate { path: rel, len });
    }

    fn rename(&mut self, d1: Option<&str>, from: &str, d2: Option<&str>, to: &str) {
        let from = self.resolve(d1, from);
        let to = self.resolve(d2, to);
        match (self.rel(&from), self.rel(&to)) {
            (Some(from), Some(to)) => {
                if let Some(size) = self.sizes.remove(&from) {
                    self.sizes.insert(to.clone(), size);
                } else if self.dirs.contains(&from) {
                    self.out
                        .unmodelled
                        .push(format!("rename of directory {from} -> {to}"));
                    return;
                }
                self.out.ops.push(Op::Rename { from, to });
            }
            (None, None) => {}
            (Some(from), None) => {
                // Moved out: for the directory, an unlink.
                self.sizes.remove(&from);
                self.out.ops.push(Op::Unlink { path: from });
            }
            (None, Some(to)) => self.out.unmodelled.push(format!(
                "rename into the directory from outside: {} -> {to}",
                from.display()
            )),
        }
    }

    fn unlink(&mut self, dirfd: Option<&str>, path: &str, flags: &str) {
        let full = self.resolve(dirfd, path);
        let Some(rel) = self.rel(&full) else { return };
        if flags.contains("AT_REMOVEDIR") {
            self.out
                .unmodelled
                .push(format!("rmdir {rel} (directories are kept in images)"));
            return;
        }
        self.sizes.remove(&rel);
        self.out.ops.push(Op::Unlink { path: rel });
    }

    fn mkdir(&mut self, dirfd: Option<&str>, path: &str) {
        let full = self.resolve(dirfd, path);
        if let Some(rel) = self.rel(&full) {
            if !rel.is_empty() {
                self.dirs.insert(rel.clone());
                self.out.ops.push(Op::Mkdir { path: rel });
            }
        }
    }

    /// An absolute path for a path argument relative to a directory descriptor or the cwd.
    fn resolve(&self, dirfd: Option<&str>, path_arg: &str) -> PathBuf {
        let path = PathBuf::from(decode_text(path_arg));
        if path.is_absolute() {
            return normalize(&path);
        }
        let base = match dirfd.map(fd_arg) {
            Some((_, Some(dir))) => dir,
            _ => self.cwd.clone(),
        };
        normalize(&base.join(path))
    }

    /// The name relative to the recorded directory, if the path is inside it.
    fn rel(&self, path: &Path) -> Option<String> {
        let text = path.to_string_lossy();
        if text.ends_with(" (deleted)") {
            return None;
        }
        for root in &self.roots {
            if let Ok(rest) = path.strip_prefix(root) {
                return Some(rest.to_string_lossy().into_owned());
            }
        }
        None
    }
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn split_pid(raw: &str) -> (&str, &str) {
    if let Some(rest) = raw.strip_prefix("[pid ") {
        if let Some(end) = rest.find(']') {
            return (rest[..end].trim(), &rest[end + 1..]);
        }
    }
    let digits = raw.bytes().take_while(u8::is_ascii_digit).count();
    if digits > 0 && raw[digits..].starts_with(' ') {
        return (&raw[..digits], &raw[digits..]);
    }
    ("", raw)
}

/// Splits `name(a, b, c) = ret` at top-level commas.
fn split_call(text: &str) -> Option<Call<'_>> {
    let open = text.find('(')?;
    let name = &text[..open];
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return None;
    }
    let bytes = text.as_bytes();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut args = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    for (i, &b) in bytes.iter().enumerate().skip(open + 1) {
        if in_str {
            if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'(' | b'[' | b'{' | b'<' => depth += 1,
            b']' | b'}' | b'>' => depth -= 1,
            b')' if depth == 0 => {
                close = Some(i);
                break;
            }
            b')' => depth -= 1,
            b',' if depth == 0 => {
                args.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let close = close?;
    let last = text[start..close].trim();
    if !last.is_empty() {
        args.push(last);
    }
    let ret = text[close + 1..].trim_start().strip_prefix('=')?.trim();
    Some(Call { name, args, ret })
}

/// `3<\x2f\x74>` -> (3, "/t"); `AT_FDCWD<\x2f>` -> (None, "/").
fn fd_arg(text: &str) -> (Option<i64>, Option<PathBuf>) {
    let text = text.trim();
    let (head, path) = match text.find('<') {
        Some(i) => {
            let inner = text[i + 1..].strip_suffix('>').unwrap_or(&text[i + 1..]);
            (&text[..i], Some(PathBuf::from(decode_text(inner))))
        }
        None => (text.split_whitespace().next().unwrap_or(""), None),
    };
    (head.parse().ok(), path)
}

/// Decodes `\xHH` escapes (and the few C escapes strace may still print) in `text`.
fn decode_escapes(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len() / 4);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() + 1 => {
                    let hex = std::str::from_utf8(&b[i + 2..(i + 4).min(b.len())]).unwrap_or("");
                    if let Ok(v) = u8::from_str_radix(hex, 16) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                    out.push(b'x');
                    i += 2;
                }
                b'n' => {
                    out.push(b'\n');
                    i += 2;
                }
                b't' => {
                    out.push(b'\t');
                    i += 2;
                }
                b'\\' => {
                    out.push(b'\\');
                    i += 2;
                }
                b'"' => {
                    out.push(b'"');
                    i += 2;
                }
                other => {
                    out.push(other);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The text of a quoted string argument (quotes removed, escapes decoded), lossily as UTF-8.
fn decode_text(arg: &str) -> String {
    String::from_utf8_lossy(&decode_string(arg)).into_owned()
}

/// The bytes of a quoted string argument (`"\x61\x62"...` -> "ab").
fn decode_string(arg: &str) -> Vec<u8> {
    let arg = arg.trim();
    let inner = arg
        .strip_prefix('"')
        .and_then(|a| a.rfind('"').map(|end| &a[..end]))
        .unwrap_or(arg);
    decode_escapes(inner)
}

/// The concatenated `iov_base` strings of an iovec array.
fn decode_iov(arg: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = arg;
    while let Some(pos) = rest.find("iov_base=\"") {
        let after = &rest[pos + "iov_base=".len()..];
        let body = &after[1..];
        let end = body.find('"').unwrap_or(body.len());
        out.extend(decode_escapes(&body[..end]));
        rest = &body[end.min(body.len())..];
    }
    out
}

/// Whether a log line shows a string strace cut at `-s` (`"..."...`).
pub fn truncated_string(log: &str) -> bool {
    log.contains("\"...")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("\\x{b:02x}")).collect()
    }

    fn parser() -> Parser {
        Parser::new(
            vec![PathBuf::from("/d")],
            PathBuf::from("/out"),
            PathBuf::from("/"),
            BTreeMap::from([("old".to_string(), 5)]),
            BTreeSet::new(),
        )
    }

    #[test]
    fn a_save_with_temp_file_rename_and_syncs_is_recorded_in_order() {
        let (d, t, f, o) = (hex("/d"), hex("/d/a.tmp"), hex("/d/a"), hex("/out"));
        let log = format!(
            "10 openat(AT_FDCWD<{d}>, \"{t}\", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3<{t}>\n\
             10 write(3<{t}>, \"{}\", 5) = 5\n\
             10 write(3<{t}>, \"{}\", 3 <unfinished ...>\n\
             11 close(4) = 0\n\
             10 <... write resumed>) = 3\n\
             10 pwrite64(3<{t}>,  <unfinished ...>\n\
             10 <... pwrite64 resumed>\"{}\", 2, 1) = 2\n\
             10 fsync(3<{t}>) = 0\n\
             10 close(3<{t}>) = 0\n\
             10 rename(\"{t}\", \"{f}\") = 0\n\
             10 openat(AT_FDCWD<{d}>, \"{d}\", O_RDONLY|O_CLOEXEC) = 3<{d}>\n\
             10 fsync(3<{d}>) = 0\n\
             10 unlink(\"{}\") = -1 ENOENT (No such file or directory)\n\
             10 write(1<{o}>, \"{}\", 8) = 8\n\
             10 +++ exited with 0 +++\n",
            hex("hello"),
            hex("abc"),
            hex("EL"),
            hex("nope"),
            hex("saved 1\n"),
        );
        let rec = parser().parse_log(&log);
        let shown: Vec<String> = rec.ops.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "create a.tmp",
                "write a.tmp [0, 5) \"hello\"",
                "write a.tmp [5, 8) \"abc\"",
                "write a.tmp [1, 3) \"EL\"",
                "fsync a.tmp",
                "rename a.tmp -> a",
                "fsync dir .",
                "stdout \"saved 1\"",
            ]
        );
        assert!(rec.unmodelled.is_empty());
    }

    #[test]
    fn offsets_follow_lseek_append_truncate_and_pwrite() {
        let old = hex("/d/old");
        let log = format!(
            "openat(AT_FDCWD<{}>, \"{old}\", O_WRONLY|O_APPEND) = 3<{old}>\n\
             write(3<{old}>, \"{}\", 2) = 2\n\
             lseek(3<{old}>, 1, SEEK_SET) = 1\n\
             ftruncate(3<{old}>, 3) = 0\n\
             pwrite64(3<{old}>, \"{}\", 1, 9) = 1\n\
             writev(3<{old}>, [{{iov_base=\"{}\", iov_len=1}}, {{iov_base=\"{}\", iov_len=1}}], 2) = 2\n",
            hex("/"),
            hex("xy"),
            hex("z"),
            hex("p"),
            hex("q"),
        );
        let rec = parser().parse_log(&log);
        let shown: Vec<String> = rec.ops.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "write old [5, 7) \"xy\"",
                "truncate old to 3",
                "write old [9, 10) \"z\"",
                // O_APPEND: the end of the file, whatever the offset.
                "write old [10, 12) \"pq\"",
            ]
        );
    }

    #[test]
    fn calls_outside_the_directory_are_ignored_and_links_reported() {
        let log = format!(
            "write(3<{}>, \"{}\", 1) = 1\nlink(\"{}\", \"{}\") = 0\n",
            hex("/elsewhere"),
            hex("x"),
            hex("/d/old"),
            hex("/d/new"),
        );
        let rec = parser().parse_log(&log);
        assert!(rec.ops.is_empty());
        assert_eq!(rec.unmodelled.len(), 1);
    }
}
