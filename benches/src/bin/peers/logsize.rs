//! The log-size workload (issue 21): stores whose log holds 0 to 48 MiB beyond the last
//! checkpoint, and a fresh process per operation on them (a get of one key, a durable commit of
//! three), timed by the parent, the stores taking turns; with the store closed by the process
//! that set it up, and held open by it meanwhile.

use crate::measure::{as_writes, small_txn};
use crate::spawn::{child, phase_args, run_checked};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use walstore_benches::data::{self, space, Scale, KEY_LEN, VALUE_LEN};
use walstore_benches::engines::{self, Kind, SQLITE_FILE};
use walstore_benches::mem::{self, MemKib};
use walstore_benches::report::{
    Failure, LogsizeRow, LogsizeStore, Report, LOGSIZE_MODES, LOGSIZE_OPS,
};
use walstore_benches::{BoxError, Result};

/// How long the parent waits for a holder to report its store ready before failing the run.
const READY_TIMEOUT: Duration = Duration::from_secs(900);
/// How long the parent waits for a holder to exit once asked to stop.
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often a waiting process looks at the condition it waits for.
const POLL: Duration = Duration::from_millis(5);

// ---------------------------------------------------------------------------------------------
// The parent.

/// The log-size workload: per mode and log size, one store per engine set up by a child
/// process (walstore first: its log sets how many transactions the others get), then `runs`
/// processes per store and operation, the stores taking turns.
pub(crate) fn run_logsize(
    exe: &Path,
    base: &Path,
    kinds: &[Kind],
    scale: &Scale,
    runs: u64,
    quick: bool,
    report: &mut Report,
) {
    let engines: Vec<Kind> = [Kind::Walstore, Kind::SqliteFull, Kind::Redb]
        .into_iter()
        .filter(|k| kinds.contains(k))
        .collect();
    if !engines.contains(&Kind::Walstore) {
        report.failures.push(Failure {
            workload: "logsize".into(),
            engine: "walstore".into(),
            error: "needs walstore (its log sets the sizes): add it to --engines".into(),
        });
        return;
    }
    let started = Instant::now();
    for mode in LOGSIZE_MODES {
        for &size_mib in &scale.logsize_mib {
            let t = Instant::now();
            eprint!("  logsize {mode:<6} {size_mib:>3} MiB: ");
            let _ = std::io::stderr().flush();
            let mut round = Round {
                exe,
                base,
                mode,
                size_mib,
                quick,
                holders: Vec::new(),
            };
            round.run(&engines, runs, report);
            round.stop_holders(report);
            for kind in &engines {
                let dir = round.dir(*kind);
                let _ = std::fs::remove_dir_all(&dir);
                let _ = std::fs::remove_file(marker(&dir, "ready"));
                let _ = std::fs::remove_file(marker(&dir, "stop"));
            }
            eprintln!("({:.1} s)", t.elapsed().as_secs_f64());
        }
    }
    eprintln!(
        "  logsize: done in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// The stores of one mode and log size, and the processes holding them open (mode `held`).
struct Round<'a> {
    exe: &'a Path,
    base: &'a Path,
    mode: &'static str,
    size_mib: u64,
    quick: bool,
    holders: Vec<(Kind, Child)>,
}

impl Round<'_> {
    /// The store directory of `kind`.
    fn dir(&self, kind: Kind) -> PathBuf {
        self.base.join(format!(
            "logsize-{}-{}-{}",
            self.mode,
            self.size_mib,
            kind.id()
        ))
    }

    /// Sets up the stores, then times the operations on those that were set up.
    fn run(&mut self, engines: &[Kind], runs: u64, report: &mut Report) {
        let mut ready: Vec<(Kind, u64)> = Vec::new();
        let mut txns = 0u64;
        for &kind in engines {
            if self.mode == "held" && kind == Kind::Redb {
                // redb locks its file: a second process cannot open it while one holds it.
                continue;
            }
            // walstore writes the log up to the size; the others get as many transactions.
            let n = if kind == Kind::Walstore {
                self.size_mib << 20
            } else {
                txns
            };
            match self.setup(kind, n) {
                Ok(store) => {
                    eprint!(
                        "{} {} txns, log {:.1} MiB ({:.1} s)  ",
                        kind.id(),
                        store.txns,
                        store.log_bytes as f64 / f64::from(1u32 << 20),
                        store.setup_seconds
                    );
                    let _ = std::io::stderr().flush();
                    if kind == Kind::Walstore {
                        txns = store.txns;
                    }
                    ready.push((kind, store.txns));
                    report.logsize_stores.push(store);
                }
                Err(e) => {
                    eprint!("{} set-up FAILED: {e}  ", kind.id());
                    self.fail(report, kind, "set-up", e);
                    if kind == Kind::Walstore {
                        return;
                    }
                }
            }
        }
        for op in LOGSIZE_OPS {
            self.time_op(op, &ready, runs, report);
        }
    }

    /// Sets up the store of `kind` (`n`: log bytes for walstore, transactions for the others)
    /// in a child process: run to its end (mode `closed`) or until it reports the store ready
    /// and then kept running (mode `held`). What the set-up reports, with the log file's
    /// length now.
    fn setup(&mut self, kind: Kind, n: u64) -> Result<LogsizeStore> {
        let dir = self.dir(kind);
        let workload = format!("logsize-setup-{}", self.mode);
        let mut store: LogsizeStore = if self.mode == "closed" {
            child(self.exe, kind.id(), &workload, &dir, self.quick, n)?
        } else {
            let holder = Command::new(self.exe)
                .args(phase_args(kind.id(), &workload, &dir, self.quick, n))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()?;
            self.holders.push((kind, holder));
            let (_, holder) = self.holders.last_mut().expect("just pushed");
            match wait_ready(holder, &marker(&dir, "ready")) {
                Ok(store) => store,
                Err(e) => {
                    // It has exited, or was killed: nothing to stop.
                    self.holders.pop();
                    return Err(e);
                }
            }
        };
        store.size_mib = self.size_mib;
        store.log_file_at_ops =
            log_file(kind, &dir).and_then(|p| p.metadata().ok().map(|m| m.len()));
        if kind == Kind::SqliteFull {
            let survived = match (self.mode, store.log_file_at_ops) {
                ("closed", None) => "the WAL did not survive the close (SQLite's last close \
                                     checkpoints and removes it)"
                    .to_string(),
                ("closed", Some(b)) => format!("the WAL survived the close ({b} bytes)"),
                (_, Some(_)) => "the WAL is held open by the set-up process".to_string(),
                (_, None) => "no WAL file while held".to_string(),
            };
            store.note = join_notes(&store.note, &survived);
        }
        Ok(store)
    }

    /// `runs` processes of `op` per store in `ready` (a store and its log transactions), the
    /// stores taking turns; one report row per store.
    fn time_op(&self, op: &str, ready: &[(Kind, u64)], runs: u64, report: &mut Report) {
        let mut ms: Vec<Vec<f64>> = vec![Vec::new(); ready.len()];
        let mut mems: Vec<Vec<(u64, MemKib)>> = vec![Vec::new(); ready.len()];
        let mut failed = vec![false; ready.len()];
        for i in 1..=runs {
            for (slot, &(kind, txns)) in ready.iter().enumerate() {
                if failed[slot] {
                    continue;
                }
                // get: which key depends on the log's transactions; put3: keys of process i.
                let n = if op == "get" { txns } else { i };
                let args = phase_args(
                    kind.id(),
                    &format!("logsize-{op}"),
                    &self.dir(kind),
                    self.quick,
                    n,
                );
                let t = Instant::now();
                let out = run_checked(Command::new(self.exe).args(args));
                let took = t.elapsed();
                match out.and_then(|o| Ok(serde_json::from_slice::<Shot>(&o)?)) {
                    Ok(shot) => {
                        ms[slot].push(took.as_secs_f64() * 1e3);
                        mems[slot].push((shot.peak.peak_rss, shot.open));
                    }
                    Err(e) => {
                        failed[slot] = true;
                        self.fail(report, kind, op, e);
                    }
                }
            }
        }
        for (slot, &(kind, _)) in ready.iter().enumerate() {
            if failed[slot] {
                continue;
            }
            if let Some(row) = LogsizeRow::from_runs(
                op,
                self.mode,
                self.size_mib,
                kind.id(),
                &ms[slot],
                &mems[slot],
            ) {
                eprint!("{op} {} {:.1} ms  ", kind.id(), row.p50_ms);
                report.logsize.push(row);
            }
        }
        let _ = std::io::stderr().flush();
    }

    /// Asks every holder to stop (its stop file) and waits for each to exit.
    fn stop_holders(&mut self, report: &mut Report) {
        for (kind, _) in &self.holders {
            if let Err(e) = std::fs::write(marker(&self.dir(*kind), "stop"), b"") {
                eprint!("cannot write the stop file of {}: {e}  ", kind.id());
            }
        }
        for (kind, mut holder) in std::mem::take(&mut self.holders) {
            if let Err(e) = wait_exit(&mut holder) {
                self.fail(report, kind, "holder", e);
            }
        }
    }

    fn fail(&self, report: &mut Report, kind: Kind, what: &str, e: BoxError) {
        report.failures.push(Failure {
            workload: "logsize".into(),
            engine: kind.id().into(),
            error: format!("{} {} MiB, {what}: {e}", self.mode, self.size_mib),
        });
    }
}

/// The ready or stop file of the store in `dir` (beside it, not in it).
fn marker(dir: &Path, what: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{what}"));
    PathBuf::from(name)
}

/// The log file of the store of `kind` in `dir` (redb has none).
fn log_file(kind: Kind, dir: &Path) -> Option<PathBuf> {
    match kind {
        Kind::Walstore => Some(dir.join("wal")),
        Kind::SqliteFull | Kind::SqliteNormal => Some(dir.join(format!("{SQLITE_FILE}-wal"))),
        _ => None,
    }
}

fn join_notes(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}; {b}")
    }
}

/// Waits until `holder` has written its ready file (what it set up, as JSON); fails if the
/// holder exits first or the file does not appear within [`READY_TIMEOUT`].
fn wait_ready(holder: &mut Child, ready: &Path) -> Result<LogsizeStore> {
    let t = Instant::now();
    loop {
        if ready.exists() {
            return Ok(serde_json::from_slice(&std::fs::read(ready)?)?);
        }
        if let Some(status) = holder.try_wait()? {
            return Err(format!(
                "the holder exited before its store was ready ({status}): {}",
                stderr_of(holder)
            )
            .into());
        }
        if t.elapsed() > READY_TIMEOUT {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err(format!(
                "the holder did not report its store ready within {} s ({} not written)",
                READY_TIMEOUT.as_secs(),
                ready.display()
            )
            .into());
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for a holder asked to stop to exit; an error if it failed or did not exit within
/// [`EXIT_TIMEOUT`] (then it is killed).
fn wait_exit(holder: &mut Child) -> Result<()> {
    let t = Instant::now();
    loop {
        if let Some(status) = holder.try_wait()? {
            if status.success() {
                return Ok(());
            }
            return Err(format!("the holder failed ({status}): {}", stderr_of(holder)).into());
        }
        if t.elapsed() > EXIT_TIMEOUT {
            let _ = holder.kill();
            let _ = holder.wait();
            return Err(format!(
                "the holder did not exit within {} s of its stop file",
                EXIT_TIMEOUT.as_secs()
            )
            .into());
        }
        std::thread::sleep(POLL);
    }
}

fn stderr_of(holder: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut e) = holder.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err.trim().to_string()
}

// ---------------------------------------------------------------------------------------------
// The children.

/// Runs log-size phase `workload` of `engine` in `dir`: `logsize-setup-closed` and
/// `logsize-setup-held` (`n`: log bytes for walstore, transactions for the others),
/// `logsize-get` (`n`: the log's transactions) and `logsize-put3` (`n`: the process's number).
/// The set-up prints what it set up (held: writes it to the ready file); get and put3 print
/// the process's memory.
pub(crate) fn run_child(
    engine: &str,
    workload: &str,
    dir: &Path,
    quick: bool,
    n: u64,
) -> Result<()> {
    let kind = Kind::from_id(engine).ok_or_else(|| format!("unknown store {engine:?}"))?;
    let scale = if quick { Scale::QUICK } else { Scale::FULL };
    let base = scale.logsize_base_keys;
    match workload {
        "logsize-setup-closed" => {
            let store = setup(kind, dir, base, n, "closed")?;
            println!("{}", serde_json::to_string(&store)?);
        }
        "logsize-setup-held" => {
            setup(kind, dir, base, n, "held")?;
        }
        "logsize-get" => {
            let (peak, open) = get(kind, dir, base, n)?;
            println!("{}", serde_json::to_string(&Shot { peak, open })?);
        }
        "logsize-put3" => {
            let (peak, open) = put3(kind, dir, n)?;
            println!("{}", serde_json::to_string(&Shot { peak, open })?);
        }
        other => return Err(format!("unknown workload {other:?}").into()),
    }
    Ok(())
}

/// Where the log ends: how many bytes walstore must have beyond its checkpoint, or how many
/// transactions to write.
#[derive(Clone, Copy)]
enum Until {
    LogBytes(u64),
    Txns(u64),
}

/// How a set-up writes to one store.
trait Filler {
    /// Commits `writes`, durably if `durable` (else without waiting for storage).
    fn commit(&mut self, writes: &[(&[u8], &[u8])], durable: bool) -> Result<()>;
    /// Checkpoints after the base (walstore, SQLite); makes the base durable.
    fn checkpoint(&mut self) -> Result<()>;
    /// Bytes of log beyond the last checkpoint.
    fn log_bytes(&mut self) -> Result<u64>;
    /// Makes everything written durable.
    fn finish(&mut self) -> Result<()>;
    /// Before the log is written, after the checkpoint (SQLite: no automatic checkpoint).
    fn before_log(&mut self) -> Result<()> {
        Ok(())
    }
}

/// One set-up: a store of `base` keys in `dir`, checkpointed, then the log up to `n` (walstore:
/// log bytes; the others: transactions); then closed (mode `closed`), or held open until the
/// stop file appears (mode `held`, after writing the ready file).
fn setup(kind: Kind, dir: &Path, base: u64, n: u64, mode: &str) -> Result<LogsizeStore> {
    let t = Instant::now();
    let (mut filler, until): (Box<dyn Filler>, Until) = match kind {
        Kind::Walstore => (Box::new(WalstoreFiller::open(dir)?), Until::LogBytes(n)),
        Kind::SqliteFull => (Box::new(SqliteFiller::open(dir)?), Until::Txns(n)),
        Kind::Redb => (Box::new(AdapterFiller::open(kind, dir)?), Until::Txns(n)),
        other => return Err(format!("the log-size workload does not run {other:?}").into()),
    };
    let txns = fill(filler.as_mut(), base, until)?;
    let log_bytes = filler.log_bytes()?;
    let mut store = LogsizeStore {
        mode: mode.into(),
        size_mib: 0,
        engine: kind.id().into(),
        base_keys: base,
        txns,
        log_bytes,
        log_file_at_ops: None,
        setup_seconds: t.elapsed().as_secs_f64(),
        note: String::new(),
    };
    store.size_mib = match until {
        Until::LogBytes(b) => b >> 20,
        Until::Txns(_) => 0,
    };
    if mode == "held" {
        let ready = marker(dir, "ready");
        let tmp = marker(dir, "ready.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&store)?)?;
        std::fs::rename(&tmp, &ready)?;
        // Until the parent writes the stop file; or, should the parent be gone (this process
        // handed to another parent), at once.
        let stop = marker(dir, "stop");
        let parent = std::os::unix::process::parent_id();
        while !stop.exists() {
            if std::os::unix::process::parent_id() != parent {
                return Err("the runner is gone: stopping without its stop file".into());
            }
            std::thread::sleep(POLL);
        }
    }
    drop(filler);
    Ok(store)
}

/// Writes the base (keys `0..base` in transactions of 10,000, the last durable), checkpoints,
/// then the log's transactions until `until`, the last durable; returns the log's
/// transactions.
fn fill(f: &mut dyn Filler, base: u64, until: Until) -> Result<u64> {
    let batch = data::SCALE_LOAD_TXN;
    let mut keys: Vec<[u8; KEY_LEN]> = Vec::with_capacity(batch as usize);
    let mut values: Vec<[u8; VALUE_LEN]> = Vec::with_capacity(batch as usize);
    let mut start = 0;
    while start < base {
        let end = (start + batch).min(base);
        keys.clear();
        values.clear();
        for i in start..end {
            keys.push(data::key(space::LOGSIZE, i));
            let mut v = [0u8; VALUE_LEN];
            data::fill_value(i, &mut v);
            values.push(v);
        }
        f.commit(&pairs(&keys, &values), end == base)?;
        start = end;
    }
    f.checkpoint()?;
    f.before_log()?;
    let mut t = 0u64;
    loop {
        match until {
            Until::LogBytes(b) if f.log_bytes()? >= b => break,
            Until::Txns(m) if t >= m => break,
            _ => {}
        }
        keys.clear();
        values.clear();
        for j in 0..data::LOGSIZE_TXN_KEYS {
            let (index, seed) = data::logsize_write(t, j, base);
            keys.push(data::key(space::LOGSIZE, index));
            let mut v = [0u8; VALUE_LEN];
            data::fill_value(seed, &mut v);
            values.push(v);
        }
        let last = matches!(until, Until::Txns(m) if t + 1 == m);
        f.commit(&pairs(&keys, &values), last)?;
        t += 1;
    }
    f.finish()?;
    Ok(t)
}

fn pairs<'a>(
    keys: &'a [[u8; KEY_LEN]],
    values: &'a [[u8; VALUE_LEN]],
) -> Vec<(&'a [u8], &'a [u8])> {
    keys.iter()
        .zip(values)
        .map(|(k, v)| (&k[..], &v[..]))
        .collect()
}

/// walstore, opened as the adapter opens it (`Durability::Immediate`, the run's sector
/// padding), through the crate itself for its checkpoint and log size.
struct WalstoreFiller {
    store: walstore::Store,
    checkpoint_txn: Option<u64>,
}

impl WalstoreFiller {
    fn open(dir: &Path) -> Result<Self> {
        let sector = std::env::var(engines::SECTOR_SIZE_ENV)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let store = walstore::Options::new()
            .durability(walstore::Durability::Immediate)
            .sector_size(sector)
            .open(dir)?;
        Ok(WalstoreFiller {
            store,
            checkpoint_txn: None,
        })
    }
}

impl Filler for WalstoreFiller {
    fn commit(&mut self, writes: &[(&[u8], &[u8])], durable: bool) -> Result<()> {
        let mut tx = self.store.begin_write()?;
        if !durable {
            tx.set_durability(walstore::Durability::Buffered);
        }
        for (k, v) in writes {
            tx.put(k, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.store.checkpoint()?;
        self.checkpoint_txn = Some(self.store.info()?.checkpoint_txn);
        Ok(())
    }

    fn log_bytes(&mut self) -> Result<u64> {
        let info = self.store.info()?;
        if self
            .checkpoint_txn
            .is_some_and(|c| c != info.checkpoint_txn)
        {
            return Err("walstore checkpointed on its own while the log was written".into());
        }
        Ok(info.wal_bytes)
    }

    fn finish(&mut self) -> Result<()> {
        self.store.sync()?;
        Ok(())
    }
}

/// SQLite FULL, one connection set up as the adapter's (WAL mode, `synchronous=FULL`); the
/// base checkpointed with `wal_checkpoint(TRUNCATE)`, then `wal_autocheckpoint=0` so that the
/// WAL holds the log's transactions. Commits that need not be durable run with
/// `synchronous=NORMAL`; the last, with FULL, syncs the WAL.
struct SqliteFiller {
    conn: rusqlite::Connection,
    wal: PathBuf,
    /// Whether the connection is at `synchronous=FULL` now.
    full: bool,
}

impl SqliteFiller {
    fn open(dir: &Path) -> Result<Self> {
        Ok(SqliteFiller {
            conn: engines::sqlite_connection(dir, true)?,
            wal: dir.join(format!("{SQLITE_FILE}-wal")),
            full: true,
        })
    }

    fn synchronous(&mut self, full: bool) -> Result<()> {
        if full != self.full {
            let level = if full { "FULL" } else { "NORMAL" };
            self.conn.pragma_update(None, "synchronous", level)?;
            self.full = full;
        }
        Ok(())
    }
}

impl Filler for SqliteFiller {
    fn commit(&mut self, writes: &[(&[u8], &[u8])], durable: bool) -> Result<()> {
        self.synchronous(durable)?;
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
            for (k, v) in writes {
                st.execute((k, v))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<()> {
        let busy: i64 = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy != 0 {
            return Err("SQLite checkpoint was blocked".into());
        }
        Ok(())
    }

    fn before_log(&mut self) -> Result<()> {
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(())
    }

    fn log_bytes(&mut self) -> Result<u64> {
        match self.wal.metadata() {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    fn finish(&mut self) -> Result<()> {
        self.synchronous(true)
    }
}

/// redb through its adapter: unsynced commits `Durability::None`, the last `Immediate`. No
/// log, so nothing to checkpoint.
struct AdapterFiller {
    // Dropped in this order: the handle, then the store.
    handle: Box<dyn engines::Handle>,
    _engine: Box<dyn engines::Engine>,
}

impl AdapterFiller {
    fn open(kind: Kind, dir: &Path) -> Result<Self> {
        let engine = engines::open(kind, dir)?;
        let handle = engine.handle()?;
        Ok(AdapterFiller {
            handle,
            _engine: engine,
        })
    }
}

impl Filler for AdapterFiller {
    fn commit(&mut self, writes: &[(&[u8], &[u8])], durable: bool) -> Result<()> {
        if durable {
            self.handle.commit(writes)
        } else {
            self.handle.commit_unsynced(writes)
        }
    }

    fn checkpoint(&mut self) -> Result<()> {
        Ok(())
    }

    fn log_bytes(&mut self) -> Result<u64> {
        Ok(0)
    }

    fn finish(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a one-shot process of the log-size workload reports: its memory at its end (the peak
/// of the whole process), and with the store still open after the operation.
#[derive(serde::Serialize, serde::Deserialize)]
struct Shot {
    peak: MemKib,
    open: MemKib,
}

/// An open store of a short-lived process (none for SQLite's single connection) and its
/// handle.
type Opened = (Option<Box<dyn engines::Engine>>, Box<dyn engines::Handle>);

/// The store of `kind` in `dir` as a short-lived process opens it: the adapter's store (redb
/// without its table creation) and a handle; SQLite a single connection, as the one-shot
/// workload opens it.
fn one_process_handle(kind: Kind, dir: &Path) -> Result<Opened> {
    if kind == Kind::SqliteFull {
        return Ok((None, engines::sqlite_one_connection(dir, true)?));
    }
    let store = engines::open_existing(kind, dir)?;
    let h = store.handle()?;
    Ok((Some(store), h))
}

/// One get in a fresh process: open the existing store in `dir`, read the key the log's last
/// transaction overwrote (`txns` of them over `base` keys; without a log a base key), check
/// its value, close. The process's memory at the end, and before the close.
fn get(kind: Kind, dir: &Path, base: u64, txns: u64) -> Result<(MemKib, MemKib)> {
    let (index, seed) = data::logsize_probe(txns, base);
    let key = data::key(space::LOGSIZE, index);
    let (store, mut h) = one_process_handle(kind, dir)?;
    let value = h.get(&key)?;
    let open = mem::current();
    drop(h);
    drop(store);
    let mut expected = [0u8; VALUE_LEN];
    data::fill_value(seed, &mut expected);
    match value {
        Some(v) if v == expected => Ok((mem::current(), open)),
        Some(_) => Err(format!("key {index} has the wrong value").into()),
        None => Err(format!("key {index} not found").into()),
    }
}

/// One durable commit of 3 new keys in a fresh process (keys of process `i`), as the one-shot
/// workload does it, on the log-size store. The process's memory at the end, and before the
/// close.
fn put3(kind: Kind, dir: &Path, i: u64) -> Result<(MemKib, MemKib)> {
    let txn = small_txn(space::LOGSIZE_PUT, i);
    let (store, mut h) = one_process_handle(kind, dir)?;
    h.commit(&as_writes(&txn))?;
    let open = mem::current();
    drop(h);
    drop(store);
    Ok((mem::current(), open))
}
