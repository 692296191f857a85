#![no_main]
//! See `walstore_fuzz::checks::logindex` for what this target asserts.

libfuzzer_sys::fuzz_target!(|data: &[u8]| walstore_fuzz::checks::logindex::check(data));
