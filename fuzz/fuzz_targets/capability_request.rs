//! The entity builders, fed the arguments of every capability call: any request line
//! (action and arguments as `ferry policy test` reads them) is decided under the stock
//! policy or refused, and a denial's reason is always printable.
#![no_main]

use std::sync::OnceLock;

use ferry::policy::{CallContext, PolicyEngine, request};
use libfuzzer_sys::fuzz_target;

fn stock() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let params = ferry_fuzz::stock_params();
        let guest = ferry_fuzz::stock_guest();
        let text = include_str!("../../policies/hosted-cluster-dr.cedar");
        PolicyEngine::from_source(text, "stock", &params, &guest).expect("the stock policy loads")
    })
}

fuzz_target!(|line: &str| {
    if let Ok((action, resource)) = request::parse(line) {
        for ctx in [
            CallContext::default(),
            CallContext {
                plan: true,
                dry_run: true,
                phase: "restore".into(),
                patch_fields: Some(vec!["metadata.annotations".into(), line.into()]),
                presign_seconds: Some(line.len() as u64),
            },
        ] {
            let d = stock().authorize(action, &resource, &ctx);
            let _ = d.denial_reason(action, &resource);
        }
    }
});
