//! What the kernel says a process did to storage: bytes written (`/proc/self/io`), the size of
//! a store on disk, and flush calls counted by `strace -c`. Linux only; every reader returns
//! `None` where the source is missing, so that a report says "n/a" instead of a wrong zero.

use std::path::Path;
use std::time::Duration;

/// Storage counters of this process (all its threads), from `/proc/self/io`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// `write_bytes`: bytes this process caused to be sent to storage, counted when it
    /// dirties a page-cache page (or writes directly).
    pub write_bytes: u64,
    /// `cancelled_write_bytes`: dirty bytes that were dropped before reaching storage
    /// (a file truncated or deleted while its pages were dirty).
    pub cancelled_write_bytes: u64,
}

/// Reads `/proc/self/io`; `None` where the kernel does not provide it.
pub fn io_counters() -> Option<IoCounters> {
    let text = std::fs::read_to_string("/proc/self/io").ok()?;
    parse_io(&text)
}

fn parse_io(text: &str) -> Option<IoCounters> {
    let field = |name: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().parse().ok())
    };
    Some(IoCounters {
        write_bytes: field("write_bytes:")?,
        cancelled_write_bytes: field("cancelled_write_bytes:")?,
    })
}

/// Size of everything under `dir`: (sum of file lengths, sum of allocated blocks in bytes).
pub fn dir_usage(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut len = 0;
    let mut alloc = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            let (l, a) = dir_usage(&entry.path())?;
            len += l;
            alloc += a;
        } else {
            len += meta.len();
            // st_blocks is in 512-byte units whatever the file system's block size.
            alloc += meta.blocks() * 512;
        }
    }
    Ok((len, alloc))
}

/// Median, 99th percentile and maximum of `times`, in milliseconds (zeros when empty). The
/// percentile is the element at rank `len * p / 100` of the sorted list.
pub fn latency_ms(times: &[Duration]) -> (f64, f64, f64) {
    if times.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let at = |p: usize| sorted[(sorted.len() * p / 100).min(sorted.len() - 1)];
    (ms(at(50)), ms(at(99)), ms(sorted[sorted.len() - 1]))
}

/// The flush system calls `strace` is asked to count.
pub const SYNC_CALLS: [&str; 5] = ["fsync", "fdatasync", "msync", "sync_file_range", "syncfs"];

/// Flush calls of one traced process tree, from the summary of `strace -f -c`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncCounts {
    /// `fsync` calls.
    pub fsync: u64,
    /// `fdatasync` calls.
    pub fdatasync: u64,
    /// `msync`, `sync_file_range` and `syncfs` calls.
    pub other: u64,
}

/// Parses the table `strace -c` writes (`% time  seconds  usecs/call  calls  errors syscall`,
/// the errors column empty when zero).
pub fn parse_strace_summary(text: &str) -> SyncCounts {
    let mut counts = SyncCounts::default();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let Ok(calls) = cols[3].parse::<u64>() else {
            continue;
        };
        match cols[cols.len() - 1] {
            "fsync" => counts.fsync += calls,
            "fdatasync" => counts.fdatasync += calls,
            name if SYNC_CALLS.contains(&name) => counts.other += calls,
            _ => {}
        }
    }
    counts
}

/// Whether `strace` can be run here (installed, and ptrace allowed).
pub fn strace_available() -> bool {
    std::process::Command::new("strace")
        .args(["-f", "-c", "-o", "/dev/null", "true"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_io() {
        let text = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 4096\ncancelled_write_bytes: 512\n";
        assert_eq!(
            parse_io(text),
            Some(IoCounters {
                write_bytes: 4096,
                cancelled_write_bytes: 512
            })
        );
        assert_eq!(parse_io("rchar: 1\n"), None);
        // This process can read its own counters on Linux.
        assert!(io_counters().is_some());
    }

    #[test]
    fn parses_strace_summary() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n \
                    60.00    0.000300         100         3           fsync\n \
                    40.00    0.000200         200         1         1 fdatasync\n \
                    0.00    0.000000           0         2           msync\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.000500          83         6         1 total\n";
        assert_eq!(
            parse_strace_summary(text),
            SyncCounts {
                fsync: 3,
                fdatasync: 1,
                other: 2
            }
        );
        assert_eq!(parse_strace_summary(""), SyncCounts::default());
    }

    #[test]
    fn latency_ranks() {
        let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(latency_ms(&times), (51.0, 100.0, 100.0));
        assert_eq!(latency_ms(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn sums_a_directory() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("a"), [0u8; 100])?;
        std::fs::create_dir(dir.path().join("sub"))?;
        std::fs::write(dir.path().join("sub/b"), [0u8; 50])?;
        let (len, _alloc) = dir_usage(dir.path())?;
        assert_eq!(len, 150);
        Ok(())
    }
}
