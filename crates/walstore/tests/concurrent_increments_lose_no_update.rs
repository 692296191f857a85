//! Threads doing read-modify-write through `update` never lose an increment, with group
//! commit batching their fsyncs.
mod common;

use common::places;

#[test]
fn threads_incrementing_one_counter_lose_no_update() {
    const THREADS: u64 = 4;
    const EACH: u64 = 100;
    for p in places() {
        let store = p.open();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let store = store.clone();
                s.spawn(move || {
                    for _ in 0..EACH {
                        store
                            .update(|tx| {
                                let n: u64 = tx.get_as(b"counter")?.unwrap_or(0);
                                tx.put_as(b"counter", &(n + 1))?;
                                let own = format!("thread{t}");
                                let m: u64 = tx.get_as(own.as_bytes())?.unwrap_or(0);
                                tx.put_as(own.as_bytes(), &(m + 1))
                            })
                            .expect("update");
                    }
                });
            }
        });
        let read = store.begin_read().expect("read");
        assert_eq!(
            read.get_as::<u64>(b"counter").expect("get"),
            Some(THREADS * EACH),
            "[{}]",
            p.name
        );
        for t in 0..THREADS {
            assert_eq!(
                read.get_as::<u64>(format!("thread{t}").as_bytes())
                    .expect("get"),
                Some(EACH)
            );
        }
        let info = store.info().expect("info");
        assert_eq!(info.commits, THREADS * EACH, "[{}]", p.name);
        drop(read);
        drop(store);
        let reopened = p.open();
        let read = reopened.begin_read().expect("read");
        assert_eq!(
            read.get_as::<u64>(b"counter").expect("get"),
            Some(THREADS * EACH),
            "[{}] after reopen",
            p.name
        );
    }
}

#[test]
fn readers_never_see_a_partial_transaction_while_writers_commit() {
    for p in places() {
        let store = p.open();
        store
            .update(|tx| {
                tx.put_as(b"a", &0u64)?;
                tx.put_as(b"b", &0u64)
            })
            .expect("init");
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let writer = store.clone();
            let done = &done;
            s.spawn(move || {
                for i in 1..=200u64 {
                    writer
                        .update(|tx| {
                            tx.put_as(b"a", &i)?;
                            tx.put_as(b"b", &i)
                        })
                        .expect("update");
                    if i % 50 == 0 {
                        writer.checkpoint().expect("checkpoint");
                    }
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let mut reads = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 10 {
                let r = store.begin_read().expect("read");
                let a: u64 = r.get_as(b"a").expect("a").expect("present");
                let b: u64 = r.get_as(b"b").expect("b").expect("present");
                assert_eq!(a, b, "[{}] a torn view", p.name);
                reads += 1;
            }
        });
    }
}
