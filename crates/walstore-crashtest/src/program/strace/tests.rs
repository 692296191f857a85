//! The parser on hand-written logs, one behaviour each.
use super::*;

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("\\x{b:02x}")).collect()
}

fn parser() -> Parser {
    Parser::new(setup())
}

fn setup() -> Setup {
    Setup {
        roots: vec![PathBuf::from("/d")],
        allowed: Vec::new(),
        stdout: PathBuf::from("/out"),
        cwd: PathBuf::from("/"),
        files: BTreeMap::from([("old".to_string(), b"12345".to_vec())]),
        dirs: BTreeSet::new(),
    }
}

fn shown(rec: &Recording) -> Vec<String> {
    rec.ops.iter().map(ToString::to_string).collect()
}

#[test]
fn a_parent_reading_on_its_descriptor_does_not_move_a_childs_write() {
    let (src, out) = (hex("/elsewhere/src"), hex("/d/out"));
    // Both processes use descriptor 3: the parent reads another file on it while the
    // child writes the directory's file on its own 3.
    let log = format!(
        "1 openat(AT_FDCWD, \"{src}\", O_RDONLY) = 3<{src}>\n\
         1 clone(child_stack=NULL, flags=SIGCHLD <unfinished ...>\n\
         2 close(3<{src}>) = 0\n\
         1 <... clone resumed>) = 2\n\
         1 read(3<{src}>, \"{}\", 500) = 500\n\
         2 openat(AT_FDCWD, \"{out}\", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3<{out}>\n\
         1 read(3<{src}>, \"\", 500) = 0\n\
         2 write(3<{out}>, \"{}\", 5) = 5\n",
        hex(&"a".repeat(500)),
        hex("hello"),
    );
    let rec = parser().parse_log(&log);
    assert_eq!(
        shown(&rec),
        vec!["create out", "write out [0, 5) \"hello\""]
    );
    assert!(rec.unmodelled.is_empty(), "{:?}", rec.unmodelled);
}

#[test]
fn an_inherited_descriptor_shares_its_offset_with_the_parent() {
    let f = hex("/d/log");
    let log = format!(
        "1 openat(AT_FDCWD, \"{f}\", O_WRONLY|O_CREAT, 0644) = 3<{f}>\n\
         1 fork() = 2\n\
         2 write(3<{f}>, \"{}\", 2) = 2\n\
         1 write(3<{f}>, \"{}\", 2) = 2\n\
         1 dup2(3<{f}>, 7) = 7<{f}>\n\
         1 write(7<{f}>, \"{}\", 2) = 2\n",
        hex("ab"),
        hex("cd"),
        hex("ef"),
    );
    let rec = parser().parse_log(&log);
    assert_eq!(
        shown(&rec),
        vec![
            "create log",
            "write log [0, 2) \"ab\"",
            "write log [2, 4) \"cd\"",
            "write log [4, 6) \"ef\"",
        ]
    );
}

#[test]
fn a_file_written_outside_and_moved_in_is_a_move_in_with_its_bytes() {
    let (t, f) = (hex("/tmp/sponge.x"), hex("/d/f"));
    let log = format!(
        "1 openat(AT_FDCWD, \"{t}\", O_RDWR|O_CREAT|O_EXCL, 0600) = 3<{t}>\n\
         1 write(3<{t}>, \"{}\", 3) = 3\n\
         1 rename(\"{t}\", \"{f}\") = 0\n\
         1 rename(\"{}\", \"{}\") = 0\n",
        hex("new"),
        hex("/etc/unknown"),
        hex("/d/g"),
    );
    let rec = parser().parse_log(&log);
    assert_eq!(
        rec.ops,
        vec![Op::MoveIn {
            path: "f".into(),
            data: b"new".to_vec(),
            synced: false
        }]
    );
    // The second file's bytes were never seen: refused, naming it.
    assert_eq!(rec.unmodelled.len(), 1);
    assert!(
        rec.unmodelled[0].contains("/etc/unknown"),
        "{:?}",
        rec.unmodelled
    );
    assert!(rec.outside.is_empty(), "{:?}", rec.outside);
}

#[test]
fn hard_links_tmpfiles_and_copies_are_modelled() {
    let (d, a, b) = (hex("/d"), hex("/d/a"), hex("/d/b"));
    let log = format!(
        "1 openat(AT_FDCWD, \"{d}\", O_RDWR|O_TMPFILE, 0600) = 3<{}>\n\
         1 write(3<{}>, \"{}\", 2) = 2\n\
         1 fsync(3<{}>) = 0\n\
         1 linkat(3<{}>, \"\", AT_FDCWD, \"{a}\", AT_EMPTY_PATH) = 0\n\
         1 link(\"{a}\", \"{b}\") = 0\n\
         1 openat(AT_FDCWD, \"{b}\", O_RDONLY) = 4<{b}>\n\
         1 openat(AT_FDCWD, \"{}\", O_WRONLY|O_CREAT|O_EXCL, 0600) = 5<{}>\n\
         1 copy_file_range(4<{b}>, NULL, 5<{}>, NULL, 2, 0) = 2\n\
         1 fallocate(5<{}>, 0, 0, 4) = 0\n",
        hex("/d/#12 (deleted)"),
        hex("/d/#12 (deleted)"),
        hex("hi"),
        hex("/d/#12 (deleted)"),
        hex("/d/#12 (deleted)"),
        hex("/d/c"),
        hex("/d/c"),
        hex("/d/c"),
        hex("/d/c"),
    );
    let rec = parser().parse_log(&log);
    assert_eq!(
        shown(&rec),
        vec![
            "move in a (2 bytes, synced)",
            "link a -> b",
            "create c",
            "write c [0, 2) \"hi\"",
            "truncate c to 4",
        ]
    );
    assert!(rec.unmodelled.is_empty(), "{:?}", rec.unmodelled);
}

#[test]
fn state_left_outside_is_listed_and_temporary_files_are_not() {
    let (t, s) = (hex("/tmp/t"), hex("/home/u/state"));
    let log = format!(
        "1 openat(AT_FDCWD, \"{t}\", O_WRONLY|O_CREAT|O_EXCL, 0600) = 3<{t}>\n\
         1 unlink(\"{t}\") = 0\n\
         1 openat(AT_FDCWD, \"{s}\", O_WRONLY|O_CREAT|O_TRUNC, 0600) = 3<{s}>\n\
         1 write(3<{s}>, \"{}\", 1) = 1\n\
         1 write(4<{}>, \"{}\", 1) = 1\n",
        hex("x"),
        hex("/dev/null"),
        hex("y"),
    );
    let rec = parser().parse_log(&log);
    assert_eq!(rec.outside, vec!["/home/u/state".to_string()]);
}

#[test]
fn a_file_moved_in_from_an_allowed_path_keeps_its_bytes() {
    let (t, f) = (hex("/tmp/x"), hex("/d/f"));
    let log = format!(
        "1 openat(AT_FDCWD, \"{t}\", O_WRONLY|O_CREAT|O_EXCL, 0600) = 3<{t}>\n\
         1 write(3<{t}>, \"{}\", 2) = 2\n\
         1 openat(AT_FDCWD, \"{}\", O_WRONLY|O_CREAT|O_TRUNC, 0600) = 4<{}>\n\
         1 rename(\"{t}\", \"{f}\") = 0\n",
        hex("ok"),
        hex("/tmp/left"),
        hex("/tmp/left"),
    );
    let mut setup = setup();
    setup.allowed = vec![PathBuf::from("/tmp")];
    let rec = Parser::new(setup).parse_log(&log);
    assert!(rec.unmodelled.is_empty(), "{:?}", rec.unmodelled);
    assert!(rec.outside.is_empty(), "allowed: {:?}", rec.outside);
    assert_eq!(shown(&rec), vec!["move in f (2 bytes, not synced)"]);
}

#[test]
fn a_msync_of_a_shared_map_of_a_file_of_the_directory_is_refused() {
    let f = hex("/d/old");
    let log = format!(
        "1 openat(AT_FDCWD, \"{f}\", O_RDWR) = 3<{f}>\n\
         1 mmap(NULL, 4096, PROT_READ|PROT_WRITE, MAP_SHARED, 3<{f}>, 0) = 0x7f0000001000\n\
         1 msync(0x7f0000001000, 4096, MS_SYNC) = 0\n",
    );
    let rec = parser().parse_log(&log);
    assert_eq!(rec.mapped, vec!["old".to_string()]);
    assert_eq!(rec.unmodelled.len(), 1, "{:?}", rec.unmodelled);
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
            // O_APPEND: the end of the file, whatever the offset (pwrite too, on Linux).
            "write old [3, 4) \"z\"",
            "write old [4, 6) \"pq\"",
        ]
    );
}

#[test]
fn calls_outside_the_directory_are_ignored_and_symlinks_refused() {
    let log = format!(
        "write(3<{}>, \"{}\", 1) = 1\nsymlink(\"{}\", \"{}\") = 0\n",
        hex("/elsewhere"),
        hex("x"),
        hex("/d/old"),
        hex("/d/new"),
    );
    let rec = parser().parse_log(&log);
    assert!(rec.ops.is_empty());
    assert_eq!(rec.unmodelled.len(), 1);
}
