//! `consumer` and `retention`: the change feed's named consumers and what it keeps, and the
//! feed's part of `info`.

use super::Context;
use crate::args::ConsumerAction;
use crate::exit::Exit;
use crate::output::{print_json, report, write_out, Outcome};
use serde_json::{json, Value as Json};
use std::path::Path;
use std::time::Duration;
use walstore::{FeedState, Retention};

pub(crate) fn consumer(cx: &Context<'_>, path: &Path, action: &ConsumerAction) -> Outcome {
    match action {
        ConsumerAction::Register { name, after } => register(cx, path, name, *after),
        ConsumerAction::Ack { name, txn } => {
            let store = cx.open_writable(path)?;
            store.ack(name, *txn)?;
            cx.close(store)?;
            report(
                cx.json,
                String::new,
                &json!({"name": name, "position": txn}),
            )
        }
        ConsumerAction::Unregister { name } => {
            let store = cx.open_writable(path)?;
            store.unregister_consumer(name)?;
            cx.close(store)?;
            report(cx.json, String::new, &json!({"name": name}))
        }
        ConsumerAction::List => list(cx, path),
    }
}

fn register(cx: &Context<'_>, path: &Path, name: &str, after: Option<u64>) -> Outcome {
    let store = cx.open_writable(path)?;
    let position = match after {
        Some(after) => {
            store.register_consumer_at(name, after)?;
            after
        }
        None => store.register_consumer(name)?,
    };
    cx.close(store)?;
    report(
        cx.json,
        || format!("registered {name:?} after transaction {position}"),
        &json!({"name": name, "position": position}),
    )
}

fn list(cx: &Context<'_>, path: &Path) -> Outcome {
    let store = cx.open_readable(path)?;
    let state = store.feed_state()?;
    cx.close(store)?;
    if cx.json {
        let fields = json!({"consumers": consumers_json(&state)});
        print_json(&crate::output::answer(Exit::Ok, None, fields))?;
    } else {
        let text: String = state
            .consumers
            .iter()
            .map(|(name, position)| format!("{name}\t{position}\n"))
            .collect();
        write_out(text.as_bytes())?;
    }
    Ok(Exit::Ok)
}

/// `--keep-bytes`, `--max-bytes`, `--max-age-secs`: `None` where not given.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetentionArgs {
    pub(crate) keep_bytes: Option<u64>,
    pub(crate) max_bytes: Option<u64>,
    pub(crate) max_age_secs: Option<u64>,
}

impl RetentionArgs {
    fn any(&self) -> bool {
        self.keep_bytes.is_some() || self.max_bytes.is_some() || self.max_age_secs.is_some()
    }

    /// `current` with the given fields replaced.
    fn over(&self, current: Retention) -> Retention {
        Retention {
            keep_bytes: self.keep_bytes.unwrap_or(current.keep_bytes),
            max_bytes: self.max_bytes.unwrap_or(current.max_bytes),
            max_age: self
                .max_age_secs
                .map_or(current.max_age, Duration::from_secs),
        }
    }
}

pub(crate) fn retention(cx: &Context<'_>, path: &Path, args: RetentionArgs) -> Outcome {
    let state = if args.any() {
        let store = cx.open_writable(path)?;
        store.set_retention(args.over(store.feed_state()?.retention))?;
        let state = store.feed_state()?;
        cx.close(store)?;
        state
    } else {
        let store = cx.open_readable(path)?;
        let state = store.feed_state()?;
        cx.close(store)?;
        state
    };
    report(cx.json, || feed_text(&state), &feed_json(&state))
}

fn consumers_json(state: &FeedState) -> Json {
    let one = |(name, position): (&String, &u64)| json!({"name": name, "position": position});
    Json::Array(state.consumers.iter().map(one).collect())
}

/// The feed's state as `retention --json` and `info --json` (`"feed"`) show it.
pub(crate) fn feed_json(state: &FeedState) -> Json {
    let r = state.retention;
    let segments: Vec<Json> = state
        .segments
        .iter()
        .map(|s| {
            json!({
                "generation": s.generation, "first_txn": s.first_txn, "last_txn": s.last_txn,
                "bytes": s.bytes, "sealed_at": s.sealed_at,
            })
        })
        .collect();
    json!({
        "keep_bytes": r.keep_bytes,
        "max_bytes": r.max_bytes,
        "max_age_secs": r.max_age.as_secs(),
        "retained_bytes": state.retained_bytes(),
        "segments": segments,
        "consumers": consumers_json(state),
        "applied": state.applied,
    })
}

/// The feed's state as `retention` and `info` print it.
pub(crate) fn feed_text(state: &FeedState) -> String {
    let r = state.retention;
    let mut text = format!(
        "retention: keep {} bytes, at most {} bytes and {} s\n\
         retained: {} bytes of sealed log in {} segments",
        r.keep_bytes,
        r.max_bytes,
        r.max_age.as_secs(),
        state.retained_bytes(),
        state.segments.len()
    );
    if let (Some(first), Some(last)) = (state.segments.first(), state.segments.last()) {
        let span = format!(" (transactions {} to {})", first.first_txn, last.last_txn);
        text.push_str(&span);
    }
    text.push_str(&format!("\nconsumers: {}", state.consumers.len()));
    for (name, position) in &state.consumers {
        text.push_str(&format!("\n  {name}: acknowledged through {position}"));
    }
    if let Some(applied) = state.applied {
        text.push_str(&format!("\napplied (as a replica): through {applied}"));
    }
    text
}
