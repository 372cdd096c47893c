//! The backup index (`index.json`), as restore and teardown read it from a bucket that
//! may be hostile: any bytes are an index or an error, and an index that reads survives
//! a write and a read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hosted_cluster_dr::fuzzing::index_round_trip(data);
});
