//! The main job in one run: an atomic multi-key commit, a crash, and a recovery.
//!
//! A child process sets `server.url`, `server.namespace` and `server.tls-verify` together, over
//! and over, printing each acknowledged commit. The parent kills it with SIGKILL at a random
//! moment, reopens the store, and shows that the three values are from one commit and that
//! every acknowledged commit survived.
//!
//!     cargo run --release -p walstore --example crash_recovery [STORE_DIR]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        return child(&args[2]);
    }
    let dir = match args.get(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("walstore-demo-{}", std::process::id())),
    };
    println!("store: {}", dir.display());
    let store = walstore::Store::open(&dir)?;
    store.update(|tx| {
        tx.put(b"server.url", b"https://old.example")?;
        tx.put(b"server.namespace", b"old")?;
        tx.put(b"server.tls-verify", b"old")
    })?;
    drop(store);

    let mut child = Command::new(std::env::current_exe()?)
        .args(["--child", dir.to_str().ok_or("non-UTF-8 path")?])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ack ").and_then(|n| n.parse::<u64>().ok()))
            .last()
            .unwrap_or(0)
    });
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos();
    let delay = Duration::from_millis(150 + u64::from(nanos % 300));
    std::thread::sleep(delay);
    child.kill()?; // SIGKILL: no destructor, no flush, no goodbye
    child.wait()?;
    let acknowledged = reader.join().map_err(|_| "reader thread panicked")?;
    println!(
        "child killed with SIGKILL after {delay:?}; last acknowledged commit: #{acknowledged}"
    );

    let store = walstore::Store::open(&dir)?;
    let read = store.begin_read()?;
    let get = |k: &[u8]| -> Result<String, walstore::Error> {
        Ok(read
            .get(k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default())
    };
    let (url, namespace, tls) = (
        get(b"server.url")?,
        get(b"server.namespace")?,
        get(b"server.tls-verify")?,
    );
    println!("recovered: server.url={url} server.namespace={namespace} server.tls-verify={tls}");
    let n: u64 = namespace.trim_start_matches('v').parse().unwrap_or(0);
    let consistent = url == format!("https://v{n}.example") && tls == format!("v{n}");
    println!(
        "all three from one commit: {}; every acknowledged commit present: {} (recovered #{n})",
        if consistent { "yes" } else { "NO" },
        if n >= acknowledged { "yes" } else { "NO" },
    );
    if !consistent || n < acknowledged {
        return Err("recovery check failed".into());
    }
    Ok(())
}

fn child(dir: &str) -> Result<(), Box<dyn std::error::Error>> {
    let store = walstore::Store::open(dir)?;
    let mut out = std::io::stdout().lock();
    for i in 1u64.. {
        store.update(|tx| {
            tx.put(b"server.url", format!("https://v{i}.example").as_bytes())?;
            tx.put(b"server.namespace", format!("v{i}").as_bytes())?;
            tx.put(b"server.tls-verify", format!("v{i}").as_bytes())
        })?;
        writeln!(out, "ack {i}")?;
        out.flush()?;
    }
    Ok(())
}
