#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pool_fuzz::config(data));
