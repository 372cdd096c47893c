//! On-disk cache of compiled components.
//!
//! Compiling a component with Cranelift takes tens to hundreds of
//! milliseconds; loading a cached artifact takes well under one. Entries are
//! keyed by the SHA-256 of the component bytes, the wasmtime version and the
//! engine's compatibility hash, so a different engine configuration never
//! reads another's artifact. Only files this host wrote are ever
//! deserialized: the cache directory is created 0700 and entries 0600.

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
    if path.is_file() {
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
