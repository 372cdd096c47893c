//! Site config parsing and its checks: any TOML is a site whose run config is built, or an
//! error naming what is wrong (a missing value, a bad key, a KMS key without SSE-KMS, a
//! recipient that is not an age key); never a panic.
#![no_main]

use ferry_dr::site::SiteConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(site) = SiteConfig::parse(text, std::path::Path::new("/fuzz/site.toml")) {
        let _ = site.run_config();
    }
});
