use super::*;
use crate::storage::MemoryStorage;
use std::collections::BTreeMap;
use std::ops::Bound;

fn index() -> Arc<LogIndex> {
    LogIndex::create(
        &MemoryStorage::new(),
        Path::new("/s/LOGINDEX"),
        64 << 20,
        3,
        7,
        11,
    )
    .expect("ok")
}

fn commit(end: u64, txn: u64) -> CommitNode {
    CommitNode {
        end,
        txn,
        synced_through: 0,
        data_end: end,
        prev: 0,
    }
}

fn value_of(index: &LogIndex, key: &[u8], limit: u64) -> Option<Option<Vec<u8>>> {
    let e = index.lookup(key, limit).expect("ok")?;
    Some(
        e.value
            .map(|(s, t)| index.bytes().bytes(s, t - s).expect("ok").to_vec()),
    )
}

/// Every key a view of everything reads, forwards.
fn all_keys(index: &LogIndex) -> Vec<Vec<u8>> {
    Cursor::new(
        index,
        u64::MAX,
        &[],
        (Bound::Unbounded, Bound::Unbounded),
        false,
    )
    .map(|r| r.expect("ok").0.to_vec())
    .collect()
}

/// A small deterministic generator (xorshift): `rnd(n)` is below `n`.
fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
    move |n| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    }
}

#[test]
fn a_view_sees_the_versions_up_to_its_limit() {
    let ix = index();
    assert!(ix.describes(3, 7));
    assert!(!ix.describes(3, 8));
    let w = crate::wal::WAL_HEADER_BYTES;
    assert!(ix.add_txn(w, commit(w + 100, 1), &[], [(&b"a"[..], Some(&b"1"[..]))]));
    assert!(ix.add_txn(
        w + 100,
        commit(w + 200, 2),
        &[],
        [(&b"a"[..], Some(&b"2"[..])), (&b"b"[..], None)]
    ));
    // Not contiguous: refused, nothing added.
    assert!(!ix.add_txn(
        w + 300,
        commit(w + 400, 4),
        &[],
        [(&b"a"[..], Some(&b"x"[..]))]
    ));
    assert_eq!(ix.covered(), w + 200);
    assert_eq!(value_of(&ix, b"a", w + 100), Some(Some(b"1".to_vec())));
    assert_eq!(value_of(&ix, b"a", w + 200), Some(Some(b"2".to_vec())));
    assert_eq!(value_of(&ix, b"a", w + 99), None);
    assert_eq!(value_of(&ix, b"b", w + 200), Some(None));
    assert_eq!(value_of(&ix, b"b", w + 150), None);
    assert_eq!(ix.commit_at(w + 100).expect("ok").map(|c| c.txn), Some(1));
    assert_eq!(ix.commit_at(w + 150).expect("ok"), None);
}

#[test]
fn a_writer_killed_midway_is_redone_without_duplicates() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    // As if a writer linked one entry and died before the coverage moved.
    ix.add_entry(&mut Search::new(&ix), w + 50, b"k", Some(b"v"))
        .expect("ok");
    assert_eq!(ix.covered(), w);
    assert!(ix.add_txn(w, commit(w + 50, 1), &[], [(&b"k"[..], Some(&b"v"[..]))]));
    assert_eq!(all_keys(&ix), vec![b"k".to_vec()]);
    assert_eq!(word(ix.bytes(), AT_ENTRIES), 1);
}

type Model = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Random transactions against a model of every version; cursors both ways at random limits.
#[test]
fn cursors_and_lookups_match_a_model() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    let mut models: Vec<(u64, Model)> = vec![(w, BTreeMap::new())];
    let mut deletes: Vec<StampedDelete> = Vec::new();
    let mut rnd = xorshift(0x1234_5678);
    let mut end = w;
    for txn in 1..300u64 {
        let mut model = models.last().expect("ok").1.clone();
        let start = end;
        end += 10 + rnd(50);
        let mut txn_deletes = Vec::new();
        if rnd(10) == 0 {
            let a = vec![b'a' + rnd(20) as u8];
            let b = vec![a[0] + 1 + rnd(4) as u8];
            model.retain(|k, _| !(k >= &a && k < &b));
            txn_deletes.push(RangeDelete {
                start: Arc::from(a.clone()),
                end: Some(Arc::from(b)),
            });
        }
        let mut writes = BTreeMap::new();
        // Now and then a transaction too large for the recent chain: it goes into the list.
        let count = if rnd(8) == 0 { 20 + rnd(10) } else { rnd(5) };
        for _ in 0..count {
            let k = vec![b'a' + rnd(24) as u8, b'0' + rnd(3) as u8];
            let v = (rnd(4) != 0).then(|| format!("{txn}").into_bytes());
            writes.insert(k, v);
        }
        for (k, v) in &writes {
            model.insert(k.clone(), v.clone());
        }
        assert!(ix.add_txn(
            start,
            commit(end, txn),
            &txn_deletes,
            writes.iter().map(|(k, v)| (&k[..], v.as_deref()))
        ));
        deletes.extend(
            txn_deletes
                .into_iter()
                .map(|range| StampedDelete { stamp: end, range }),
        );
        models.push((end, model));
    }
    for (limit, model) in &models {
        let visible: Vec<StampedDelete> = ix.deletes_at(*limit).expect("ok");
        assert_eq!(
            visible.len(),
            deletes.iter().filter(|d| d.stamp <= *limit).count()
        );
        let expect: Vec<(Vec<u8>, Option<Vec<u8>>)> = model
            .iter()
            .filter(|(_, v)| v.is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (k, v) in model {
            let got = value_of(&ix, k, *limit);
            let want = match v {
                Some(v) => Some(Some(v.clone())),
                // A deleted key reads as a tombstone or as absent (a range deletion).
                None => got.clone().filter(|g| g.is_none()),
            };
            assert_eq!(got.flatten(), want.flatten(), "key {k:?} at {limit}");
        }
        for reverse in [false, true] {
            let range = (
                Bound::Included(b"c".to_vec()),
                Bound::Excluded(b"q".to_vec()),
            );
            let mut got: Vec<(Vec<u8>, Option<Vec<u8>>)> =
                Cursor::new(&ix, *limit, &visible, range, reverse)
                    .map(|r| r.expect("ok"))
                    .filter(|(_, v)| v.is_some())
                    .map(|(k, v)| {
                        (
                            k.to_vec(),
                            v.map(|(s, t)| ix.bytes().bytes(s, t - s).expect("ok").to_vec()),
                        )
                    })
                    .collect();
            if reverse {
                got.reverse();
            }
            let want: Vec<_> = expect
                .iter()
                .filter(|(k, _)| k.as_slice() >= b"c" && k.as_slice() < b"q")
                .cloned()
                .collect();
            assert_eq!(got, want, "limit {limit} reverse {reverse}");
        }
    }
    // The writer searched the list both ways: with `pread` first, then through the map.
    let searches = ix.searches.load(Ordering::Relaxed);
    assert!(searches > COLD_SEARCHES, "{searches} searches");
}

#[test]
fn a_writer_killed_midway_through_a_recent_transaction_is_redone_without_duplicates() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    assert!(ix.add_txn(w, commit(w + 50, 1), &[], [(&b"a"[..], Some(&b"1"[..]))]));
    // As if a writer put one entry on the chain and died before the coverage moved.
    ix.add_recent(w + 90, b"k", Some(b"v")).expect("ok");
    assert_eq!(ix.covered(), w + 50);
    assert_eq!(value_of(&ix, b"k", w + 50), None);
    assert!(ix.add_txn(
        w + 50,
        commit(w + 90, 2),
        &[],
        [(&b"j"[..], Some(&b"u"[..])), (&b"k"[..], Some(&b"v"[..]))]
    ));
    assert_eq!(word(ix.bytes(), AT_ENTRIES), 3);
    assert_eq!(value_of(&ix, b"k", w + 90), Some(Some(b"v".to_vec())));
    ix.merge_recent(&mut Search::new(&ix)).expect("merge");
    assert_eq!(word(ix.bytes(), AT_MERGED), w + 90);
    assert_eq!(
        all_keys(&ix),
        vec![b"a".to_vec(), b"j".to_vec(), b"k".to_vec()]
    );
}

/// Small transactions go on the recent chain, not the list, until it holds `RECENT_MAX`
/// entries; a cursor that read the chain before a merge, and goes on after it, sees each key
/// once, at its newest version.
#[test]
fn the_recent_chain_is_merged_at_its_bound_and_cursors_span_a_merge() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    let end = std::cell::Cell::new(w);
    let add = |ix: &LogIndex, keys: &[String], value: &str| {
        let start = end.get();
        end.set(start + 100);
        assert!(ix.add_txn(
            start,
            commit(start + 100, (start - w) / 100 + 1),
            &[],
            keys.iter().map(|k| (k.as_bytes(), Some(value.as_bytes())))
        ));
    };
    let keys = |from: u32, n: u32| {
        (from..from + n)
            .map(|i| format!("k{i:04}"))
            .collect::<Vec<_>>()
    };
    for i in 0..40 {
        add(&ix, &keys(i * 3, 3), "old");
    }
    // The first transaction made the table, in the list; the 117 entries after it are on
    // the chain.
    let listed =
        |ix: &LogIndex| std::iter::successors(ix.next_entry(0), |at| ix.next_entry(*at)).count();
    assert_eq!(word(ix.bytes(), AT_RECENT_COUNT), 117);
    assert_eq!(listed(&ix), 3);
    // Rewrite the first twelve keys: the chain would pass its bound, so it is merged first.
    add(&ix, &keys(0, 12), "new");
    assert_eq!(word(ix.bytes(), AT_RECENT_COUNT), 12);
    assert_eq!(listed(&ix), 120);
    assert_eq!(
        value_of(&ix, b"k0003", end.get()),
        Some(Some(b"new".to_vec()))
    );
    assert_eq!(
        value_of(&ix, b"k0003", end.get() - 100),
        Some(Some(b"old".to_vec()))
    );
    let read = |ix: &LogIndex, limit: u64, merge_midway: bool, reverse: bool| {
        let mut cursor = Cursor::new(
            ix,
            limit,
            &[],
            (Bound::Unbounded, Bound::Unbounded),
            reverse,
        );
        let mut out = Vec::new();
        let first = cursor.next().expect("a key").expect("ok");
        out.push(first);
        if merge_midway {
            ix.merge_recent(&mut Search::new(ix)).expect("merge");
        }
        out.extend(cursor.map(|r| r.expect("ok")));
        out.iter()
            .map(|(k, v)| {
                let (s, e) = v.expect("a value");
                (k.to_vec(), ix.bytes().bytes(s, e - s).expect("ok").to_vec())
            })
            .collect::<Vec<_>>()
    };
    let limit = end.get();
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = keys(0, 120)
        .into_iter()
        .enumerate()
        .map(|(i, k)| {
            (
                k.into_bytes(),
                if i < 12 {
                    b"new".to_vec()
                } else {
                    b"old".to_vec()
                },
            )
        })
        .collect();
    assert_eq!(read(&ix, limit, false, false), want);
    assert_eq!(read(&ix, limit, true, false), want);
    // One more small transaction on the chain, then backwards across a merge.
    add(&ix, &keys(200, 2), "newest");
    assert_eq!(read(&ix, limit, false, false), want);
    want.extend(
        keys(200, 2)
            .into_iter()
            .map(|k| (k.into_bytes(), b"newest".to_vec())),
    );
    want.reverse();
    assert_eq!(read(&ix, end.get(), true, true), want);
}

/// The writer's searches with `pread` (`cold.rs`) and through the map agree, node for node:
/// the same predecessors at every level and the same entry found, on a list built by both
/// (the first `COLD_SEARCHES` of the builder's searches read nodes, the rest the map), with
/// keys of every length up to the longest, for which a node is read in two parts.
#[test]
fn searches_without_the_map_find_what_the_map_finds() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    let mut rnd = xorshift(0x0dd_ba11);
    let key_of = |i: u64, long: bool| {
        let mut k = format!("k{:05}", i).into_bytes();
        if long {
            k.resize(crate::format::MAX_KEY_BYTES, b'x');
        }
        k
    };
    let mut end = w;
    for txn in 1..400u64 {
        let start = end;
        end += 100;
        let count = if rnd(6) == 0 {
            17 + rnd(20)
        } else {
            1 + rnd(4)
        };
        let writes: Vec<(Vec<u8>, Option<Vec<u8>>)> = (0..count)
            .map(|_| {
                let k = key_of(rnd(3000), rnd(50) == 0);
                (k, (rnd(5) != 0).then(|| vec![b'v'; rnd(40) as usize]))
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect();
        let added = ix.add_txn(
            start,
            commit(end, txn),
            &[],
            writes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
        );
        assert!(added, "txn {txn}");
    }
    assert!(
        ix.searches.load(Ordering::Relaxed) > COLD_SEARCHES,
        "both ways built it"
    );
    let mut cold = cold::ColdReader::new(&ix);
    for probe in 0..2000u64 {
        let key = key_of(rnd(3100), probe % 7 == 0);
        let limit = w + 100 * rnd(420);
        let mut by_read = [0usize; MAX_HEIGHT];
        let mut by_map = [0usize; MAX_HEIGHT];
        let read = cold.find(&key, limit, &mut by_read).expect("read");
        let mapped = ix.find_version_of(&key, limit, &mut by_map).expect("map");
        assert_eq!(read, mapped, "probe {probe}");
        assert_eq!(by_read, by_map, "probe {probe}");
    }
}

/// The point-read table under load: keys enough to grow it several times (each growth a
/// rebuild from the list), lookups of every key's newest version, of older limits, and of
/// keys the index does not hold (most of whose probes pass over other keys' slots by their
/// hash half alone).
#[test]
fn the_table_finds_every_key_and_no_absent_one_as_it_grows() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    let key = |i: u64| format!("key-{i:08}").into_bytes();
    let mut end = w;
    let mut first_limit = None;
    for txn in 0..100u64 {
        let start = end;
        end += 1000;
        let writes: Vec<(Vec<u8>, Vec<u8>)> = (0..200)
            .map(|j| (key(txn * 200 + j), format!("v{txn}").into_bytes()))
            .collect();
        assert!(ix.add_txn(
            start,
            commit(end, txn + 1),
            &[],
            writes.iter().map(|(k, v)| (&k[..], Some(&v[..])))
        ));
        first_limit.get_or_insert(end);
    }
    // A second version of every tenth key, in small transactions (the recent chain).
    for i in (0..20_000u64).step_by(10) {
        let start = end;
        end += 10;
        let (k, v) = (key(i), b"second".to_vec());
        assert!(ix.add_txn(start, commit(end, 100 + i), &[], [(&k[..], Some(&v[..]))]));
    }
    for i in 0..20_000u64 {
        let want = if i % 10 == 0 {
            b"second".to_vec()
        } else {
            format!("v{}", i / 200).into_bytes()
        };
        assert_eq!(
            value_of(&ix, &key(i), u64::MAX),
            Some(Some(want)),
            "key {i}"
        );
        assert_eq!(
            value_of(&ix, &key(20_000 + i), u64::MAX),
            None,
            "absent {i}"
        );
    }
    let first = first_limit.expect("ok");
    assert_eq!(value_of(&ix, &key(0), first), Some(Some(b"v0".to_vec())));
    assert_eq!(value_of(&ix, &key(200), first), None);
}

/// Keys that share their first slot but not their hash half: each finds its own entry, and
/// one absent key that shares the slot is not taken for either.
#[test]
fn keys_sharing_a_first_slot_are_told_apart_by_their_hash_half() {
    let ix = index();
    let w = crate::wal::WAL_HEADER_BYTES;
    // A table exists from the first transaction on (FORMAT.md §9); it has 4096 slots.
    let mask = 4095u64;
    let h = |k: &[u8]| xxhash_rust::xxh3::xxh3_64(k);
    let target = h(b"k0") & mask;
    let same_slot: Vec<Vec<u8>> = (1..200_000u64)
        .map(|i| format!("k{i}").into_bytes())
        .filter(|k| h(k) & mask == target)
        .take(3)
        .collect();
    assert_eq!(same_slot.len(), 3);
    let (a, b, absent) = (&b"k0"[..], &same_slot[0][..], &same_slot[1][..]);
    assert_ne!(h(a) >> 32, h(b) >> 32);
    let mut end = w;
    for (txn, k) in [a, b].into_iter().enumerate() {
        let start = end;
        end += 100;
        assert!(ix.add_txn(start, commit(end, txn as u64 + 1), &[], [(k, Some(k))]));
    }
    assert_eq!(value_of(&ix, a, u64::MAX), Some(Some(a.to_vec())));
    assert_eq!(value_of(&ix, b, u64::MAX), Some(Some(b.to_vec())));
    assert_eq!(value_of(&ix, absent, u64::MAX), None);
}
