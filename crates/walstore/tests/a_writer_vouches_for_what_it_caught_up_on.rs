//! A writer that finds another handle's transactions makes them durable before it appends
//! after them, so its next commit record's watermark vouches for them (RECOVERY.md S1b): later
//! damage to their synced bytes is then reported as corruption, never taken for a torn tail
//! that would silently drop this writer's acknowledged commit after them. This holds when the
//! other handle checkpointed first, so the writer's catch-up reloads a new generation (the
//! reload path, issue 23's question), as it does when the generation is unchanged.

use std::path::Path;
use std::sync::Arc;
use walstore::storage::{MemoryStorage, Storage};
use walstore::{Durability, Error, Options, Store};

fn open(mem: &Arc<MemoryStorage>) -> Store {
    let storage: Arc<dyn Storage> = Arc::clone(mem) as Arc<dyn Storage>;
    Options::new()
        .storage(storage)
        .durability(Durability::Immediate)
        .auto_checkpoint(false)
        .open(Path::new("/store"))
        .expect("open")
}

/// Runs the scenario; `checkpoint_first`: the other handle checkpoints before its commit.
/// Returns what a reopen after the power cut and the damage says.
fn damage_the_other_handles_commit(checkpoint_first: bool) -> Result<Option<Vec<u8>>, Error> {
    let mem = Arc::new(MemoryStorage::new());
    let a = open(&mem);
    let b = open(&mem);
    a.update(|tx| tx.put(b"base", b"0")).expect("base");
    if checkpoint_first {
        b.checkpoint().expect("checkpoint");
    }
    let wal = Path::new("/store/wal");
    let before = b.info().expect("info").wal_bytes;
    b.update(|tx| tx.put(b"other", &[7u8; 200]))
        .expect("other's commit");
    // A catches up on B's commit (reloading the new generation if B checkpointed) and
    // commits after it: acknowledged, so durable.
    a.update(|tx| tx.put(b"mine", b"acknowledged"))
        .expect("my commit");
    mem.crash();
    drop((a, b));
    // Media damage in the middle of B's synced commit.
    let mut bytes = mem.read_file(wal).expect("wal");
    let at = 4096 + before as usize + 100;
    bytes[at] ^= 0x5a;
    mem.write_file_durable(wal, &bytes);
    let storage: Arc<dyn Storage> = Arc::clone(&mem) as Arc<dyn Storage>;
    let store = Options::new()
        .storage(storage)
        .read_only(true)
        .open(Path::new("/store"))?;
    let mine = store.begin_read()?.get(b"mine")?;
    Ok(mine.map(|v| v.to_vec()))
}

#[test]
fn damage_before_my_acknowledged_commit_is_corruption_in_the_same_generation() {
    let result = damage_the_other_handles_commit(false);
    assert!(
        matches!(result, Err(Error::Corruption { .. })),
        "an acknowledged commit after damaged synced bytes must not vanish silently: {result:?}"
    );
}

#[test]
fn damage_before_my_acknowledged_commit_is_corruption_after_another_handles_checkpoint() {
    let result = damage_the_other_handles_commit(true);
    assert!(
        matches!(result, Err(Error::Corruption { .. })),
        "an acknowledged commit after damaged synced bytes must not vanish silently: {result:?}"
    );
}
