//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens to hundreds of
//! milliseconds; loading a cached artifact takes well under one. Entries are
//! keyed by the SHA-256 of the component bytes, the wasmtime version and the
//! engine's compatibility hash, so a different engine configuration never
//! reads another's artifact. A cached artifact is native code, so only files
//! this user wrote are ever deserialized: the directory is created 0700 and
//! entries 0600, and before any use both are checked to be owned by this user
//! and writable by no one else, the entry a plain file (not a link). A cache
//! that fails the check is not used at all (compiled in memory, nothing
//! written), with a warning saying why.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Compiles `bytes`, or loads the compiled artifact from `cache_dir`.
pub fn load(engine: &Engine, bytes: &[u8], sha256: &str, cache_dir: Option<&Path>) -> wasmtime::Result<Component> {
    let Some(dir) = cache_dir else {
        return Component::from_binary(engine, bytes);
    };
    let path = dir.join(format!("{}.cwasm", cache_key(engine, sha256)));
    if let Err(why) = trusted_dir(dir) {
        tracing::warn!(dir = %dir.display(), %why, "not using the compiled-component cache");
        return Component::from_binary(engine, bytes);
    }
    let entry = std::fs::symlink_metadata(&path);
    if let Ok(meta) = &entry
        && let Err(why) = trusted_entry(meta)
    {
        tracing::warn!(path = %path.display(), %why, "not using the compiled-component cache");
        return Component::from_binary(engine, bytes);
    }
    if entry.is_ok() {
        match deserialize(engine, &path) {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable compiled-component cache entry");
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let component = Component::from_binary(engine, bytes)?;
    if let Err(e) = store(dir, &path, &component) {
        tracing::warn!(dir = %dir.display(), error = %format!("{e:#}"), "cannot write the compiled-component cache; continuing without it");
    }
    Ok(component)
}

/// The cache directory, if it exists, must be this user's and writable by no one else.
fn trusted_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    if !meta.is_dir() {
        return Err("it is not a directory (a link is not followed)".into());
    }
    owned_and_private(meta.uid(), meta.mode(), 0o022)
}

/// A cache entry must be a plain file of this user's that no one else may read or write.
fn trusted_entry(meta: &std::fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err("the entry is not a plain file (a link is not followed)".into());
    }
    owned_and_private(meta.uid(), meta.mode(), 0o077)
}

fn owned_and_private(uid: u32, mode: u32, forbidden: u32) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code, reason = "geteuid, see above")]
    let me = unsafe { libc::geteuid() };
    if uid != me {
        return Err(format!("owned by uid {uid}, not by this user (uid {me})"));
    }
    if mode & forbidden != 0 {
        return Err(format!(
            "its mode is {:o}: others may change it (fix with chmod go-w, or remove it)",
            mode & 0o777
        ));
    }
    Ok(())
}

fn cache_key(engine: &Engine, sha256: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut h);
    let engine_hash = h.finish();
    let mut d = Sha256::new();
    d.update(sha256.as_bytes());
    d.update(b"\0wasmtime-48\0");
    d.update(engine_hash.to_le_bytes());
    hex::encode(d.finalize())
}

#[allow(unsafe_code, reason = "deserializing our own cached artifact; see module docs")]
fn deserialize(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    // SAFETY: the file lives in a 0700 directory this host created and was
    // written by `store` below from a component this host compiled; its name
    // binds it to the source bytes' SHA-256 and this engine configuration.
    unsafe { Component::deserialize_file(engine, path) }
}

fn store(dir: &Path, path: &Path, component: &Component) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| anyhow::anyhow!("creating {}: {e}", dir.display()))?;
    let bytes = component.serialize().map_err(|e| anyhow::anyhow!("{e}"))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The default cache directory: `$XDG_CACHE_HOME/ferry/components` or
/// `~/.cache/ferry/components`.
pub fn default_dir() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
    Some(base.join("ferry").join("components"))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn exports(c: &Component, engine: &Engine) -> Vec<String> {
        c.component_type().exports(engine).map(|(n, _)| n.to_string()).collect()
    }

    /// An artifact planted where others may write is native code from someone else: it is
    /// never loaded, and the component is compiled from its own bytes instead.
    #[test]
    fn a_cache_others_can_write_is_not_used() -> anyhow::Result<()> {
        let engine = Engine::default();
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().join("components");
        let guest = std::fs::read(ferry_artifacts::TEST_GUEST)?;
        let hook = std::fs::read(ferry_artifacts::TEST_HOOK)?;
        let (guest_sha, hook_sha) = (hex::encode(Sha256::digest(&guest)), hex::encode(Sha256::digest(&hook)));
        // Cache the hook, then plant its artifact under the guest's key.
        load(&engine, &hook, &hook_sha, Some(&dir))?;
        let hook_entry = dir.join(format!("{}.cwasm", cache_key(&engine, &hook_sha)));
        let guest_entry = dir.join(format!("{}.cwasm", cache_key(&engine, &guest_sha)));
        std::fs::copy(&hook_entry, &guest_entry)?;
        let want = exports(&Component::from_binary(&engine, &guest)?, &engine);
        let planted = exports(&Component::from_binary(&engine, &hook)?, &engine);
        assert_ne!(want, planted);

        // A private cache is trusted: the planted artifact is what loads (what a same-user
        // attacker could do anyway), which shows the check below is what refuses it.
        std::fs::set_permissions(&guest_entry, std::fs::Permissions::from_mode(0o600))?;
        assert_eq!(
            exports(&load(&engine, &guest, &guest_sha, Some(&dir))?, &engine),
            planted
        );

        for (path, mode) in [(&guest_entry, 0o666), (&dir, 0o777)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
            assert_eq!(exports(&load(&engine, &guest, &guest_sha, Some(&dir))?, &engine), want);
            let back = if path.is_dir() { 0o700 } else { 0o600 };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(back))?;
        }
        Ok(())
    }
}
