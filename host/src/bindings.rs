//! Host bindings generated from `wit/` (the `ferry:host@0.1.0` package).
//!
//! Every import is `async` (the capabilities do network I/O on tokio) and
//! `trappable`: host functions return [`HostError`], whose conversion decides
//! whether the guest sees a typed `error` value or the call traps. Policy
//! denials are always values, never traps.

/// Bindings of the `automation` world (full guests such as the stock DR guest).
pub mod automation {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "automation",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ferry:host/k8s.cluster": crate::caps::k8s::ClusterHandle,
            "ferry:host/objects.bucket": crate::caps::objects::BucketHandle,
            "ferry:host/dns.zone": crate::caps::dns::ZoneHandle,
        },
        trappable_error_type: { "ferry:host/types.error" => crate::caps::HostError },
    });
}

/// Bindings of the `hook` world (site hooks); shares the interfaces above.
pub mod hook {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "hook",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ferry:host/types": crate::bindings::automation::ferry::host::types,
            "ferry:host/context": crate::bindings::automation::ferry::host::context,
            "ferry:host/k8s": crate::bindings::automation::ferry::host::k8s,
            "ferry:host/objects": crate::bindings::automation::ferry::host::objects,
            "ferry:host/dns": crate::bindings::automation::ferry::host::dns,
            "ferry:host/hooks": crate::bindings::automation::ferry::host::hooks,
        },
        trappable_error_type: { "ferry:host/types.error" => crate::caps::HostError },
    });
}

pub use automation::ferry::host::types::{Error as WitError, ObjectRef};
