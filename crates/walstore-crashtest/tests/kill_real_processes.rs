//! Real writer processes killed with SIGKILL on the real file system lose nothing they
//! acknowledged, and never show half a transaction.

use std::path::Path;
use walstore_crashtest::killtest::{run_kill_test, KillConfig};

#[test]
fn killed_writers_lose_no_acknowledged_commit() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let exe = Path::new(env!("CARGO_BIN_EXE_walstore-crashtest"));
    for buffered in [false, true] {
        let config = KillConfig {
            dir: dir
                .path()
                .join(if buffered { "buffered" } else { "immediate" }),
            rounds: 4,
            seed: 7,
            delay_ms_max: 80,
            buffered,
        };
        let report = run_kill_test(exe, &config).unwrap_or_else(|v| panic!("{v}"));
        assert_eq!(report.rounds, 4);
        assert!(report.last_recovered >= report.last_acknowledged);
    }
}
