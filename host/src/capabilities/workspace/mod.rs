//! `ferry:host/workspace`: files inside the one directory the run config
//! grants, through cap-std so no path can leave it (no `..`, no absolute
//! paths, no symlink escapes). Files are written atomically, 0600; folders 0700.

use std::io::Write;

use cap_std::fs::{Dir, DirBuilder, OpenOptions};
use cap_std::fs::{DirBuilderExt, OpenOptionsExt};

use super::{Capability, HostError, HostResult, View};
use crate::capabilities::bindings::automation::ferry::host::workspace::{Entry, Host};
use crate::policy::{Action, ResourceRef};

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

fn write_atomic(dir: &Dir, path: &str, data: &[u8]) -> std::io::Result<()> {
    let (parent, name) = match path.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, path),
    };
    let target_dir = match parent {
        Some(p) => {
            let mut b = DirBuilder::new();
            b.recursive(true).mode(0o700);
            dir.create_dir_with(p, &b)?;
            dir.open_dir(p)?
        }
        None => dir.try_clone()?,
    };
    let tmp = format!(".{name}.ferry-tmp-{}", std::process::id());
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true).mode(0o600);
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
        let result = self
            .workspace_dir()
            .and_then(|d| d.read(&path).map_err(|e| io_error(e, &path)));
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
        let approved = self
            .authorize(Action::WorkspaceWrite, ResourceRef::Path { path: path.clone() }, plan)
            .await?;
        let result = if plan {
            tracing::info!(%path, bytes = data.len(), "plan: would write workspace file");
            Ok(())
        } else {
            self.workspace_dir()
                .and_then(|d| write_atomic(&d, &path, &data).map_err(|e| io_error(e, &path)))
        };
        self.finish(approved, result)
    }

    async fn list_dir(&mut self, path: String) -> HostResult<Vec<Entry>> {
        let path = normalise(&path)?;
        let approved = self
            .authorize(Action::WorkspaceList, ResourceRef::Path { path: path.clone() }, false)
            .await?;
        let result = self.workspace_dir().and_then(|d| {
            let rd = if path.is_empty() {
                d.entries()
            } else {
                d.read_dir(&path)
            }
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
