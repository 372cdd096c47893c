//! Host bindings generated from `wit/` (the `ferry:host@0.1.0` package).
//!
//! Every import is `async` (the capabilities do network I/O on tokio) and
//! `trappable`: host functions return [`HostError`], whose conversion (below) decides
//! whether the guest sees a typed `error` value or the call traps. Policy
//! denials are always values, never traps.

use crate::capabilities::error::HostError;

/// Bindings of the `automation` world (full guests such as the stock DR guest).
pub mod automation {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "automation",
        imports: { default: async | trappable },
        exports: { default: async },
        with: {
            "ferry:host/k8s.cluster": crate::capabilities::k8s::ClusterHandle,
            "ferry:host/objects.bucket": crate::capabilities::objects::BucketHandle,
            "ferry:host/dns.zone": crate::capabilities::dns::ZoneHandle,
        },
        trappable_error_type: { "ferry:host/types.error" => crate::capabilities::error::HostError },
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
            "ferry:host/types": crate::capabilities::bindings::automation::ferry::host::types,
            "ferry:host/context": crate::capabilities::bindings::automation::ferry::host::context,
            "ferry:host/k8s": crate::capabilities::bindings::automation::ferry::host::k8s,
            "ferry:host/objects": crate::capabilities::bindings::automation::ferry::host::objects,
            "ferry:host/dns": crate::capabilities::bindings::automation::ferry::host::dns,
            "ferry:host/hooks": crate::capabilities::bindings::automation::ferry::host::hooks,
        },
        trappable_error_type: { "ferry:host/types.error" => crate::capabilities::error::HostError },
    });
}

pub use automation::ferry::host::types::{Error as WitError, ObjectRef};

impl HostError {
    /// A WIT error value as a host error of the same kind, its message passed through `f`
    /// (a hook's failure, named after the hook).
    pub fn from_wit(e: WitError, f: impl FnOnce(String) -> String) -> HostError {
        match e {
            WitError::Denied(m) => HostError::Denied(f(m)),
            WitError::NotFound(m) => HostError::NotFound(f(m)),
            WitError::Conflict(m) => HostError::Conflict(f(m)),
            WitError::Invalid(m) => HostError::Invalid(f(m)),
            WitError::Unavailable(m) => HostError::Unavailable(f(m)),
            WitError::Other(m) => HostError::Other(f(m)),
        }
    }

    /// Converts to the WIT error value, or returns the trap. The message is scrubbed of
    /// credentials ([`crate::scrub`]): servers quote what they were sent.
    pub fn into_wit(self) -> wasmtime::Result<WitError> {
        use crate::scrub::secrets_owned as clean;
        Ok(match self {
            HostError::Denied(m) => WitError::Denied(clean(m)),
            HostError::NotFound(m) => WitError::NotFound(clean(m)),
            HostError::Conflict(m) => WitError::Conflict(clean(m)),
            HostError::Invalid(m) => WitError::Invalid(clean(m)),
            HostError::Unavailable(m) => WitError::Unavailable(clean(m)),
            HostError::Other(m) => WitError::Other(clean(m)),
            HostError::Trap(e) => return Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a server quoted back (here a presigned URL in a validation error) reaches the
    /// guest without its credentials, under the same error kind.
    #[test]
    fn errors_reach_the_guest_scrubbed() {
        let e = HostError::Invalid(
            "restoreSnapshotURL \"https://s3/b/k?X-Amz-Security-Token=SESSIONLEAK&x=1\" is not https".into(),
        );
        match e.into_wit() {
            Ok(WitError::Invalid(m)) => {
                assert!(!m.contains("SESSIONLEAK"), "{m}");
                assert!(m.contains("X-Amz-Security-Token=REDACTED&x=1"), "{m}");
            }
            other => panic!("expected an invalid error, got {other:?}"),
        }
    }
}
