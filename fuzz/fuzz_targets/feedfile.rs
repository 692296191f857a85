#![no_main]
//! See `walstore_fuzz::checks::feedfile` for what this target asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| walstore_fuzz::checks::feedfile::check(data));
