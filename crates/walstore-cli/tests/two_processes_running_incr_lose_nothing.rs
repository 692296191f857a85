//! Two processes running `incr` 200 times each on one key end at 400: the read-modify-write
//! happens under the writer lock, so neither can overwrite the other's increment.

mod common;

use common::{get, ok, store, BIN};
use std::process::Command;

#[test]
fn two_processes_running_incr_200_times_each_end_at_400() {
    let (_t, _d, s) = store();
    ok(&["set", &s, "counter=0"]);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (bin, s) = (BIN.to_owned(), s.clone());
            std::thread::spawn(move || {
                for i in 0..200 {
                    let out = Command::new(&bin)
                        .args(["incr", &s, "counter"])
                        .output()
                        .expect("run walstore");
                    assert!(
                        out.status.success(),
                        "incr {i}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker");
    }
    assert_eq!(get(&s, "counter"), "400");
}
