//! The hook contract is language-neutral: `guests/examples/py-change-freeze`
//! is a site hook written in Python and built with componentize-py against
//! the same WIT world (`ferry:host/hook`) as the Rust hooks. These tests
//! build it (cached by content), load it into ferry, check its imports
//! against its own least-privilege policy, and run it through a drill's
//! teardown, where it vetoes while `freeze=true`.
//!
//! componentize-py comes from ferry's virtualenv (`.ci/setup` installs it):
//! `$FERRY_VENV/bin/componentize-py`, else `~/.cache/ferry/venv/bin/componentize-py`.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on setup errors")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ferry::config::HookConfig;
use ferry::policy::PolicyEngine;
use ferry::runtime::Runtime;
use ferry_dr::phases::{Phase, PhaseOutcome};
use ferry_drill::{Drill, DrillOptions};
use ferry_tests::dr::{run, source_has_hosted_cluster};
use sha2::{Digest, Sha256};

/// The hook's name: its policy principal and how messages name it.
const HOOK: &str = "py-change-freeze";

/// The WIT world componentize-py builds against.
const WORLD: &str = "ferry:host/hook@0.1.0";

/// The hook world narrowed to the imports the hook uses (in the example's
/// `context-only.wit`), intersected with [`WORLD`] at build time.
const NARROW_WORLD: &str = "ferry-examples:py-change-freeze/context-only";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The example's source folder.
fn example_dir() -> PathBuf {
    repo_root().join("guests/examples").join(HOOK)
}

/// The example's policy.
fn policy_path() -> PathBuf {
    example_dir().join("policy.cedar")
}

/// The virtualenv `.ci/setup` installs the Python tools into.
fn venv() -> PathBuf {
    match std::env::var_os("FERRY_VENV") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(".cache/ferry/venv"),
    }
}

fn home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

/// Finds componentize-py, or fails with how to install it.
fn componentize_py() -> PathBuf {
    let candidates = [
        std::env::var_os("FERRY_VENV")
            .filter(|v| !v.is_empty())
            .map(|v| PathBuf::from(v).join("bin/componentize-py")),
        Some(home().join(".cache/ferry/venv/bin/componentize-py")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "componentize-py is not installed; run `bash .ci/setup`, or install it by hand:\n  \
         python3 -m venv {venv} && {venv}/bin/pip install 'componentize-py>=0.25.1,<0.26'",
        venv = venv().display()
    );
}

/// The componentize-py arguments after the tool's path.
fn build_args(app_dir: &Path, out: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = vec!["-d".into(), repo_root().join("wit").into()];
    args.extend(["-d".into(), example_dir().join("context-only.wit").into()]);
    args.extend(["-w".into(), WORLD.into(), "componentize".into()]);
    // Import only what the hook uses (its policy grants nothing else).
    args.extend(["-i".into(), NARROW_WORLD.into()]);
    // No WASI imports at all: CPython's build links wasi:sockets, which ferry
    // refuses to every guest, and a hook needs no files, clock or stdout
    // (it logs and reads time through ferry:host/context). Python's startup
    // runs at build time, so the trapping stubs are never reached.
    args.push("--stub-wasi".into());
    args.extend(["-p".into(), app_dir.into(), "app".into(), "-o".into(), out.into()]);
    args
}

/// SHA-256 over app.py, the example's WIT, every file of `wit/` (sorted by
/// name), the worlds and componentize-py's version, so a change to any of
/// them rebuilds and nothing else does.
fn source_key(tool: &Path) -> String {
    let mut d = Sha256::new();
    let version = Command::new(tool)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("running {} --version: {e}", tool.display()));
    d.update(&version.stdout);
    d.update(b"\0");
    for name in ["app.py", "context-only.wit"] {
        let f = example_dir().join(name);
        d.update(name.as_bytes());
        d.update(b"\0");
        d.update(std::fs::read(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display())));
        d.update(b"\0");
    }
    let wit = repo_root().join("wit");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&wit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wit"))
        .collect();
    files.sort();
    for f in files {
        d.update(b"\0wit/");
        d.update(f.file_name().unwrap().to_string_lossy().as_bytes());
        d.update(b"\0");
        d.update(std::fs::read(&f).unwrap());
    }
    d.update(format!("\0{WORLD}\0{NARROW_WORLD}\0--stub-wasi").as_bytes());
    hex::encode(d.finalize())
}

/// Where built hooks are kept: `$FERRY_PY_HOOK_CACHE`, else
/// `~/.cache/ferry/py-hooks`.
fn cache_dir() -> PathBuf {
    match std::env::var_os("FERRY_PY_HOOK_CACHE") {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => home().join(".cache/ferry/py-hooks"),
    }
}

/// Builds the Python hook with componentize-py, once per content: returns
/// the path of `<cache>/py-change-freeze-<sha256>.wasm`. Safe to call from
/// concurrent tests and processes (build in a private folder, then rename).
///
/// It also compiles the component into ferry's component cache (the one the
/// drill's runtime reads), once for all tests of this file, so two tests
/// never compile CPython with Cranelift at the same time.
pub fn build_python_hook() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let wasm = build_python_hook_uncached();
            let runtime = Runtime::new(ferry::runtime::cache::default_dir()).unwrap();
            let started = Instant::now();
            runtime.load_file(&wasm, Some(HOOK)).unwrap();
            eprintln!(
                "{HOOK}: {} bytes, loaded into ferry's component cache in {:.2} s",
                std::fs::metadata(&wasm).unwrap().len(),
                started.elapsed().as_secs_f64()
            );
            wasm
        })
        .clone()
}

fn build_python_hook_uncached() -> PathBuf {
    let tool = componentize_py();
    let key = source_key(&tool);
    let dir = cache_dir();
    let out = dir.join(format!("{HOOK}-{}.wasm", &key[..32]));
    if out.is_file() {
        return out;
    }
    std::fs::create_dir_all(&dir).unwrap();
    // Build from a private copy of app.py: componentize-py may leave
    // __pycache__ next to the module, and the source tree stays clean.
    let work = tempfile::tempdir_in(&dir).unwrap();
    std::fs::copy(example_dir().join("app.py"), work.path().join("app.py")).unwrap();
    let tmp_out = work.path().join("hook.wasm");
    let started = Instant::now();
    let result = Command::new(&tool)
        .args(build_args(work.path(), &tmp_out))
        .current_dir(work.path())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // A venv's site-packages (moto, boto3...) must not end up in the hook.
        .env_remove("VIRTUAL_ENV")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    assert!(
        result.status.success(),
        "componentize-py failed ({}):\n{}\n{}",
        result.status,
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    eprintln!(
        "built {HOOK} with componentize-py in {:.1} s ({} bytes)",
        started.elapsed().as_secs_f64(),
        std::fs::metadata(&tmp_out).unwrap().len()
    );
    std::fs::rename(&tmp_out, &out).unwrap();
    // Older builds of this hook (other sources) are 18 MB each: drop them.
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p != out && name.starts_with(&format!("{HOOK}-")) && name.ends_with(".wasm") {
            let _ = std::fs::remove_file(&p);
        }
    }
    out
}

#[test]
fn the_python_hook_loads_and_its_imports_pass_its_policy() {
    ferry_tests::init_logging();
    let wasm = build_python_hook();

    // build_python_hook compiled it into ferry's component cache (the first
    // time on a machine: slow for CPython, see the example's README); this
    // load reads the cache, like `ferry` and the drill do.
    let runtime = Runtime::new(ferry::runtime::cache::default_dir()).unwrap();
    let started = Instant::now();
    let guest = runtime.load_file(&wasm, Some(HOOK)).unwrap();
    eprintln!("{HOOK}: cached load {:.3} s", started.elapsed().as_secs_f64());
    let stranger = runtime.load_file(&wasm, Some("someone-else")).unwrap();

    let imports = guest.imports(runtime.engine());
    assert!(
        imports.iter().any(|i| i.starts_with("ferry:host/context@")),
        "the hook logs and reads parameters through ferry:host/context: {imports:?}"
    );
    let unexpected: Vec<&String> = imports
        .iter()
        .filter(|i| {
            !["ferry:host/context@", "ferry:host/types@", "ferry:host/hooks@"]
                .iter()
                .any(|p| i.starts_with(p))
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "the hook imports more than it uses: {unexpected:?}"
    );

    let policy = PolicyEngine::load(&policy_path(), &BTreeMap::new(), &guest.identity).unwrap();
    runtime.check_imports(&guest, &policy).unwrap();

    // The policy names its principal: the same component under another name
    // is refused, naming the interface.
    let policy = PolicyEngine::load(&policy_path(), &BTreeMap::new(), &stranger.identity).unwrap();
    let err = runtime.check_imports(&stranger, &policy).unwrap_err();
    assert!(err.to_string().contains("ferry:host/context"), "{err}");
}

fn python_hook() -> HookConfig {
    HookConfig {
        name: HOOK.into(),
        component: build_python_hook(),
        policy: policy_path(),
        points: vec!["verify".into()],
        advisory: false,
        limits: None,
    }
}

fn set_freeze(drill: &mut Drill, on: bool) {
    drill.run_config_mut().params.insert("freeze".into(), on.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_hook_vetoes_teardown_during_a_change_freeze() {
    ferry_tests::init_logging();
    let hook = python_hook();
    let mut drill = Drill::start(DrillOptions {
        scenario: ferry_drill::basic_scenario(),
        install_moto: false,
        ..DrillOptions::default()
    })
    .await
    .unwrap();
    drill.run_config_mut().hooks.push(hook);
    set_freeze(&mut drill, true);

    // Backup has a verify point too (before the routes go): the hook only
    // guards teardown, so the freeze does not stop it.
    let r = run(&drill, Phase::Backup).await;
    assert!(r.succeeded(), "backup: {:?}", r.outcome);
    let r = run(&drill, Phase::Restore).await;
    assert!(r.succeeded(), "restore: {:?}", r.outcome);

    let r = run(&drill, Phase::Teardown).await;
    match &r.outcome {
        PhaseOutcome::GuestFailed { kind, message } => {
            eprintln!("teardown during the freeze: {kind}: {message}");
            assert!(
                message.contains(HOOK) && message.contains("change freeze is on"),
                "the failure names the hook and its reason ({kind}): {message}"
            );
        }
        PhaseOutcome::Succeeded { summary } => panic!("teardown ran during a change freeze: {summary}"),
    }
    assert!(
        source_has_hosted_cluster(&drill),
        "the veto came before anything was deleted"
    );

    // The freeze is lifted: the same hook lets teardown through.
    set_freeze(&mut drill, false);
    let r = run(&drill, Phase::Teardown).await;
    assert!(r.succeeded(), "teardown without a freeze: {:?}", r.outcome);
    assert!(
        !source_has_hosted_cluster(&drill),
        "teardown removed the source HostedCluster"
    );
    drill.shutdown().await;
}
