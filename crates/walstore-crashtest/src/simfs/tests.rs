//! Unit tests of the simulated file system's rules.

use super::inject::{CountdownFault, Errno};
use super::*;
use crate::image::Image;

fn dir() -> &'static Path {
    Path::new("/d")
}

#[test]
fn locks_exclude_across_handles() {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).expect("mkdir");
    let a = fs.open_lock(&dir().join("LOCK")).expect("lock a");
    let b = fs.open_lock(&dir().join("LOCK")).expect("lock b");
    assert!(a.try_lock().expect("try a"));
    assert!(
        !b.try_lock().expect("try b"),
        "a second handle took a held lock"
    );
    a.unlock().expect("unlock");
    assert!(b.try_lock().expect("try b again"));
}

#[test]
fn a_failed_sync_drops_the_dirty_pages_and_a_retry_lies() {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).expect("mkdir");
    let f = fs.open(&dir().join("f"), OpenMode::Create).expect("create");
    fs.sync_dir(dir()).expect("sync dir");
    f.write_all_at(b"acknowledged?", 0).expect("write");
    fs.set_countdown(CountdownFault {
        nth: 1,
        class: Some(OpClass::Sync),
        errno: Errno::Eio,
        persistent: false,
        short_write: false,
    });
    assert!(f.sync_data().is_err());
    f.sync_data().expect("the retried sync reports success");
    let mut buf = [0u8; 13];
    f.read_full_at(&mut buf, 0).expect("read");
    assert_eq!(&buf, b"acknowledged?", "a reader still sees the page cache");
    let durable = Image::durable_of(&fs.state());
    assert_eq!(durable.files[&dir().join("f")], Vec::<u8>::new());
}

#[test]
fn names_need_a_directory_sync_and_data_needs_a_file_sync() {
    let fs = SimFs::new();
    fs.create_dir_all(dir()).expect("mkdir");
    let f = fs
        .open(&dir().join("tmp"), OpenMode::Create)
        .expect("create");
    f.write_all_at(b"data", 0).expect("write");
    f.sync_data().expect("sync");
    fs.rename(&dir().join("tmp"), &dir().join("final"))
        .expect("rename");
    assert!(Image::durable_of(&fs.state()).files.is_empty());
    fs.sync_dir(dir()).expect("sync dir");
    let durable = Image::durable_of(&fs.state());
    assert_eq!(durable.files[&dir().join("final")], b"data".to_vec());
    assert!(!durable.files.contains_key(&dir().join("tmp")));
}

#[test]
fn every_state_changing_call_is_a_crash_point() {
    let fs = SimFs::new();
    fs.set_capture(Capture::EveryOp);
    fs.create_dir_all(dir()).expect("mkdir");
    let f = fs.open(&dir().join("f"), OpenMode::Create).expect("create");
    f.write_all_at(b"x", 0).expect("write");
    f.sync_data().expect("sync");
    let points = fs.take_crash_points();
    assert_eq!(
        points.iter().map(|p| p.op_index).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(fs.trace().len(), 3);
}
