//! `ferry:host/objects`: S3 buckets by name. Only small objects cross into
//! the guest (capped by `[limits] max_object_bytes`); snapshots stream
//! host-side through `etcd`.

use super::BucketHandle;
use std::time::Duration;

use wasmtime::component::Resource;

use super::provider::{self as s3, Bucket};
use crate::capabilities::View;
use crate::capabilities::bindings::automation::ferry::host::objects::{
    Exposure, Host, HostBucket, ObjectInfo, PutOptions,
};
use crate::capabilities::{HostError, HostResult};
use crate::policy::{Action, ResourceRef};

fn info(i: s3::ObjectInfo) -> ObjectInfo {
    ObjectInfo {
        key: i.key,
        size: i.size,
        sha256: i.sha256,
        etag: i.etag,
    }
}

impl View<'_> {
    fn bucket(&self, h: &Resource<BucketHandle>) -> HostResult<Bucket> {
        Ok(self.table.get(h)?.bucket.clone())
    }

    /// The seal of `data` at `bucket`/`key` under this run's key; `None` (and a warning)
    /// when the run has none.
    fn seal_of(&self, bucket: &Bucket, key: &str, data: &[u8]) -> HostResult<Option<String>> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
        let seal = self.env.sealing.seal(bucket.name(), key, &sha)?;
        if seal.is_none() {
            tracing::warn!(bucket = bucket.name(), %key, "writing unsigned: this run has no signing key (--audit-key)");
        }
        Ok(seal)
    }

    /// `get` and `get-sealed`: one decision (`objects:get`), one read capped at
    /// `max_object_bytes`; with `sealed`, the seal is checked before any byte reaches the guest.
    async fn read_object(&mut self, h: Resource<BucketHandle>, key: String, sealed: bool) -> HostResult<Vec<u8>> {
        let bucket = self.bucket(&h)?;
        let approved = self
            .authorize(Action::ObjectsGet, Self::object_ref(&bucket, &key), false)
            .await?;
        let max = self.env.config.limits.max_object_bytes;
        let result = match bucket.get(&key, max).await {
            Ok(o) if sealed => self
                .env
                .sealing
                .check_content(bucket.name(), &key, &o.data, o.info.seal.as_deref())
                .map(|()| o.data.to_vec()),
            Ok(o) => Ok(o.data.to_vec()),
            Err(e) => Err(HostError::from(e)),
        };
        self.finish(approved, result)
    }

    fn object_ref(bucket: &Bucket, key: &str) -> ResourceRef {
        ResourceRef::S3Object {
            bucket: bucket.name().to_string(),
            key: key.to_string(),
        }
    }
}

impl Host for View<'_> {
    async fn open_bucket(&mut self, name: String) -> HostResult<Resource<BucketHandle>> {
        if name.is_empty() {
            return Err(HostError::Invalid("bucket name is empty".into()));
        }
        let approved = self
            .authorize(Action::ObjectsOpen, ResourceRef::Bucket { bucket: name.clone() }, false)
            .await?;
        let client = self.env.clients.s3(&self.env.config).await;
        let result: HostResult<()> = Ok(());
        self.finish(approved, result)?;
        Ok(self.table.push(BucketHandle {
            bucket: Bucket::new(client, name)
                .with_encryption(crate::capabilities::clients::s3_encryption(&self.env.config)),
        })?)
    }
}

impl HostBucket for View<'_> {
    async fn name(&mut self, h: Resource<BucketHandle>) -> wasmtime::Result<String> {
        Ok(self.table.get(&h)?.bucket.name().to_string())
    }

    async fn put(
        &mut self,
        h: Resource<BucketHandle>,
        key: String,
        data: Vec<u8>,
        options: PutOptions,
    ) -> HostResult<ObjectInfo> {
        let bucket = self.bucket(&h)?;
        let max = self.env.config.limits.max_object_bytes;
        if data.len() as u64 > max {
            return Err(HostError::Invalid(format!(
                "object s3://{}/{key} is {} bytes, more than the {max} bytes a guest may pass; large data must stream host-side",
                bucket.name(),
                data.len()
            )));
        }
        let plan = self.env.plan;
        let facts = crate::capabilities::Facts {
            change: crate::capabilities::Change::new(
                format!("put {} bytes{}", data.len(), if options.seal { ", sealed" } else { "" }),
                data.clone(),
            ),
            ..Default::default()
        };
        let approved = self
            .authorize_with(Action::ObjectsPut, Self::object_ref(&bucket, &key), plan, facts)
            .await?;
        let result = if plan {
            tracing::info!(bucket = bucket.name(), %key, bytes = data.len(), "plan: would put object");
            Ok(ObjectInfo {
                key: key.clone(),
                size: data.len() as u64,
                sha256: Some(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data))),
                etag: None,
            })
        } else {
            let seal = if options.seal {
                self.seal_of(&bucket, &key, &data)
            } else {
                Ok(None)
            };
            match seal {
                Ok(seal) => {
                    let opts = s3::PutOptions {
                        content_type: options.content_type,
                        create_only: options.create_only,
                        seal,
                    };
                    bucket
                        .put(&key, data.into(), &opts)
                        .await
                        .map(info)
                        .map_err(HostError::from)
                }
                Err(e) => Err(e),
            }
        };
        self.finish(approved, result)
    }

    async fn get_sealed(&mut self, h: Resource<BucketHandle>, key: String) -> HostResult<Vec<u8>> {
        self.read_object(h, key, true).await
    }

    async fn get(&mut self, h: Resource<BucketHandle>, key: String) -> HostResult<Vec<u8>> {
        self.read_object(h, key, false).await
    }

    async fn head(&mut self, h: Resource<BucketHandle>, key: String) -> HostResult<ObjectInfo> {
        let bucket = self.bucket(&h)?;
        let approved = self
            .authorize(Action::ObjectsHead, Self::object_ref(&bucket, &key), false)
            .await?;
        let result = bucket.head(&key).await.map(info).map_err(HostError::from);
        self.finish(approved, result)
    }

    async fn list_objects(&mut self, h: Resource<BucketHandle>, prefix: String) -> HostResult<Vec<ObjectInfo>> {
        let bucket = self.bucket(&h)?;
        let resource = ResourceRef::S3Prefix {
            bucket: bucket.name().to_string(),
            prefix: prefix.clone(),
        };
        let approved = self.authorize(Action::ObjectsList, resource, false).await?;
        let result = bucket
            .list(&prefix)
            .await
            .map(|l| l.into_iter().map(info).collect())
            .map_err(HostError::from);
        self.finish(approved, result)
    }

    async fn delete(&mut self, h: Resource<BucketHandle>, key: String) -> HostResult<()> {
        let bucket = self.bucket(&h)?;
        let plan = self.env.plan;
        let approved = self
            .authorize(Action::ObjectsDelete, Self::object_ref(&bucket, &key), plan)
            .await?;
        let result = if plan {
            tracing::info!(bucket = bucket.name(), %key, "plan: would delete object");
            Ok(())
        } else {
            bucket.delete(&key).await.map_err(HostError::from)
        };
        self.finish(approved, result)
    }

    async fn presign_get(
        &mut self,
        h: Resource<BucketHandle>,
        key: String,
        expires_in_seconds: u32,
    ) -> HostResult<String> {
        let bucket = self.bucket(&h)?;
        let seconds = u64::from(expires_in_seconds);
        let max = self.env.config.limits.max_presign_seconds;
        if seconds > max {
            return Err(HostError::Invalid(format!(
                "a presigned URL may live at most {max} s ([limits] max_presign_seconds); {seconds} s was asked for {}",
                crate::audit::describe(&Self::object_ref(&bucket, &key))
            )));
        }
        let how = format!("presign GET for {seconds} s");
        let facts = crate::capabilities::Facts {
            presign_seconds: Some(seconds),
            change: crate::capabilities::Change::new(how.clone(), how),
            ..Default::default()
        };
        let approved = self
            .authorize_with(Action::ObjectsPresign, Self::object_ref(&bucket, &key), false, facts)
            .await?;
        let result = bucket
            .presign_get(&key, Duration::from_secs(seconds))
            .await
            .map_err(HostError::from);
        if let (Some(book), Ok(url)) = (&self.env.plan_book, &result) {
            // Made now, signed now: what carries it (and its expiry) is checked with them set aside.
            book.run_value("presigned-url", url);
            book.expiry(self.env.clock.now_ms(), seconds * 1000);
        }
        self.finish(approved, result)
    }

    async fn verify_sha256(&mut self, h: Resource<BucketHandle>, key: String, sha256: String) -> HostResult<()> {
        let bucket = self.bucket(&h)?;
        let approved = self
            .authorize(Action::ObjectsGet, Self::object_ref(&bucket, &key), false)
            .await?;
        let result = bucket
            .verify_sha256(&key, &sha256)
            .await
            .map(|_| ())
            .map_err(HostError::from);
        self.finish(approved, result)
    }

    async fn exposure(&mut self, h: Resource<BucketHandle>) -> HostResult<Exposure> {
        let bucket = self.bucket(&h)?;
        // Reading the bucket's ACL and policy is part of holding it open: a
        // guest that may open a bucket may always ask whether it is public.
        let approved = self
            .authorize(
                Action::ObjectsOpen,
                ResourceRef::Bucket {
                    bucket: bucket.name().to_string(),
                },
                false,
            )
            .await?;
        let result = bucket
            .public_access()
            .await
            .map(|p| Exposure {
                publicly_readable: p.publicly_readable,
                reason: p.reason,
            })
            .map_err(HostError::from);
        self.finish(approved, result)
    }

    async fn drop(&mut self, h: Resource<BucketHandle>) -> wasmtime::Result<()> {
        self.table.delete(h)?;
        Ok(())
    }
}
