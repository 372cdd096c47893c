//! Run config parsing: any TOML is a config or an error naming what is wrong.
#![no_main]

use ferry::config::RunConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let _ = RunConfig::parse(text, std::path::Path::new("/fuzz/run.toml"));
});
