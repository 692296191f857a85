//! The seed scenarios: a context saved as four values, and three config values that must
//! change together. An I/O failure injected at each step of the commit leaves the old values
//! or (when the failure came after the commit's bytes reached the OS and no power was lost)
//! the new ones, never a mix; the error always reaches the caller.
mod common;

use common::{dump, places, Failing, Place};
use std::sync::Arc;
use walstore::Store;

fn values(keys: &[&str], tag: &str, size: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    keys.iter()
        .map(|k| {
            let mut v = format!("{k}={tag};").into_bytes();
            v.resize(size, b'.');
            (k.as_bytes().to_vec(), v)
        })
        .collect()
}

fn save(store: &Store, pairs: &[(Vec<u8>, Vec<u8>)]) -> walstore::Result<()> {
    store.update(|tx| {
        for (k, v) in pairs {
            tx.put(k, v)?;
        }
        Ok(())
    })
}

fn run_scenario(p: &Place, keys: &[&str], size: usize) {
    let failing = Arc::new(Failing::new(Arc::clone(&p.storage)));
    let faults = failing.handle();
    let open = || {
        p.options()
            .storage(failing.clone())
            .wal_preallocate_bytes(4096)
            .open(&p.dir)
            .expect("open")
    };
    let mut step = 0u64;
    loop {
        let store = open();
        let old = values(keys, &format!("old{step}"), size);
        let new = values(keys, &format!("new{step}"), size);
        save(&store, &old).expect("saving the old values");
        faults.fail_after(step, true);
        let result = save(&store, &new);
        let fired = faults.disarm();
        drop(store);
        if result.is_ok() {
            assert!(
                !fired,
                "[{}] step {step}: a failed call was acknowledged",
                p.name
            );
            assert_eq!(dump(&open()), new, "[{}] committed values", p.name);
            assert!(
                step >= 2,
                "[{}] the commit has at least a write and a sync",
                p.name
            );
            return;
        }
        assert!(
            fired,
            "[{}] step {step}: error without an injected fault: {result:?}",
            p.name
        );
        if let Some(memory) = &p.memory {
            memory.crash();
        }
        let after = dump(&open());
        if p.memory.is_some() {
            assert_eq!(
                after, old,
                "[{}] step {step}: a power cut after a failed commit keeps the old values",
                p.name
            );
        } else {
            assert!(
                after == old || after == new,
                "[{}] step {step}: a mix of old and new values: {after:?}",
                p.name
            );
        }
        step += 1;
    }
}

#[test]
fn four_file_context_save_is_atomic_under_a_failure_at_each_step() {
    for p in places() {
        run_scenario(
            &p,
            &[
                "context/global",
                "context/messages",
                "context/metadata",
                "context/state",
            ],
            3000,
        );
    }
}

#[test]
fn three_config_values_change_together_under_a_failure_at_each_step() {
    for p in places() {
        run_scenario(
            &p,
            &["server.namespace", "server.tls-verify", "server.url"],
            1500,
        );
    }
}

#[test]
fn a_failed_fsync_poisons_the_handle_until_reopen() {
    for p in places() {
        let failing = Arc::new(Failing::new(Arc::clone(&p.storage)));
        let faults = failing.handle();
        let store = p
            .options()
            .storage(failing.clone())
            .open(&p.dir)
            .expect("open");
        save(&store, &values(&["a"], "1", 10)).expect("save");
        // Let the write through, fail the fdatasync.
        faults.fail_after(1, false);
        let err =
            save(&store, &values(&["a"], "2", 10)).expect_err("fsync failure must fail the commit");
        assert!(
            matches!(
                err,
                walstore::Error::Io {
                    op: "fdatasync",
                    ..
                }
            ),
            "[{}] {err}",
            p.name
        );
        faults.disarm();
        let again = save(&store, &values(&["a"], "3", 10)).expect_err("poisoned");
        assert!(
            matches!(again, walstore::Error::Poisoned { .. }),
            "[{}] {again}",
            p.name
        );
        assert!(store.is_poisoned());
        drop(store);
        let reopened = p.options().open(&p.dir).expect("reopen");
        save(&reopened, &values(&["a"], "4", 10)).expect("writable after reopen");
    }
}
