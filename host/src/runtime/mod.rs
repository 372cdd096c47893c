//! The runtime: one `Engine` and `Linker` per process, an `InstancePre` per
//! component, one `Store` per run, with memory, CPU, wall-clock and handle
//! limits. Nothing here imports from a layer above it: capabilities are linked
//! from their list ([`crate::capabilities::CAPABILITIES`]) and reached through
//! their view, hooks are run for the `hook-dispatch` capability through
//! [`crate::capabilities::env::HookDispatch`].
//!
//! - [`run`]: one guest run from config, policy and component ([`run::run`]);
//! - [`state`], [`limits`], [`wasi`]: the store, its limits, the WASI it gets;
//! - [`cache`]: compiled components on disk; [`hooks`]: site hooks;
//! - [`error`]: run failures and their exit codes.

pub mod cache;
pub mod error;
pub mod hooks;
pub mod limits;
pub mod payload;
pub mod run;
pub mod state;
pub mod store;
pub mod wasi;

pub use error::{Exit, RunError, RunFailure};
pub use limits::LimitExceeded;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine};

use self::limits::EPOCH_TICK;
use self::state::RunState;
use self::store::{limited_store, within_wall};
use self::wasi::{WASI_ALLOWED, link_wasi};
use crate::capabilities::bindings::automation::ferry::host::hooks::{Event as HookEvent, Outcome as HookOutcome};
use crate::capabilities::bindings::automation::{Automation, AutomationPre};
use crate::capabilities::bindings::hook::HookPre;
use crate::capabilities::env::RunEnv;
use crate::capabilities::{CAPABILITIES, View};
use crate::policy::{GuestIdentity, PolicyEngine};

/// The package of the interfaces this host implements.
pub const WIT_PACKAGE: &str = "ferry:host";

/// A loaded guest component, ready to instantiate.
#[derive(Clone)]
pub struct Guest {
    /// Identity (name and SHA-256).
    pub identity: GuestIdentity,
    component: Component,
}

impl Guest {
    /// The component's imports, as `name` strings.
    pub fn imports(&self, engine: &Engine) -> Vec<String> {
        self.component
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect()
    }
}

/// The process-wide runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache_dir: Option<PathBuf>,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Creates the engine (async, epoch interruption) and links every host
    /// interface and the allowed WASI interfaces. `cache_dir` holds compiled
    /// components (created 0700).
    pub fn new(cache_dir: Option<PathBuf>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.max_wasm_stack(1 << 20);
        let engine = Engine::new(&config)?;

        let mut linker: Linker<RunState> = Linker::new(&engine);
        link_wasi(&mut linker)?;
        // Every capability's host functions run on its borrowed view of the run state; the hook
        // world's interfaces are a subset of these.
        Automation::add_to_linker::<_, View<'static>>(&mut linker, RunState::view)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new().name("ferry-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        }
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
            ticker_stop,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Loads a component file; `name` defaults to the file stem.
    pub fn load_file(&self, path: &Path, name: Option<&str>) -> Result<Guest, RunError> {
        let bytes = std::fs::read(path).map_err(|source| RunError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = name
            .map(str::to_string)
            .or_else(|| path.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "guest".into());
        self.load_bytes(&bytes, &name, &path.display().to_string())
    }

    /// Loads a component from bytes (compiled once, then cached on disk).
    pub fn load_bytes(&self, bytes: &[u8], name: &str, origin: &str) -> Result<Guest, RunError> {
        self.load_with_digest(bytes, hex::encode(Sha256::digest(bytes)), name, origin)
    }

    /// Loads a component embedded in this binary whose SHA-256 was taken when it was
    /// embedded (`ferry-artifacts`' build script): bytes in the executable's read-only data
    /// change only with the executable, so hashing them again on every run (about 1 ms for
    /// the stock guest) proves nothing more. Debug builds check the digest anyway.
    pub fn load_embedded(&self, bytes: &[u8], sha256: &str, name: &str, origin: &str) -> Result<Guest, RunError> {
        debug_assert_eq!(hex::encode(Sha256::digest(bytes)), sha256, "{origin}: embedded digest");
        self.load_with_digest(bytes, sha256.to_string(), name, origin)
    }

    fn load_with_digest(&self, bytes: &[u8], sha256: String, name: &str, origin: &str) -> Result<Guest, RunError> {
        check_component_header(bytes, origin)?;
        let component =
            crate::runtime::cache::load(&self.engine, bytes, &sha256, self.cache_dir.as_deref()).map_err(|e| {
                RunError::NotAComponent {
                    path: origin.to_string(),
                    reason: format!("{e:#}"),
                }
            })?;
        Ok(Guest {
            identity: GuestIdentity {
                name: name.to_string(),
                sha256,
            },
            component,
        })
    }

    /// Checks a guest's imports against what the host provides and what the
    /// policy grants, before anything is instantiated. Returns every problem
    /// at once so a policy author fixes them in one go.
    pub fn check_imports(&self, guest: &Guest, policy: &PolicyEngine) -> Result<(), RunError> {
        let mut problems = Vec::new();
        for (name, item) in guest.component.component_type().imports(&self.engine) {
            let item = item.ty;
            let bare = strip_version(name);
            if !matches!(item, ComponentItem::ComponentInstance(_)) {
                problems.push(format!(
                    "`{name}`: ferry only provides interfaces, not bare functions or types"
                ));
                continue;
            }
            if bare.starts_with("ferry:host/") {
                let Some(cap) = CAPABILITIES.iter().find(|c| c.interface == bare) else {
                    problems.push(format!("`{name}`: this host does not provide that interface (is the guest built against a newer ferry?)"));
                    continue;
                };
                if !cap.needs_grant {
                    continue; // types only, nothing to grant
                }
                let d = policy.check_import(name);
                if !d.allowed {
                    problems.push(format!(
                        "`{name}` is not granted: {}",
                        d.denial_reason(
                            crate::policy::Action::Import,
                            &crate::policy::ResourceRef::Interface { name: bare.to_string() }
                        )
                    ));
                }
            } else if bare.starts_with("wasi:sockets/") {
                problems.push(format!("`{name}`: ferry never gives guests network sockets; use the ferry:host imports (k8s, objects, dns, etcd) instead"));
            } else if !WASI_ALLOWED.contains(&bare) {
                problems.push(format!(
                    "`{name}`: not provided by ferry (only {WIT_PACKAGE} and basic WASI io/cli/clocks/random are)"
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(RunError::ImportsRefused {
                guest: guest.identity.name.clone(),
                problems,
            })
        }
    }

    /// Prepares an `automation` guest for instantiation.
    pub fn prepare(&self, guest: &Guest) -> Result<AutomationPre<RunState>, RunError> {
        let pre = self
            .linker
            .instantiate_pre(&guest.component)
            .map_err(|e| RunError::WrongWorld {
                guest: guest.identity.name.clone(),
                world: "automation",
                message: format!("{e:#}"),
            })?;
        AutomationPre::new(pre).map_err(|e| RunError::WrongWorld {
            guest: guest.identity.name.clone(),
            world: "automation",
            message: format!("{e:#}"),
        })
    }

    /// Prepares a `hook` component for instantiation.
    pub fn prepare_hook(&self, guest: &Guest) -> Result<HookPre<RunState>, RunError> {
        let wrong = |e: wasmtime::Error| RunError::WrongWorld {
            guest: guest.identity.name.clone(),
            world: "hook",
            message: format!("{e:#}"),
        };
        let pre = self.linker.instantiate_pre(&guest.component).map_err(wrong)?;
        HookPre::new(pre).map_err(wrong)
    }

    /// Runs `phase` of a prepared guest in a fresh store under the run's limits.
    /// Ok(Ok(json)) is success; Ok(Err(e)) is the guest's own error value.
    pub async fn run(
        &self,
        pre: &AutomationPre<RunState>,
        env: Arc<RunEnv>,
        phase: &str,
        args: Vec<(String, String)>,
    ) -> Result<Result<String, crate::capabilities::bindings::WitError>, RunError> {
        let (mut store, watch) = limited_store(&self.engine, env);
        within_wall(watch, async {
            let instance = pre.instantiate_async(&mut store).await?;
            instance.call_run(&mut store, phase, &args).await
        })
        .await
    }
}

/// Calls one hook in a fresh store under its own limits.
pub(crate) async fn run_hook(
    engine: &Engine,
    pre: &HookPre<RunState>,
    env: Arc<RunEnv>,
    event: &HookEvent,
) -> Result<Result<HookOutcome, crate::capabilities::bindings::WitError>, RunError> {
    let (mut store, watch) = limited_store(engine, env);
    within_wall(watch, async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.call_on_event(&mut store, event).await
    })
    .await
}

fn strip_version(name: &str) -> &str {
    name.split_once('@').map(|(n, _)| n).unwrap_or(name)
}

/// Rejects files that are not components with a message that says what they are.
fn check_component_header(bytes: &[u8], origin: &str) -> Result<(), RunError> {
    let not = |reason: &str| RunError::NotAComponent {
        path: origin.to_string(),
        reason: reason.to_string(),
    };
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(not(
            "the file does not start with the WebAssembly magic bytes (is it a .wasm file at all?)",
        ));
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(not(
            "it is a core WebAssembly module; build the guest for wasm32-wasip2 (which emits a component) or wrap it with `wasm-tools component new`",
        )),
        [0x0d, 0, 1, 0] => Ok(()),
        v => Err(not(&format!(
            "unknown WebAssembly layer/version {v:02x?}; this host reads components of the component model"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_checks_explain_what_the_file_is() {
        let e = check_component_header(b"hello world", "x").unwrap_err().to_string();
        assert!(e.contains("magic bytes"), "{e}");
        let core = [0u8, b'a', b's', b'm', 1, 0, 0, 0];
        let e = check_component_header(&core, "x").unwrap_err().to_string();
        assert!(e.contains("core WebAssembly module"), "{e}");
        let comp = [0u8, b'a', b's', b'm', 0x0d, 0, 1, 0];
        assert!(check_component_header(&comp, "x").is_ok());
    }

    #[test]
    fn versions_are_stripped() {
        assert_eq!(strip_version("ferry:host/k8s@0.1.0"), "ferry:host/k8s");
        assert_eq!(strip_version("wasi:io/poll"), "wasi:io/poll");
    }
}
