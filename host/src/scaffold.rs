//! `ferry new hook <name>`: scaffolds a site hook crate.
//!
//! The crate builds a `hook`-world component with the guest SDK: a working
//! `verify` hook, a copy of the WIT contract (embedded in the ferry binary,
//! so scaffolding works outside the ferry repository), a least-privilege
//! Cedar policy granting only the `context` import, a hooks file for
//! `ferry drill --hooks` and a README with the build and test steps.

use std::path::{Path, PathBuf};

/// Rust keywords, which cannot name a crate.
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "static",
    "struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "abstract", "become", "box", "do",
    "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
];

/// Names the scaffold refuses because they clash with ferry's own crates.
const RESERVED: &[&str] = &["ferry", "ferry-sdk", "ferry-sim", "test", "core", "std", "alloc"];

/// Why scaffolding failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    /// The hook name cannot be used.
    #[error(
        "invalid hook name `{name}`: {reason} (use lower-case letters, digits and single dashes, starting with a letter, at most 64 characters, e.g. `change-freeze`)"
    )]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The target directory exists and is not empty.
    #[error("{} exists and is not empty: choose another directory or remove it", path.display())]
    Exists {
        /// The directory.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Checks that `name` can name a hook: its crate, its component file and its
/// policy principal `Ferry::Guest::"<name>"`.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |reason| {
        Err(ScaffoldError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 64 {
        return bad("it is longer than 64 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lower-case letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("it may only hold lower-case letters, digits and dashes");
    }
    if name.ends_with('-') || name.contains("--") {
        return bad("dashes must separate words");
    }
    if KEYWORDS.contains(&name) {
        return bad("it is a Rust keyword");
    }
    if RESERVED.contains(&name) {
        return bad("it is reserved");
    }
    Ok(())
}

/// Creates a hook crate named `name` in `dir` (created if missing; it must be
/// empty if it exists) and returns the files written.
///
/// With `ferry_repo` (a checkout of ferry), the crate depends on
/// `<ferry_repo>/guests/ferry-sdk` by path; without it, Cargo.toml carries a
/// commented dependency line to fill in.
pub fn new_hook(name: &str, dir: &Path, ferry_repo: Option<&Path>) -> Result<Vec<PathBuf>, ScaffoldError> {
    validate_name(name)?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(io(dir))?;
        if entries.next().is_some() {
            return Err(ScaffoldError::Exists {
                path: dir.to_path_buf(),
            });
        }
    }
    let mut files: Vec<(PathBuf, String)> = vec![
        (PathBuf::from("Cargo.toml"), cargo_toml(name, ferry_repo)),
        (PathBuf::from("src/lib.rs"), lib_rs(name)),
        (PathBuf::from("policy.cedar"), policy(name)),
        (PathBuf::from("hooks.toml"), hooks_toml(name)),
        (PathBuf::from("README.md"), readme(name, ferry_repo.is_some())),
        (PathBuf::from(".gitignore"), "/target\nCargo.lock\n".to_string()),
    ];
    for (file, text) in crate::capabilities::wit_files() {
        files.push((Path::new("wit").join(file), (*text).to_string()));
    }
    let mut written = Vec::with_capacity(files.len());
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, text).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

/// The crate's `snake_case` name (its wasm file stem).
fn stem(name: &str) -> String {
    name.replace('-', "_")
}

/// The parameter that makes the scaffolded hook veto.
fn veto_param(name: &str) -> String {
    format!("{}_veto", stem(name))
}

fn cargo_toml(name: &str, ferry_repo: Option<&Path>) -> String {
    let sdk = match ferry_repo {
        Some(repo) => {
            let path = repo.join("guests").join("ferry-sdk");
            let quoted = toml::Value::String(path.display().to_string()).to_string();
            format!("ferry-sdk = {{ path = {quoted} }}\n")
        }
        None => "# The ferry guest SDK: point this at guests/ferry-sdk of a ferry checkout.\n\
                 # ferry-sdk = { path = \"/path/to/ferry/guests/ferry-sdk\" }\n"
            .to_string(),
    };
    format!(
        r#"[package]
name = "{name}"
description = "ferry site hook `{name}`"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
{sdk}serde_json = "1"

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true

# A standalone crate, even when created inside another workspace.
[workspace]
"#
    )
}

fn lib_rs(name: &str) -> String {
    let param = veto_param(name);
    format!(
        r#"//! `{name}`: a ferry site hook (WIT world `ferry:host/hook`).
//!
//! The host calls `on_event` at the points `hooks.toml` lists, each call in
//! a fresh sandbox under this hook's own policy (`policy.cedar`). This one
//! handles `verify`, called before a destructive step: it proceeds, or
//! vetoes when the run parameter `{param}` is `true`. A veto stops the phase
//! before anything is destroyed; its text says why and how to proceed.

// The `hook` world from ./wit: a `Guest` trait, `Event`, `Outcome` and an
// `export!` macro, with the imports mapped onto the SDK's bindings.
ferry_sdk::hook_world!("wit");

use ferry_sdk::hooks::{{self, Point}};
use ferry_sdk::params::Params;

struct Hook;

impl Guest for Hook {{
    fn on_event(event: Event) -> ferry_sdk::Result<Outcome> {{
        if event.point != Point::Verify {{
            return Ok(Outcome::Proceed);
        }}
        // Which hosted cluster the run is about (empty fields if not sent).
        let cluster = hooks::cluster_payload(&event)?;
        let params = Params::load(&[]);
        ferry_sdk::log::info(
            "{name}: verifying",
            &[
                ("phase", &event.phase),
                ("step", &event.step),
                ("hosted_cluster", &cluster.hc_name),
            ],
        );
        if params.flag("{param}") {{
            return Ok(hooks::veto(format!(
                "{name} vetoes {{}}/{{}} because `{param}` is set: unset it to proceed",
                event.phase, event.step
            )));
        }}
        Ok(Outcome::Proceed)
    }}
}}

export!(Hook);
"#
    )
}

fn policy(name: &str) -> String {
    format!(
        r#"// Policy of the `{name}` site hook.
//
// Deny by default: the hook may import ferry:host/context (logging,
// parameters, the clock) and nothing else, so k8s, objects and dns are
// refused before it is instantiated. Grant more here as the hook needs it;
// see policies/ferry.cedarschema and policies/hosted-cluster-dr.cedar in the
// ferry repository for the entities and `@link("...{{param}}...")` templates.

@id("{name}-imports")
permit (
  principal == Ferry::Guest::"{name}",
  action == Ferry::Action::"import",
  resource == Ferry::Interface::"ferry:host/context"
);
"#
    )
}

fn hooks_toml(name: &str) -> String {
    let stem = stem(name);
    let param = veto_param(name);
    format!(
        r#"# Site hooks for `ferry drill --hooks hooks.toml`. To use the hook in real
# runs, copy the [[hooks]] table into the site config (paths there are
# relative to the site config).

[[hooks]]
name = "{name}"                # its policy principal: Ferry::Guest::"{name}"
component = "target/wasm32-wasip2/release/{stem}.wasm"
policy = "policy.cedar"
points = ["verify"]            # before-step, after-step, select-objects, transform-object, verify
advisory = false               # true: a failure or veto is only a warning
# [hooks.limits]               # default: 64 MiB, 2 s CPU, 60 s wall
# cpu_ms = 5000

[params]
# {param} = "true"   # uncomment to watch the hook veto the drill's first destructive step
"#
    )
}

fn readme(name: &str, has_sdk: bool) -> String {
    let stem = stem(name);
    let param = veto_param(name);
    let sdk_note = if has_sdk {
        ""
    } else {
        "\nFirst set the `ferry-sdk` dependency in `Cargo.toml` to the `guests/ferry-sdk`\n\
         folder of a ferry checkout.\n"
    };
    format!(
        r#"# {name}

A ferry site hook: a WebAssembly component of the WIT world
`ferry:host/hook` (see `wit/worlds.wit` and `wit/hooks.wit`). The host calls it at the points
`hooks.toml` lists, each call in its own sandbox, under its own policy
(`policy.cedar`) and limits.

As generated it handles `verify` (called before a destructive step): it
proceeds, or vetoes when the run parameter `{param}` is `true`.
{sdk_note}
## Build

```sh
rustup target add wasm32-wasip2   # once
cargo build --release --target wasm32-wasip2
```

The component is `target/wasm32-wasip2/release/{stem}.wasm`.

## Try it

Run a whole simulated migration with the hook:

```sh
ferry drill --hooks hooks.toml
```

Then make it veto: uncomment `{param} = "true"` under `[params]` in
`hooks.toml` and run the drill again: it stops at the first destructive
step (the backup's route deletion) with the hook's message, before anything
is destroyed.

## Grant more

The policy grants the `context` import only. If the hook needs a cluster,
bucket or zone, add the import and the narrowest grant to `policy.cedar`
(principal `Ferry::Guest::"{name}"`); `ferry policy explain --policy
policy.cedar` prints what it allows.

## Use it

Copy the `[[hooks]]` table of `hooks.toml` into the site config, with the
component and policy paths relative to it.
"#
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::policy::{GuestIdentity, PolicyEngine};

    #[test]
    fn scaffolds_a_hook_crate() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("change-freeze");
        let repo = Path::new("/opt/ferry");
        let files = new_hook("change-freeze", &dir, Some(repo)).expect("scaffold");
        for rel in [
            "Cargo.toml",
            "src/lib.rs",
            "policy.cedar",
            "hooks.toml",
            "README.md",
            "wit/worlds.wit",
            "wit/types.wit",
        ] {
            let path = dir.join(rel);
            assert!(path.is_file(), "{} missing", path.display());
            assert!(files.contains(&path), "{} not reported", path.display());
        }
        assert_eq!(files.len(), 6 + crate::capabilities::wit_files().len());

        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).expect("Cargo.toml");
        let manifest: toml::Value = toml::from_str(&cargo).expect("Cargo.toml is TOML");
        assert_eq!(manifest["package"]["name"].as_str(), Some("change-freeze"));
        assert_eq!(
            manifest["dependencies"]["ferry-sdk"]["path"].as_str(),
            Some("/opt/ferry/guests/ferry-sdk")
        );
        assert!(manifest.get("workspace").is_some());

        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).expect("lib.rs");
        assert!(lib.contains("ferry_sdk::hook_world!(\"wit\")"));
        assert!(lib.contains("change_freeze_veto"));
        assert_eq!(
            std::fs::read_to_string(dir.join("wit/worlds.wit")).expect("worlds.wit"),
            include_str!("../../wit/worlds.wit")
        );

        // The hooks file is one `ferry drill --hooks` accepts.
        let hooks = crate::config::HooksFile::load(&dir.join("hooks.toml")).expect("hooks.toml");
        assert_eq!(hooks.hooks.len(), 1);
        assert_eq!(hooks.hooks[0].name, "change-freeze");
        assert_eq!(hooks.hooks[0].points, vec!["verify".to_string()]);
        assert!(
            hooks.hooks[0]
                .component
                .ends_with("target/wasm32-wasip2/release/change_freeze.wasm")
        );
        assert!(hooks.hooks[0].policy.ends_with("policy.cedar"));

        // The policy validates and grants the context import only.
        let identity = GuestIdentity {
            name: "change-freeze".into(),
            sha256: "0".repeat(64),
        };
        let policy = PolicyEngine::load(&dir.join("policy.cedar"), &BTreeMap::new(), &identity).expect("policy");
        assert!(policy.check_import("ferry:host/context@0.1.0").allowed);
        for denied in [
            "ferry:host/k8s@0.1.0",
            "ferry:host/objects@0.1.0",
            "ferry:host/dns@0.1.0",
        ] {
            assert!(!policy.check_import(denied).allowed, "{denied}");
        }
    }

    #[test]
    fn without_a_repo_the_sdk_dependency_is_a_comment() {
        let tmp = tempfile::tempdir().expect("tempdir");
        new_hook("h1", tmp.path(), None).expect("scaffold into an empty existing dir");
        let cargo = std::fs::read_to_string(tmp.path().join("Cargo.toml")).expect("Cargo.toml");
        let manifest: toml::Value = toml::from_str(&cargo).expect("Cargo.toml is TOML");
        assert!(manifest["dependencies"].get("ferry-sdk").is_none());
        assert!(cargo.contains("# ferry-sdk = { path = "));
        let readme = std::fs::read_to_string(tmp.path().join("README.md")).expect("README");
        assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
        assert!(readme.contains("ferry drill --hooks hooks.toml"));
    }

    #[test]
    fn refuses_a_non_empty_directory() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::write(tmp.path().join("keep.txt"), "x").expect("write");
        let err = new_hook("ok-name", tmp.path(), None).expect_err("not empty");
        assert!(matches!(err, ScaffoldError::Exists { .. }), "{err}");
        assert_eq!(
            std::fs::read_dir(tmp.path()).expect("dir").count(),
            1,
            "nothing written"
        );
    }

    #[test]
    fn validates_names() {
        for good in ["a", "change-window", "carry-labelled2", "x1-y2"] {
            validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            "Change",
            "1hook",
            "-hook",
            "hook-",
            "a--b",
            "my_hook",
            "my hook",
            "../x",
            "a/b",
            "héllo",
            "self",
            "ferry-sdk",
            long.as_str(),
        ] {
            let err = validate_name(bad).expect_err(bad);
            assert!(matches!(err, ScaffoldError::InvalidName { .. }));
            assert!(err.to_string().contains("invalid hook name"), "{err}");
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        assert!(new_hook("Bad", &tmp.path().join("x"), None).is_err());
        assert!(!tmp.path().join("x").exists(), "nothing created for a bad name");
    }
}
