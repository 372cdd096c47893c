//! `ferry:host/workspace`: files inside the one directory the run config
//! grants, through cap-std so no path can leave it (no `..`, no absolute
//! paths). Inside it, no symbolic link is followed at any component, so the
//! file the host opens is the one the policy decided on: a link `public/x` to
//! `secret/key` cannot read what `secret/` forbids. Files are written
//! atomically, 0600; folders 0700; with `[workspace] encrypt_to`, as age files
//! ([`at_rest`]).

use std::io::Write;

use cap_std::fs::{Dir, DirBuilder, OpenOptions};
use cap_std::fs::{DirBuilderExt, OpenOptionsExt};

use super::{Capability, HostError, HostResult, View};
use crate::capabilities::bindings::automation::ferry::host::workspace::{Entry, Host};
use crate::policy::{Action, ResourceRef};

pub mod at_rest;

/// The workspace capability.
pub const CAPABILITY: Capability = Capability {
    interface: "ferry:host/workspace",
    wit: ("workspace.wit", include_str!("../../../../wit/workspace.wit")),
    actions: &[Action::WorkspaceRead, Action::WorkspaceWrite, Action::WorkspaceList],
    needs_grant: true,
};

/// Checks a guest path and returns it normalised (`a/b/c`). Empty means the root.
pub fn normalise(path: &str) -> HostResult<String> {
    if path.starts_with('/') || path.contains('\\') || path.contains('\0') {
        return Err(HostError::Invalid(format!(
            "workspace path `{path}` must be relative and use `/`"
        )));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                return Err(HostError::Invalid(format!(
                    "workspace path `{path}` must not contain `..`"
                )));
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn io_error(e: std::io::Error, path: &str) -> HostError {
    if e.kind() == std::io::ErrorKind::InvalidInput && e.to_string() == NOT_REGULAR {
        return HostError::Invalid(format!(
            "workspace path `{path}` is not a regular file (a FIFO, device or socket); the workspace reads files only"
        ));
    }
    if e.raw_os_error() == Some(libc::ELOOP) {
        return HostError::Invalid(format!(
            "workspace path `{path}` goes through a symbolic link; the workspace follows none, so that a path means the file the policy decided on"
        ));
    }
    match e.kind() {
        std::io::ErrorKind::NotFound => HostError::NotFound(format!("workspace file `{path}` does not exist")),
        std::io::ErrorKind::PermissionDenied => HostError::Invalid(format!("workspace path `{path}`: {e}")),
        _ => HostError::Other(format!("workspace path `{path}`: {e}")),
    }
}

impl View<'_> {
    fn workspace_dir(&self) -> HostResult<Dir> {
        self.env
            .clients
            .workspace(&self.env.config)
            .map_err(|e| HostError::Invalid(e.to_string()))
    }
}

/// Opens the file `name` in `dir`, refusing it if it is a symbolic link (`ELOOP`) or not a
/// regular file. `O_NONBLOCK`: opening a FIFO someone planted must not wait for a writer (a
/// blocking open is synchronous work no wall clock can interrupt); it has no effect on
/// regular files.
fn open_nofollow(dir: &Dir, name: &str) -> std::io::Result<cap_std::fs::File> {
    let mut opts = OpenOptions::new();
    opts.read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    let f = dir.open_with(name, &opts)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, NOT_REGULAR));
    }
    Ok(f)
}

/// The error text of a path that is not a regular file (a FIFO, a device, a socket).
const NOT_REGULAR: &str = "not a regular file";

/// Opens the directory `path` (normalised; empty is the root) one component at a time,
/// following no symbolic link; with `create`, missing components are made (0700).
fn open_dir_nofollow(root: &Dir, path: &str, create: bool) -> std::io::Result<Dir> {
    let mut dir = root.try_clone()?;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        dir = match enter(&dir, part) {
            Err(e) if create && e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = DirBuilder::new();
                b.mode(0o700);
                match dir.create_dir_with(part, &b) {
                    Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
                    _ => enter(&dir, part)?,
                }
            }
            other => other?,
        };
    }
    Ok(dir)
}

/// Opens the subdirectory `part` of `dir` if it is a directory itself, not a link, and
/// checks that the directory opened is that very entry (same device and inode), so a link
/// swapped in between is refused too (`ELOOP`).
fn enter(dir: &Dir, part: &str) -> std::io::Result<Dir> {
    use cap_std::fs::MetadataExt;
    let looped = || std::io::Error::from_raw_os_error(libc::ELOOP);
    let entry = dir.symlink_metadata(part)?;
    if entry.file_type().is_symlink() {
        return Err(looped());
    }
    let next = dir.open_dir(part)?;
    let opened = next.dir_metadata()?;
    if (opened.dev(), opened.ino()) != (entry.dev(), entry.ino()) {
        return Err(looped());
    }
    Ok(next)
}

/// The directory part and the file name of a normalised path.
fn split(path: &str) -> (&str, &str) {
    path.rsplit_once('/').unwrap_or(("", path))
}

/// Reads the file at `path` (normalised), following no symbolic link, if it holds at most
/// `max` bytes; `Ok(None)` when it holds more (nothing past `max + 1` bytes is read).
fn read_nofollow(root: &Dir, path: &str, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let (parent, name) = split(path);
    let f = open_nofollow(&open_dir_nofollow(root, parent, false)?, name)?;
    let mut out = Vec::new();
    f.take(max.saturating_add(1)).read_to_end(&mut out)?;
    Ok((out.len() as u64 <= max).then_some(out))
}

fn write_atomic(dir: &Dir, path: &str, data: &[u8]) -> std::io::Result<()> {
    let (parent, name) = split(path);
    let target_dir = open_dir_nofollow(dir, parent, true)?;
    let tmp = format!(".{name}.ferry-tmp-{}", std::process::id());
    // A leftover of a killed run, or anything planted there (a FIFO would block the open):
    // removed, then created afresh, never opened as found.
    match target_dir.remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut opts = OpenOptions::new();
    opts.write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW);
    let mut f = target_dir.open_with(&tmp, &opts)?;
    f.write_all(data)?;
    f.sync_all()?;
    target_dir.rename(&tmp, &target_dir, name)?;
    Ok(())
}

impl Host for View<'_> {
    async fn read_file(&mut self, path: String) -> HostResult<Vec<u8>> {
        let path = normalise(&path)?;
        let approved = self
            .authorize(Action::WorkspaceRead, ResourceRef::Path { path: path.clone() }, false)
            .await?;
        let max = self.env.config.limits.max_object_bytes;
        let too_large = || {
            HostError::Invalid(format!(
                "workspace file `{path}` is larger than [limits] max_object_bytes ({max} bytes)"
            ))
        };
        // An age file carries about 200 bytes of header and 16 per 64 KiB chunk.
        let stored_max = max.saturating_add(max / 4096).saturating_add(4096);
        let result = self.workspace_dir().and_then(|d| {
            let data = read_nofollow(&d, &path, stored_max)
                .map_err(|e| io_error(e, &path))?
                .ok_or_else(too_large)?;
            if !at_rest::is_encrypted(&data) {
                return if data.len() as u64 > max {
                    Err(too_large())
                } else {
                    Ok(data)
                };
            }
            let ws = self.env.config.workspace.as_ref();
            let Some(identity) = ws.and_then(|w| w.identity.as_deref()) else {
                return Err(HostError::Invalid(format!(
                    "workspace file `{path}` is encrypted (age), and this run has no key to read it: set \
                     [workspace] identity (a site's [backup] age_identity), or remove the local copy to \
                     read the backup from S3"
                )));
            };
            let ids = at_rest::identities(identity).map_err(|e| HostError::Invalid(e.to_string()))?;
            at_rest::decrypt(&ids, &data, max)
                .map_err(|e| HostError::Other(format!("workspace file `{path}`: {e}")))?
                .ok_or_else(too_large)
        });
        self.finish(approved, result)
    }

    async fn write_file(&mut self, path: String, data: Vec<u8>) -> HostResult<()> {
        let path = normalise(&path)?;
        if path.is_empty() {
            return Err(HostError::Invalid(
                "write-file needs a file path, not the workspace root".into(),
            ));
        }
        let plan = self.env.plan;
        let facts = crate::capabilities::Facts {
            change: crate::capabilities::Change::new(format!("write {} bytes", data.len()), data.clone()),
            ..Default::default()
        };
        let approved = self
            .authorize_with(
                Action::WorkspaceWrite,
                ResourceRef::Path { path: path.clone() },
                plan,
                facts,
            )
            .await?;
        let limits = &self.env.config.limits;
        let size = data.len() as u64;
        let written = self.state.workspace_written;
        let result = if size > limits.max_object_bytes {
            Err(HostError::Invalid(format!(
                "workspace file `{path}` would hold {size} bytes, more than [limits] max_object_bytes ({} bytes)",
                limits.max_object_bytes
            )))
        } else if written.saturating_add(size) > limits.workspace_quota_bytes {
            Err(HostError::Invalid(format!(
                "writing `{path}` ({size} bytes) would take this run past [limits] workspace_quota_bytes ({} bytes; {written} written so far)",
                limits.workspace_quota_bytes
            )))
        } else if plan {
            tracing::info!(%path, bytes = data.len(), "plan: would write workspace file");
            Ok(())
        } else {
            let to = self
                .env
                .config
                .workspace
                .as_ref()
                .map(|w| w.encrypt_to.as_slice())
                .unwrap_or_default();
            let stored = if to.is_empty() {
                Ok(data)
            } else {
                at_rest::recipients(to)
                    .and_then(|r| at_rest::encrypt(&r, &data))
                    .map_err(|e| HostError::Invalid(format!("workspace file `{path}`: {e}")))
            };
            stored.and_then(|stored| {
                self.workspace_dir()
                    .and_then(|d| write_atomic(&d, &path, &stored).map_err(|e| io_error(e, &path)))
            })
        };
        if result.is_ok() {
            self.state.workspace_written = written.saturating_add(size);
        }
        self.finish(approved, result)
    }

    async fn list_dir(&mut self, path: String) -> HostResult<Vec<Entry>> {
        let path = normalise(&path)?;
        let approved = self
            .authorize(Action::WorkspaceList, ResourceRef::Path { path: path.clone() }, false)
            .await?;
        let result = self.workspace_dir().and_then(|d| {
            let rd = open_dir_nofollow(&d, &path, false)
                .and_then(|dir| dir.entries())
                .map_err(|e| io_error(e, &path))?;
            let mut out = Vec::new();
            for entry in rd {
                let entry = entry.map_err(|e| io_error(e, &path))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.contains(".ferry-tmp-") {
                    continue;
                }
                let meta = entry.metadata().map_err(|e| io_error(e, &path))?;
                out.push(Entry {
                    name,
                    is_dir: meta.is_dir(),
                    size: if meta.is_dir() { 0 } else { meta.len() },
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        });
        self.finish(approved, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_confined() {
        assert_eq!(normalise("a//b/./c").expect("ok"), "a/b/c");
        assert_eq!(normalise("").expect("ok"), "");
        assert!(normalise("../x").is_err());
        assert!(normalise("a/../../x").is_err());
        assert!(normalise("/etc/passwd").is_err());
        assert!(normalise("a\\b").is_err());
    }

    /// A link inside the workspace never leads the host to another file than the one the
    /// policy decided on: not as the file, not as a directory on the way, for reads, writes
    /// and listings.
    #[test]
    fn symbolic_links_are_not_followed() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(tmp.path().join("secret")).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("public")).expect("mkdir");
        std::fs::write(tmp.path().join("secret/key"), b"s3cr3t").expect("write");
        symlink(tmp.path().join("secret/key"), tmp.path().join("public/x")).expect("link");
        symlink("../secret", tmp.path().join("public/dir")).expect("link");
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).expect("open");
        for path in ["public/x", "public/dir/key"] {
            let e = read_nofollow(&dir, path, 1024).expect_err(path);
            assert!(io_error(e, path).to_string().contains("symbolic link"), "{path}");
        }
        assert!(write_atomic(&dir, "public/dir/new", b"x").is_err());
        assert!(write_atomic(&dir, "public/dir/sub/new", b"x").is_err());
        assert!(!tmp.path().join("secret/new").exists());
        assert!(
            !tmp.path().join("secret/sub").exists(),
            "no directory made through the link"
        );
        assert!(open_dir_nofollow(&dir, "public/dir", false).is_err());
        let plain = read_nofollow(&dir, "secret/key", 1024).expect("a plain file");
        assert_eq!(plain.as_deref(), Some(&b"s3cr3t"[..]));
        assert_eq!(
            read_nofollow(&dir, "secret/key", 5).expect("read"),
            None,
            "over the limit"
        );
        assert!(
            read_nofollow(&dir, "secret/key", 6).expect("read").is_some(),
            "at the limit"
        );
        // Replacing a link by writing the file replaces the link, never its target.
        write_atomic(&dir, "public/x", b"mine").expect("write over the link");
        assert_eq!(std::fs::read(tmp.path().join("secret/key")).expect("read"), b"s3cr3t");
    }

    #[test]
    fn atomic_writes_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).expect("open");
        write_atomic(&dir, "ns/a/file.yaml", b"x: 1\n").expect("write");
        let meta = std::fs::metadata(tmp.path().join("ns/a/file.yaml")).expect("meta");
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let dmeta = std::fs::metadata(tmp.path().join("ns/a")).expect("meta");
        assert_eq!(dmeta.permissions().mode() & 0o777, 0o700);
        assert_eq!(
            std::fs::read(tmp.path().join("ns/a/file.yaml")).expect("read"),
            b"x: 1\n"
        );
    }
}
