//! The key that signs the trail's checkpoints.
//!
//! A hash chain shows that no record was removed or edited since it was
//! written, but anyone can recompute a chain after editing. A checkpoint
//! closes each run with an HMAC-SHA256 of the chain so far, under a key that
//! never enters the trail: without the key, an edited trail cannot be signed
//! again. The trail names the key only by its id, so a verifier can tell
//! "signed with another key" from "tampered with".
//!
//! The same key seals objects a later run acts on (a backup's index, see
//! `capabilities::objects::seal`): one key to provision, rotate and guard.

use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The environment variable naming the key file, for runs and `ferry audit verify`.
pub const KEY_FILE_ENV: &str = "FERRY_AUDIT_KEY_FILE";

/// Shorter keys are refused: HMAC-SHA256's own strength needs 32 bytes.
const MIN_KEY_BYTES: usize = 32;

/// The MAC domains of what the key signs besides checkpoints.
const OBJECT_DOMAIN: &[u8] = b"ferry object seal v1\0";
const PLAN_DOMAIN: &[u8] = b"ferry approved plan v1\0";

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the audit key {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The key is too short to sign with.
    #[error(
        "the audit key {} holds {len} bytes; at least {MIN_KEY_BYTES} are needed \
         (make one with: head -c 32 /dev/urandom > {})",
        path.display(),
        path.display()
    )]
    TooShort {
        /// The key file.
        path: PathBuf,
        /// Its length.
        len: usize,
    },
}

/// An HMAC-SHA256 key for audit checkpoints.
#[derive(Clone)]
pub struct AuditKey {
    /// The key's id, computed once.
    id: String,
    /// HMAC state keyed with the key, cloned per MAC; the key bytes are not kept apart.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key itself never reaches a log.
        write!(f, "AuditKey({})", self.id())
    }
}

impl AuditKey {
    /// The key in `path`: its bytes as they are (a trailing newline is part of the key).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(bytes).map_err(|len| KeyError::TooShort {
            path: path.to_path_buf(),
            len,
        })
    }

    /// The key named by `FERRY_AUDIT_KEY_FILE`, if it is set.
    pub fn from_env() -> Result<Option<Self>, KeyError> {
        match std::env::var_os(KEY_FILE_ENV) {
            Some(p) if !p.is_empty() => Self::from_file(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }

    /// A key from its bytes; `Err(len)` when too short.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, usize> {
        if bytes.len() < MIN_KEY_BYTES {
            return Err(bytes.len());
        }
        let keyed = <Hmac<Sha256> as Mac>::new_from_slice(&bytes).map_err(|_| bytes.len())?;
        let mut h = Sha256::new();
        h.update(b"ferry audit key id\0");
        h.update(&bytes);
        let id = hex::encode(&h.finalize()[..8]);
        Ok(AuditKey { id, keyed })
    }

    /// A name for the key that reveals nothing of it: 16 hex digits of a domain-separated
    /// SHA-256.
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The checkpoint's MAC over the hash of the record before it (which chains to all the
    /// records before that).
    pub fn mac(&self, chain: &str) -> String {
        hex::encode(self.mac_of(chain).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's MAC of `chain`, compared in constant time.
    pub fn verifies(&self, chain: &str, mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|m| self.mac_of(chain).verify_slice(&m).is_ok())
    }

    /// The MAC of an object's place and content (`parts`, e.g. bucket, key and SHA-256),
    /// in its own domain so it can never pass for a checkpoint's.
    pub fn object_mac(&self, parts: &[&str]) -> String {
        hex::encode(self.parts_mac_of(OBJECT_DOMAIN, parts).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's [`AuditKey::object_mac`] of `parts`, in constant time.
    pub fn verifies_object(&self, parts: &[&str], mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|m| self.parts_mac_of(OBJECT_DOMAIN, parts).verify_slice(&m).is_ok())
    }

    /// The MAC of an approved plan (`parts`: its canonical text and the approval's own fields),
    /// in its own domain so an approval can never pass for a seal or a checkpoint.
    pub fn plan_mac(&self, parts: &[&str]) -> String {
        hex::encode(self.parts_mac_of(PLAN_DOMAIN, parts).finalize().into_bytes())
    }

    /// Whether `mac` (hex) is this key's [`AuditKey::plan_mac`] of `parts`, in constant time.
    pub fn verifies_plan(&self, parts: &[&str], mac: &str) -> bool {
        hex::decode(mac).is_ok_and(|m| self.parts_mac_of(PLAN_DOMAIN, parts).verify_slice(&m).is_ok())
    }

    fn mac_of(&self, chain: &str) -> Hmac<Sha256> {
        let mut m = self.keyed.clone();
        m.update(b"ferry audit checkpoint v1\0");
        m.update(chain.as_bytes());
        m
    }

    fn parts_mac_of(&self, domain: &[u8], parts: &[&str]) -> Hmac<Sha256> {
        let mut m = self.keyed.clone();
        m.update(domain);
        for p in parts {
            // Length-prefixed: ("ab", "c") and ("a", "bc") differ.
            m.update(&(p.len() as u64).to_be_bytes());
            m.update(p.as_bytes());
        }
        m
    }
}
