//! Workspace files encrypted at rest with [age](https://age-encryption.org).
//!
//! A DR backup folder holds every Secret of a control plane and the etcd encryption key. With
//! `[workspace] encrypt_to` (age recipients), every file a guest writes is stored as an age
//! file to those recipients; reading one back needs `[workspace] identity`. The guest sees
//! plaintext either way, and the on-disk layout (names, folders) stays the documented one, so
//! a person can fall back to the manual procedure with `age -d` per file or
//! `ferry backup decrypt`, which gives the whole plain folder back.
//!
//! Only public keys are needed to write: a backup machine never holds the key that reads its
//! backups.

use std::io::{Read, Write};
use std::path::Path;

/// Every age file starts with this line.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Why encryption or decryption failed, in words for the person running ferry.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    /// A recipient in the config is not an age public key.
    #[error("{0}")]
    BadRecipient(String),
    /// The identity file cannot be read or holds no usable key.
    #[error("cannot use the age identity {path}: {why}")]
    BadIdentity {
        /// The identity file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// Encryption failed.
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    /// The file is encrypted to other keys, or damaged.
    #[error("cannot decrypt: {0}")]
    Decrypt(String),
}

/// Whether `data` is an age file.
pub fn is_encrypted(data: &[u8]) -> bool {
    data.starts_with(AGE_MAGIC)
}

/// Parses `age1…` recipients ([`crate::config::age_recipients`]).
pub fn recipients(list: &[String]) -> Result<Vec<age::x25519::Recipient>, AtRestError> {
    crate::config::age_recipients(list).map_err(AtRestError::BadRecipient)
}

/// The identities (private keys) in an age identity file.
pub fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity>>, AtRestError> {
    let bad = |why: String| AtRestError::BadIdentity {
        path: path.display().to_string(),
        why,
    };
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let file = age::IdentityFile::from_buffer(text.as_slice()).map_err(|e| bad(e.to_string()))?;
    let ids = file.into_identities().map_err(|e| bad(e.to_string()))?;
    if ids.is_empty() {
        return Err(bad("it holds no identity (AGE-SECRET-KEY-…)".into()));
    }
    Ok(ids)
}

/// `plain` as an age file to `recipients`.
pub fn encrypt(recipients: &[age::x25519::Recipient], plain: &[u8]) -> Result<Vec<u8>, AtRestError> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
        .map_err(|e| AtRestError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(plain.len() + 256);
    let mut w = enc
        .wrap_output(&mut out)
        .map_err(|e| AtRestError::Encrypt(e.to_string()))?;
    w.write_all(plain).map_err(|e| AtRestError::Encrypt(e.to_string()))?;
    w.finish().map_err(|e| AtRestError::Encrypt(e.to_string()))?;
    Ok(out)
}

/// The plaintext of the age file `data`, if at most `max` bytes (`Ok(None)` when larger;
/// nothing past `max + 1` bytes is decrypted).
pub fn decrypt(identities: &[Box<dyn age::Identity>], data: &[u8], max: u64) -> Result<Option<Vec<u8>>, AtRestError> {
    let dec = age::Decryptor::new_buffered(data).map_err(|e| AtRestError::Decrypt(e.to_string()))?;
    let reader = dec
        .decrypt(identities.iter().map(|i| i.as_ref()))
        .map_err(|e| AtRestError::Decrypt(format!("{e} (is this the identity the backup was encrypted to?)")))?;
    let mut out = Vec::new();
    reader
        .take(max.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| AtRestError::Decrypt(format!("the file is damaged: {e}")))?;
    Ok((out.len() as u64 <= max).then_some(out))
}

/// A new identity written to `path` (created 0600, never overwritten); returns its public
/// recipient for `encrypt_to`.
pub fn keygen(path: &Path) -> std::io::Result<String> {
    use age::secrecy::ExposeSecret;
    use std::os::unix::fs::OpenOptionsExt;
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "# public key: {recipient}")?;
    writeln!(f, "{}", identity.to_string().expose_secret())?;
    f.sync_all()?;
    Ok(recipient)
}

/// What [`decrypt_tree`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TreeSummary {
    /// Files decrypted.
    pub decrypted: usize,
    /// Files copied as they were (not age files).
    pub copied: usize,
}

/// Writes the plain copy of folder `src` (age files decrypted with the identities in
/// `identity`, other files copied) to `dst`, which must not exist: folders 0700, files 0600.
/// Symbolic links are refused, as the workspace never follows one.
pub fn decrypt_tree(src: &Path, dst: &Path, identity: &Path) -> Result<TreeSummary, anyhow::Error> {
    use anyhow::Context;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let ids = identities(identity)?;
    if dst.exists() {
        anyhow::bail!(
            "{} exists already; give a new folder to write the plain backup to",
            dst.display()
        );
    }
    let mut summary = TreeSummary::default();
    let mut stack = vec![(src.to_path_buf(), dst.to_path_buf())];
    while let Some((from, to)) = stack.pop() {
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&to)
            .with_context(|| format!("cannot create {}", to.display()))?;
        let mut entries: Vec<_> = std::fs::read_dir(&from)
            .with_context(|| format!("cannot read {}", from.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let kind = entry.file_type()?;
            let (f, t) = (entry.path(), to.join(entry.file_name()));
            if kind.is_symlink() {
                anyhow::bail!("{} is a symbolic link; refusing to follow it", f.display());
            } else if kind.is_dir() {
                stack.push((f, t));
            } else if !kind.is_file() {
                anyhow::bail!("{} is not a regular file (a FIFO, device or socket)", f.display());
            } else {
                let data = std::fs::read(&f).with_context(|| format!("cannot read {}", f.display()))?;
                let plain = if is_encrypted(&data) {
                    summary.decrypted += 1;
                    decrypt(&ids, &data, u64::MAX)
                        .with_context(|| format!("{}", f.display()))?
                        .unwrap_or_default()
                } else {
                    summary.copied += 1;
                    data
                };
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&t)
                    .with_context(|| format!("cannot write {}", t.display()))?;
                out.write_all(&plain)?;
                out.sync_all()?;
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_wrong_keys() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let key = tmp.path().join("backup.agekey");
        let recipient = keygen(&key)?;
        assert!(recipient.starts_with("age1"), "{recipient}");
        assert!(keygen(&key).is_err(), "an existing key file is never overwritten");
        let sealed = encrypt(&recipients(&[recipient])?, b"kind: Secret\ndata: c2VjcmV0\n")?;
        assert!(is_encrypted(&sealed));
        assert!(!sealed.windows(6).any(|w| w == b"Secret"));
        let ids = identities(&key)?;
        assert_eq!(
            decrypt(&ids, &sealed, 1024)?.as_deref(),
            Some(&b"kind: Secret\ndata: c2VjcmV0\n"[..])
        );
        assert_eq!(decrypt(&ids, &sealed, 4)?, None, "over the cap: refused, not truncated");

        let other = tmp.path().join("other.agekey");
        keygen(&other)?;
        let err = decrypt(&identities(&other)?, &sealed, 1024)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("identity the backup was encrypted to"), "{err}");
        let bad = recipients(&["ssh-rsa AAAA".into()])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(bad.contains("not an age recipient"), "{bad}");
        Ok(())
    }

    #[test]
    fn a_folder_comes_back_in_its_plain_layout() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let key = tmp.path().join("k");
        let to = recipients(&[keygen(&key)?])?;
        let src = tmp.path().join("backup");
        std::fs::create_dir_all(src.join("1/namespaces/clusters"))?;
        std::fs::write(src.join("1/index.json"), encrypt(&to, b"{}")?)?;
        std::fs::write(
            src.join("1/namespaces/clusters/secret-a.yaml"),
            encrypt(&to, b"kind: Secret\n")?,
        )?;
        std::fs::write(src.join("1/notes.txt"), b"plain")?;
        let dst = tmp.path().join("plain");
        let summary = decrypt_tree(&src, &dst, &key)?;
        assert_eq!(
            summary,
            TreeSummary {
                decrypted: 2,
                copied: 1
            }
        );
        assert_eq!(std::fs::read(dst.join("1/index.json"))?, b"{}");
        assert_eq!(
            std::fs::read(dst.join("1/namespaces/clusters/secret-a.yaml"))?,
            b"kind: Secret\n"
        );
        assert!(decrypt_tree(&src, &dst, &key).is_err(), "an existing target is refused");
        Ok(())
    }
}
