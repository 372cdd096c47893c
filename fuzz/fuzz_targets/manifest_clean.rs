//! Manifest cleaning (what backup strips before an object travels): any JSON value is
//! cleaned without panicking, and cleaning is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    ferry_sdk::manifest::clean_for_transport(&mut v);
    ferry_sdk::manifest::remove_annotations_with_prefix(&mut v, "ferry.dev/");
    let once = v.clone();
    ferry_sdk::manifest::clean_for_transport(&mut v);
    ferry_sdk::manifest::remove_annotations_with_prefix(&mut v, "ferry.dev/");
    assert_eq!(once, v, "cleaning twice changed the object");
});
