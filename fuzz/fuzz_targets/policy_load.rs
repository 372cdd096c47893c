//! Policy loading and linking: any text either loads (and then decides without panicking)
//! or is refused with an error; never a panic, never a half-loaded policy set.
#![no_main]

use ferry::policy::{Action, CallContext, PolicyEngine, ResourceRef};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let params = ferry_fuzz::stock_params();
    let guest = ferry_fuzz::stock_guest();
    if let Ok(engine) = PolicyEngine::from_source(text, "fuzz.cedar", &params, &guest) {
        let _ = engine.explain();
        let r = ResourceRef::Cluster { alias: "source".into() };
        let _ = engine.authorize(Action::K8sOpen, &r, &CallContext::default());
    }
});
