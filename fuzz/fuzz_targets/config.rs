#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bars_receiver::fuzz::config(data));
