//! `ferry:host/objects`: S3 buckets by name. Only small objects cross into the guest (capped
//! by `[limits] max_object_bytes`); snapshots stream host-side through `etcd`. `host.rs` holds
//! the WIT functions, `provider.rs` the S3 client (multipart, SHA-256, presigning, encryption),
//! `seal.rs` the signatures of objects later runs act on.

mod host;
pub mod provider;
pub mod seal;

use self::provider::Bucket;
use super::Capability;
use crate::policy::Action;

/// The objects capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/objects",
    wit: ("objects.wit", include_str!("../../../../wit/objects.wit")),
    actions: &[
        Action::ObjectsOpen,
        Action::ObjectsGet,
        Action::ObjectsHead,
        Action::ObjectsPut,
        Action::ObjectsDelete,
        Action::ObjectsPresign,
        Action::ObjectsList,
    ],
    needs_grant: true,
};

/// An open bucket handle.
pub struct BucketHandle {
    pub(crate) bucket: Bucket,
}

impl BucketHandle {
    /// The backend bucket (host-side only).
    pub fn bucket(&self) -> &Bucket {
        &self.bucket
    }
}
