//! `changes` and `apply`: a store's change feed as JSON Lines, and a replica kept by them.
//!
//! One line per committed transaction, in commit order:
//! `{"txn":N,"range_deletes":[[START,END|null]...],"writes":[[KEY,VALUE|null]...]}`, bytes
//! encoded as `export` encodes them ([`crate::encoding`]); range deletions apply before the
//! writes, a `null` end is "to the last key", a `null` value a deletion. `apply` reads such
//! lines and applies them with `Store::apply_changes`, which skips what the replica holds.

use super::Context;
use crate::args::arg_bytes;
use crate::encoding::{from_json, to_json};
use crate::exit::{Exit, Failure};
use crate::output::{print_json, refuse, say, Outcome};
use serde_json::{json, Value as Json};
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::time::Duration;
use walstore::{Changes, FeedRecord, Store};

/// A key and its value or end, `None` for a deletion or an unbounded end.
type Pair = (Vec<u8>, Option<Vec<u8>>);

/// Records applied in one transaction at most, when more are waiting on stdin.
pub(crate) const BATCH_RECORDS: usize = 1000;

/// How long one wait for a commit lasts with `--follow` and no `--until`: between two, it
/// looks whether the reader of its output has gone.
const WAIT_SLICE: Duration = Duration::from_millis(500);

/// How long one wait lasts with `--follow --until`: the feed's position also moves past
/// transactions outside the prefix, which wake no wait, so it is looked at this often.
const UNTIL_SLICE: Duration = Duration::from_millis(100);

/// What `changes` was asked for.
#[derive(Debug)]
pub(crate) struct ChangesSpec<'a> {
    pub(crate) prefix: Option<&'a OsString>,
    pub(crate) since: Option<u64>,
    pub(crate) consumer: Option<&'a str>,
    pub(crate) until: Option<u64>,
    pub(crate) follow: bool,
    pub(crate) ack: bool,
}

fn pairs_json(pairs: &[Pair]) -> Json {
    let pair = |(a, b): &Pair| json!([to_json(a), b.as_deref().map_or(Json::Null, to_json)]);
    Json::Array(pairs.iter().map(pair).collect())
}

/// One record as its line (without the newline), members in the documented order.
pub(crate) fn record_line(r: &FeedRecord) -> String {
    format!(
        "{{\"txn\":{},\"range_deletes\":{},\"writes\":{}}}",
        r.txn_id,
        pairs_json(&r.range_deletes),
        pairs_json(&r.writes)
    )
}

/// The `[bytes, bytes|null]` pairs of member `name`.
fn parse_pairs(record: &Json, name: &str) -> Result<Vec<Pair>, String> {
    let items = record
        .get(name)
        .and_then(Json::as_array)
        .ok_or_else(|| format!("\"{name}\" must be an array of [bytes, bytes or null] pairs"))?;
    let one = |(i, item): (usize, &Json)| match item.as_array().map(Vec::as_slice) {
        Some([a, b]) => {
            let second = match b {
                Json::Null => None,
                b => Some(from_json(b).map_err(|e| format!("\"{name}\"[{i}][1]: {e}"))?),
            };
            Ok((
                from_json(a).map_err(|e| format!("\"{name}\"[{i}][0]: {e}"))?,
                second,
            ))
        }
        _ => Err(format!(
            "\"{name}\"[{i}] must be a pair [bytes, bytes or null]"
        )),
    };
    items.iter().enumerate().map(one).collect()
}

/// One line of `apply`'s input.
pub(crate) fn parse_record(line_no: usize, line: &str) -> Result<FeedRecord, Failure> {
    let bad = |why: String| Failure::usage(format!("stdin line {line_no}: {why}"));
    let record: Json = serde_json::from_str(line).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !record.is_object() {
        return Err(bad("not a `walstore changes` record (a JSON object)".into()));
    }
    let txn_id = match record.get("txn").and_then(Json::as_u64) {
        Some(txn) if txn > 0 => txn,
        _ => {
            return Err(bad(
                "\"txn\" must be a transaction id (a whole number > 0)".into()
            ))
        }
    };
    Ok(FeedRecord {
        txn_id,
        range_deletes: parse_pairs(&record, "range_deletes").map_err(bad)?,
        writes: parse_pairs(&record, "writes").map_err(bad)?,
    })
}

/// The feed `spec` asks for: after `--since` (default 0) or after the consumer's position.
fn open_feed(store: &Store, spec: &ChangesSpec<'_>) -> Result<Changes, Failure> {
    let prefix = spec.prefix.map(|p| arg_bytes(p)).unwrap_or_default();
    Ok(match spec.consumer {
        Some(name) => store.consumer_changes(name, &prefix)?,
        None => store.changes(&prefix, spec.since.unwrap_or(0))?,
    })
}

/// The last transaction to print: `--until`, and without `--follow` also the newest commit
/// when it started (what is durable now).
fn stop_point(store: &Store, spec: &ChangesSpec<'_>) -> Result<Option<u64>, Failure> {
    if spec.follow {
        return Ok(spec.until);
    }
    let head = store.begin_read()?.txn_id();
    Ok(Some(spec.until.map_or(head, |until| until.min(head))))
}

/// The next record: waiting in slices with `--follow`, `None` when a slice passed (or,
/// without `--follow`, when nothing more is durable).
fn next_record(
    feed: &mut Changes,
    follow: bool,
    until: Option<u64>,
) -> Result<Option<FeedRecord>, Failure> {
    let record = match (follow, until) {
        (false, _) => feed.try_next()?,
        (true, None) => feed.next_timeout(WAIT_SLICE)?,
        (true, Some(_)) => feed.next_timeout(UNTIL_SLICE)?,
    };
    Ok(record)
}

/// Opens the store for `changes`: writable to acknowledge, else read-only (`None`: no store).
fn open_for_changes(
    cx: &Context<'_>,
    store: &Path,
    spec: &ChangesSpec<'_>,
) -> Result<Option<Store>, Failure> {
    if spec.ack {
        return cx.open_writable(store).map(Some);
    }
    cx.open_if_exists(store)
}

pub(crate) fn changes(cx: &Context<'_>, path: &Path, spec: &ChangesSpec<'_>) -> Outcome {
    let Some(store) = open_for_changes(cx, path, spec)? else {
        let message = format!(
            "no store at {} yet: no changes to list (writing commands create it)",
            path.display()
        );
        return refuse(cx.json, Exit::NotFound, &message, json!({}));
    };
    let mut feed = open_feed(&store, spec)?;
    let stop = stop_point(&store, spec)?;
    let mut out = std::io::stdout().lock();
    loop {
        if stop.is_some_and(|n| feed.position() >= n) {
            break;
        }
        let Some(record) = next_record(&mut feed, spec.follow, stop)? else {
            if spec.follow && !reader_gone() {
                continue;
            }
            break;
        };
        if stop.is_some_and(|n| record.txn_id > n) {
            break;
        }
        let written = writeln!(out, "{}", record_line(&record)).and_then(|()| out.flush());
        match written {
            Ok(()) => {}
            // The reader is gone (`| head -1`): nobody wants more, which is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(Failure::stdout(&e)),
        }
        if let (true, Some(name)) = (spec.ack, spec.consumer) {
            store.ack(name, record.txn_id)?;
        }
    }
    drop(out);
    drop(feed);
    cx.close(store)?;
    Ok(Exit::Ok)
}

/// Whether stdout is a pipe whose reader has gone (poll reports an error or a hang-up),
/// so that a following `changes` ends without waiting for a record to write.
#[cfg(unix)]
fn reader_gone() -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(&stdout, PollFlags::empty())];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&now)) {
        Ok(n) if n > 0 => fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        _ => false,
    }
}

/// Elsewhere the reader's leaving is noticed at the next record written.
#[cfg(not(unix))]
fn reader_gone() -> bool {
    false
}

/// What `apply` did in all.
#[derive(Debug, Default)]
struct Totals {
    applied: u64,
    skipped: u64,
    position: Option<u64>,
}

/// Applies `batch` (one transaction) and empties it.
fn apply_batch(store: &Store, batch: &mut Vec<FeedRecord>, totals: &mut Totals) -> Outcome {
    if batch.is_empty() {
        return Ok(Exit::Ok);
    }
    let stats = store.apply_changes(batch.drain(..))?;
    totals.applied += stats.applied;
    totals.skipped += stats.skipped;
    totals.position = Some(stats.position);
    Ok(Exit::Ok)
}

/// Reads records from `input` and applies them in batches: the lines already read when
/// no more input is buffered, or [`BATCH_RECORDS`] of them. A malformed line fails before
/// its batch is applied (the batches before it are).
fn apply_lines<R: Read>(store: &Store, input: &mut BufReader<R>, totals: &mut Totals) -> Outcome {
    let mut batch = Vec::new();
    let mut line = String::new();
    for line_no in 1.. {
        line.clear();
        let read = input
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("stdin line {line_no}: cannot read: {e}")))?;
        if read == 0 {
            break;
        }
        if !line.trim().is_empty() {
            batch.push(parse_record(line_no, &line)?);
        }
        // `buffer()` does not read: empty means no more input had arrived yet.
        if batch.len() >= BATCH_RECORDS || input.buffer().is_empty() {
            apply_batch(store, &mut batch, totals)?;
        }
    }
    apply_batch(store, &mut batch, totals)
}

pub(crate) fn apply(cx: &Context<'_>, path: &Path) -> Outcome {
    let store = cx.open_writable(path)?;
    let mut totals = Totals::default();
    let mut input = BufReader::with_capacity(1 << 16, std::io::stdin());
    apply_lines(&store, &mut input, &mut totals)?;
    let position = match totals.position {
        Some(p) => p,
        None => store.applied_position()?,
    };
    cx.close(store)?;
    say(&format!(
        "applied {} records, skipped {}; position {position}",
        totals.applied, totals.skipped
    ));
    if cx.json {
        let fields =
            json!({"applied": totals.applied, "skipped": totals.skipped, "position": position});
        print_json(&crate::output::answer(Exit::Ok, None, fields))?;
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_line_parses_back_to_the_same_record() {
        let record = FeedRecord {
            txn_id: 42,
            range_deletes: vec![(b"a".to_vec(), Some(vec![0xff])), (b"z".to_vec(), None)],
            writes: vec![
                (vec![0x00, 0x80], Some(b"v".to_vec())),
                (b"k".to_vec(), None),
            ],
        };
        let line = record_line(&record);
        assert!(line.starts_with("{\"txn\":42,\"range_deletes\":[[\"a\",{\"base64\":\"/w==\"}]"));
        assert_eq!(parse_record(1, &line).ok(), Some(record));
        let empty = r#"{"txn":1,"range_deletes":[],"writes":[]}"#;
        assert!(parse_record(1, empty).is_ok());
        let failure = parse_record(7, r#"{"txn":1,"range_deletes":[],"writes":[1]}"#);
        assert!(failure.is_err_and(|f| f.message.starts_with("stdin line 7: ")));
    }
}
