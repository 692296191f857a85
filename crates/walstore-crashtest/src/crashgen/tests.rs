//! Unit tests of the image recipes.

use super::*;
use crate::simfs::SimFs;
use std::path::{Path, PathBuf};
use walstore::storage::{OpenMode, Storage};

fn fs_with_unsynced_write() -> SimFs {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d")).expect("mkdir");
    let f = fs
        .open(Path::new("/d/f"), OpenMode::Create)
        .expect("create");
    f.write_all_at(&[1u8; 1024], 0).expect("write");
    f.sync_data().expect("sync");
    fs.sync_dir(Path::new("/d")).expect("sync dir");
    f.write_all_at(&[2u8; 1024], 0).expect("write");
    f.write_all_at(&[3u8; 512], 1024).expect("write");
    fs
}

#[test]
fn drop_unsynced_keeps_exactly_the_synced_bytes() {
    let fs = fs_with_unsynced_write();
    let g = generate(
        &fs.state(),
        Variant::DropUnsynced,
        1,
        &MediaModel::default(),
    )
    .expect("image");
    assert_eq!(g.image.files[Path::new("/d/f")], vec![1u8; 1024]);
    let kill =
        generate(&fs.state(), Variant::ProcessKill, 1, &MediaModel::default()).expect("image");
    let live = &kill.image.files[Path::new("/d/f")];
    assert_eq!(live.len(), 1536);
    assert_eq!(live[0], 2);
}

#[test]
fn torn_images_mix_old_and_new_sectors_only_at_sector_boundaries() {
    let fs = fs_with_unsynced_write();
    let mut mixed = false;
    for seed in 0..64 {
        let g = generate(&fs.state(), Variant::Torn, seed, &MediaModel::default()).expect("image");
        let bytes = &g.image.files[Path::new("/d/f")];
        for sector in bytes[..1024].chunks(512) {
            assert!(
                sector.iter().all(|b| *b == sector[0]),
                "torn inside a sector"
            );
        }
        mixed |= bytes[0] != bytes[512];
    }
    assert!(mixed, "no seed tore the write");
}

#[test]
fn lost_directory_entry_hides_a_synced_file() {
    let fs = SimFs::new();
    fs.create_dir_all(Path::new("/d")).expect("mkdir");
    let f = fs
        .open(Path::new("/d/new"), OpenMode::Create)
        .expect("create");
    f.write_all_at(b"data", 0).expect("write");
    f.sync_data().expect("sync");
    let g = generate(
        &fs.state(),
        Variant::DropUnsynced,
        0,
        &MediaModel::strict(512),
    )
    .expect("image");
    assert!(!g.image.files.contains_key(Path::new("/d/new")));
    let seen_both = (0..32).any(|seed| {
        let g = generate(
            &fs.state(),
            Variant::DirEntries,
            seed,
            &MediaModel::default(),
        )
        .expect("image");
        g.image.files.get(Path::new("/d/new")).map(Vec::as_slice) == Some(&b"data"[..])
    });
    assert!(seen_both);
}

#[test]
fn corruption_hits_synced_bytes_and_names_their_write() {
    let fs = fs_with_unsynced_write();
    let state = fs.state();
    let g = (0..8)
        .find_map(|seed| {
            let mut s = state.clone();
            let id = s.durable_names[Path::new("/d/f")];
            let name = PathBuf::from("/d/wal");
            s.durable_names.insert(name, id);
            generate(&s, Variant::CorruptWal, seed, &MediaModel::default())
        })
        .expect("a damaged image");
    let damage = g.damage.expect("damage");
    assert!(damage.offset < 1024);
    assert!(damage
        .origins
        .iter()
        .all(|o| o.write_op == 2 && o.sync_op == 3));
    assert_ne!(g.image.files[Path::new("/d/wal")], vec![1u8; 1024]);
}
