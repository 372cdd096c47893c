//! The stock disaster-recovery guest and its policy, embedded in the binary.
//!
//! `ferry backup|restore|teardown|finish|migrate|drill` run these unless
//! `--guest`/`--policy` name others. The component is `guests/hosted-cluster-dr`
//! (built by `build.rs`); the policy is `policies/hosted-cluster-dr.cedar`.

/// The stock guest's name, i.e. its policy principal `Ferry::Guest::"hosted-cluster-dr"`.
pub const GUEST_NAME: &str = "hosted-cluster-dr";

/// Where the embedded component came from, for messages.
pub const GUEST_ORIGIN: &str = "embedded hosted-cluster-dr.wasm";

/// Where the embedded policy came from, for messages.
pub const POLICY_ORIGIN: &str = "embedded policies/hosted-cluster-dr.cedar";

/// The stock component's bytes (`hosted_cluster_dr.wasm`, world `automation`).
#[cfg(feature = "stock-guest")]
pub fn guest_wasm() -> &'static [u8] {
    ferry_artifacts::HOSTED_CLUSTER_DR_WASM
}

/// The stock component's SHA-256 (hex), taken when it was embedded: its policy principal's
/// `sha256` and the digest its audit records carry.
#[cfg(feature = "stock-guest")]
pub fn guest_sha256() -> &'static str {
    ferry_artifacts::HOSTED_CLUSTER_DR_SHA256
}

/// The stock guest's steps of `phase`, in order: the names `--stop-after` takes, and the
/// boundaries the crash matrix kills at. The migration tests check them against a full run.
pub fn steps(phase: crate::phases::Phase) -> &'static [&'static str] {
    use crate::phases::Phase;
    match phase {
        Phase::Backup => &[
            "preflight",
            "marker",
            "pause",
            "scale-down",
            "snapshot",
            "dump",
            "upload",
            "complete",
        ],
        Phase::Restore => &[
            "verify-backup",
            "preflight",
            "namespaces",
            "secrets",
            "hcp-secrets",
            "capi-cluster",
            "machines",
            "extra-objects",
            "hosted-cluster",
            "node-pools",
            "dns",
            "wait-restored",
            "etcd-members",
            "api-write",
            "wait-nodes",
            "remediation",
            "old-instances",
            "complete",
        ],
        Phase::Teardown => &[
            "gate",
            "capi-storage",
            "webhooks",
            "stop-operator",
            "scale-down",
            "node-pools",
            "machines",
            "machine-sets",
            "capi-cluster",
            "aws-machines",
            "control-plane",
            "finalizers",
            "hcp-namespace",
            "hosted-cluster",
            "hc-namespace",
            "webhooks-back",
            "start-operator",
        ],
        Phase::Finish => &["ovn-pods", "cluster-version", "nodes", "report"],
        Phase::Abort => &["gate", "writers", "unpause", "wait-dns", "marker"],
        Phase::Status => &["locate"],
    }
}

/// The stock Cedar policy's text.
pub fn policy_text() -> &'static str {
    include_str!("../../policies/hosted-cluster-dr.cedar")
}

#[cfg(all(test, feature = "stock-guest"))]
mod tests {
    #[test]
    fn the_stock_guest_is_a_component() {
        let wasm = super::guest_wasm();
        assert_eq!(&wasm[..4], b"\0asm");
        assert_eq!(&wasm[4..8], &[0x0d, 0, 1, 0]);
    }

    #[test]
    fn the_embedded_digest_is_the_bytes_digest() {
        use sha2::Digest;
        let digest = hex::encode(sha2::Sha256::digest(super::guest_wasm()));
        assert_eq!(digest, super::guest_sha256());
    }
}
