//! Sealed objects: what a later run acts on, signed by the host.
//!
//! Teardown deletes what a backup's index lists and restore applies it, so whoever can write
//! the bucket could otherwise steer both. A sealed object carries, as S3 user metadata, an
//! HMAC of its bucket, key and content under the run's signing key (the audit key; the guest
//! never sees it). Reading it back with `get-sealed` recomputes the MAC: an edited object, one
//! copied from another hosted cluster's backup, one signed with another key or not signed at
//! all is refused with a sentence that says which.

use crate::audit::AuditKey;
use crate::capabilities::{HostError, HostResult};

/// What a run may do with seals.
#[derive(Debug, Clone)]
pub enum Sealing {
    /// Sign and verify with this key.
    Key(AuditKey),
    /// No key configured: objects are written unsigned, and read only when unsigned.
    Unsigned,
    /// Hooks: they neither sign (a hook could otherwise forge what teardown trusts) nor
    /// read sealed objects.
    Refused,
}

impl Sealing {
    /// The seal to store with `bucket`/`key` of content `sha256`, or `None` when the run has
    /// no key (the caller logs that the object is unsigned).
    pub fn seal(&self, bucket: &str, key: &str, sha256: &str) -> HostResult<Option<String>> {
        match self {
            Sealing::Key(k) => Ok(Some(format!("v1:{}:{}", k.id(), k.object_mac(&[bucket, key, sha256])))),
            Sealing::Unsigned => Ok(None),
            Sealing::Refused => Err(HostError::Denied(
                "hooks cannot sign objects: only the guest's own run signs what later runs act on".into(),
            )),
        }
    }

    /// Checks the seal `found` on `bucket`/`key` over the bytes received (not a recorded
    /// digest: the seal covers the content).
    pub fn check_content(&self, bucket: &str, key: &str, data: &[u8], found: Option<&str>) -> HostResult<()> {
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(data));
        self.check(bucket, key, &sha, found)
    }

    /// Checks the seal `found` on `bucket`/`key` whose content has `sha256`.
    pub fn check(&self, bucket: &str, key: &str, sha256: &str, found: Option<&str>) -> HostResult<()> {
        let url = format!("s3://{bucket}/{key}");
        let integrity = |m: String| Err(HostError::Other(format!("integrity check failed: {m}")));
        let parsed = found.map(|s| {
            let mut it = s.splitn(3, ':');
            (it.next(), it.next(), it.next())
        });
        match (self, parsed) {
            (Sealing::Refused, _) => Err(HostError::Denied(
                "hooks cannot read sealed objects: they are for the guest's own run".into(),
            )),
            (Sealing::Unsigned, None) => {
                tracing::warn!(%url, "reading an unsigned object: this run has no signing key (--audit-key)");
                Ok(())
            }
            (Sealing::Unsigned, Some((_, id, _))) => Err(HostError::Invalid(format!(
                "{url} is signed with key {}, and this run has no key to check it with: pass that key \
                 (--audit-key or FERRY_AUDIT_KEY_FILE)",
                id.unwrap_or("?")
            ))),
            (Sealing::Key(_), None) => integrity(format!(
                "{url} is not signed. It was written by a run without a signing key, or not by ferry. \
                 Take a new backup with the key; or, if you trust this one, run this phase without \
                 --audit-key / FERRY_AUDIT_KEY_FILE (the run is then not signed either)"
            )),
            (Sealing::Key(k), Some((Some("v1"), Some(id), Some(mac)))) => {
                if id != k.id() {
                    return integrity(format!(
                        "{url} is signed with key {id}, not with this run's key {}; run with the key that \
                         signed the backup",
                        k.id()
                    ));
                }
                if k.verifies_object(&[bucket, key, sha256], mac) {
                    Ok(())
                } else {
                    integrity(format!(
                        "{url} does not match its signature: it was changed, or copied from elsewhere, after \
                         ferry wrote it. Do not use it; take a new backup"
                    ))
                }
            }
            (Sealing::Key(_), Some(_)) => integrity(format!(
                "{url} carries a signature ferry cannot read (`{}`); take a new backup",
                found.unwrap_or_default()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Sealing {
        match AuditKey::from_bytes(vec![byte; 32]) {
            Ok(k) => Sealing::Key(k),
            Err(n) => panic!("a 32-byte key is refused ({n})"),
        }
    }

    fn message(r: HostResult<()>) -> String {
        r.err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_seal_holds_only_for_its_bucket_key_content_and_key() {
        let k = key(1);
        let seal = k.seal("b", "hc/1/index.json", "aa").ok().flatten().unwrap_or_default();
        assert!(seal.starts_with("v1:"), "{seal}");
        assert!(k.check("b", "hc/1/index.json", "aa", Some(&seal)).is_ok());
        // Edited content, another place, another bucket: refused.
        for (b, path, sha) in [
            ("b", "hc/1/index.json", "ab"),
            ("b", "hc/2/index.json", "aa"),
            ("c", "hc/1/index.json", "aa"),
        ] {
            let m = message(k.check(b, path, sha, Some(&seal)));
            assert!(m.contains("does not match its signature"), "{m}");
        }
        let other = message(key(2).check("b", "hc/1/index.json", "aa", Some(&seal)));
        assert!(
            other.contains("is signed with key") && other.contains("not with this run's key"),
            "{other}"
        );
        let unsigned = message(k.check("b", "hc/1/index.json", "aa", None));
        assert!(unsigned.contains("is not signed"), "{unsigned}");
        let garbled = message(k.check("b", "hc/1/index.json", "aa", Some("v9:x")));
        assert!(garbled.contains("cannot read"), "{garbled}");
    }

    #[test]
    fn without_a_key_unsigned_reads_pass_signed_ones_ask_for_the_key_and_hooks_get_neither() {
        let signed = key(1).seal("b", "k", "aa").ok().flatten().unwrap_or_default();
        assert!(Sealing::Unsigned.check("b", "k", "aa", None).is_ok());
        assert!(matches!(Sealing::Unsigned.seal("b", "k", "aa"), Ok(None)));
        let m = message(Sealing::Unsigned.check("b", "k", "aa", Some(&signed)));
        assert!(m.contains("--audit-key"), "{m}");
        assert!(matches!(
            Sealing::Refused.seal("b", "k", "aa"),
            Err(HostError::Denied(_))
        ));
        assert!(matches!(
            Sealing::Refused.check("b", "k", "aa", None),
            Err(HostError::Denied(_))
        ));
    }
}
