//! Bounded reads checked against a known state (invariant 12): ranges with inclusive,
//! exclusive and open bounds, prefix scans, and point gets of present and absent keys. A
//! whole-store scan and point gets of present keys cannot see a range read that starts one
//! entry early in a snapshot file, or a prefix scan that misses the first file of its range.
//!
//! Every range is also read backwards, which must give the same entries in reverse order.
//!
//! The queries are drawn from the state's own keys and their neighbours (a key with a byte
//! added or removed), seeded, so a failure names the query and replays.

use crate::engine::{to_state, EngineError, Entries, Handle, ReadTxn};
use crate::oracle::{describe, Invariant, State, Violation};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::ops::Bound;

/// Range reads per check.
const RANGES: usize = 8;
/// Prefix scans per check.
const PREFIXES: usize = 3;
/// Point gets per check.
const GETS: usize = 6;

/// Checks bounded reads of one read transaction of `store` against `expected` (the state a
/// whole-store scan found and the oracle accepted, or the model's state during a run).
pub fn check_reads(store: &dyn Handle, expected: &State, seed: u64) -> Result<(), Violation> {
    let read = store
        .begin_read()
        .map_err(|e| violation("begin_read failed", "a read transaction", e.to_string()))?;
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<&String> = expected.keys().collect();
    for _ in 0..RANGES {
        let (lo, hi) = range_bounds(&mut rng, &keys);
        let want: State = expected
            .range::<String, _>((lo.clone(), hi.clone()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let bytes = (as_bytes(&lo), as_bytes(&hi));
        let got = collect(read.range(bytes.0, bytes.1))
            .map_err(|e| violation(&format!("range {lo:?}..{hi:?} failed"), &describe(&want), e))?;
        compare(&format!("range ({lo:?}, {hi:?})"), &want, &got)?;
        check_reverse(&*read, (&lo, &hi), &want)?;
    }
    for _ in 0..PREFIXES {
        let prefix = a_prefix(&mut rng, &keys);
        let want: State = expected
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let got = collect(read.scan_prefix(prefix.as_bytes()))
            .map_err(|e| violation(&format!("prefix {prefix:?} failed"), &describe(&want), e))?;
        compare(&format!("prefix scan {prefix:?}"), &want, &got)?;
    }
    for _ in 0..GETS {
        let key = a_key(&mut rng, &keys);
        let want = expected.get(&key).cloned();
        let got = read
            .get(key.as_bytes())
            .map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()))
            .map_err(|e| {
                violation(
                    &format!("get {key:?} failed"),
                    &format!("{want:?}"),
                    e.to_string(),
                )
            })?;
        if got != want {
            return Err(violation(
                &format!("a point get of {key:?} disagrees with the state"),
                &format!("{want:?}"),
                format!("{got:?}"),
            ));
        }
    }
    Ok(())
}

/// A key that is present, or a neighbour of one that is usually absent (a byte added,
/// the last byte dropped or raised), or one below or above every key.
fn a_key(rng: &mut StdRng, keys: &[&String]) -> String {
    if keys.is_empty() {
        return "absent".into();
    }
    let mut key = keys[rng.gen_range(0..keys.len())].clone();
    match rng.gen_range(0..6u8) {
        0 => key.push('\u{1}'),
        1 => key.push('~'),
        2 if key.len() > 1 => {
            key.pop();
        }
        3 => {
            if let Some(last) = key.pop() {
                key.push(char::from_u32(u32::from(last) + 1).unwrap_or('~'));
            }
        }
        4 => {
            key = if rng.gen_bool(0.5) {
                "!".into()
            } else {
                "~~".into()
            }
        }
        _ => {}
    }
    key
}

fn a_bound(rng: &mut StdRng, keys: &[&String]) -> Bound<String> {
    match rng.gen_range(0..5u8) {
        0 => Bound::Unbounded,
        1 | 2 => Bound::Included(a_key(rng, keys)),
        _ => Bound::Excluded(a_key(rng, keys)),
    }
}

/// Bounds the model's `BTreeMap::range` accepts (start not after end, not both excluded at
/// the same key).
fn range_bounds(rng: &mut StdRng, keys: &[&String]) -> (Bound<String>, Bound<String>) {
    let (mut lo, mut hi) = (a_bound(rng, keys), a_bound(rng, keys));
    let key = |b: &Bound<String>| match b {
        Bound::Included(k) | Bound::Excluded(k) => Some(k.clone()),
        Bound::Unbounded => None,
    };
    if let (Some(a), Some(b)) = (key(&lo), key(&hi)) {
        if a > b {
            std::mem::swap(&mut lo, &mut hi);
        }
        if a == b {
            lo = Bound::Included(a);
            hi = Bound::Included(b);
        }
    }
    (lo, hi)
}

fn a_prefix(rng: &mut StdRng, keys: &[&String]) -> String {
    let key = a_key(rng, keys);
    let cut = rng.gen_range(1..=key.len().max(1));
    key.chars().take(cut).collect()
}

fn as_bytes(b: &Bound<String>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(k.as_bytes()),
        Bound::Excluded(k) => Bound::Excluded(k.as_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn collect(entries: Result<Entries, EngineError>) -> Result<State, String> {
    entries.map(to_state).map_err(|e| e.to_string())
}

fn compare(query: &str, want: &State, got: &State) -> Result<(), Violation> {
    if want == got {
        return Ok(());
    }
    Err(violation(
        &format!("{query} disagrees with the state"),
        &describe(want),
        describe(got),
    ))
}

/// The same range read backwards holds the same entries, last key first.
fn check_reverse(
    read: &dyn ReadTxn,
    (lo, hi): (&Bound<String>, &Bound<String>),
    want: &State,
) -> Result<(), Violation> {
    let want: Vec<(String, String)> = want
        .iter()
        .rev()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let shown = |entries: &[(String, String)]| describe(&entries.iter().cloned().collect());
    let got: Vec<(String, String)> = read
        .range_rev(as_bytes(lo), as_bytes(hi))
        .map_err(|e| {
            violation(
                &format!("reverse range {lo:?}..{hi:?} failed"),
                &shown(&want),
                e.to_string(),
            )
        })?
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect();
    if got == want {
        return Ok(());
    }
    let keys = |entries: &[(String, String)]| {
        entries
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    Err(violation(
        &format!("reverse range ({lo:?}, {hi:?}) disagrees with the state"),
        &format!("keys {}", keys(&want)),
        format!("keys {}", keys(&got)),
    ))
}

fn violation(detail: &str, expected: &str, actual: String) -> Violation {
    Violation::new(Invariant::ReadsAgree, detail, expected, actual)
}
