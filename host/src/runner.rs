//! The runtime: one `Engine` and `Linker` per process, an `InstancePre` per
//! component, one `Store` per run, with memory, CPU, wall-clock and handle
//! limits.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{Config, Engine, Store, UpdateDeadline};

use crate::bindings::automation::ferry::host::hooks::{Event as HookEvent, Outcome as HookOutcome};
use crate::bindings::automation::{Automation, AutomationPre};
use crate::bindings::hook::HookPre;
use crate::policy::{GuestIdentity, PolicyEngine};
use crate::state::{RunEnv, RunState};

/// How often the epoch advances; the CPU limit counts these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The version of the `ferry:host` package this host implements.
pub const WIT_PACKAGE: &str = "ferry:host";
/// The interfaces this host provides, without version.
pub const FERRY_INTERFACES: &[&str] = &[
    "ferry:host/types",
    "ferry:host/context",
    "ferry:host/k8s",
    "ferry:host/objects",
    "ferry:host/dns",
    "ferry:host/etcd",
    "ferry:host/workspace",
    "ferry:host/hooks",
    "ferry:host/hook-dispatch",
];
/// WASI interfaces every guest may import. None of them reaches files,
/// network or environment: no directories are preopened, the environment
/// and arguments are empty, and stdout/stderr go to the log.
pub const WASI_ALLOWED: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:cli/environment",
    "wasi:cli/exit",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
];

/// A limit a guest ran into.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitExceeded {
    /// Linear memory would grow past the limit.
    #[error(
        "guest exceeded its memory limit of {limit_mib} MiB (it asked for {desired} bytes); raise [limits] memory_mib if this guest legitimately needs more"
    )]
    Memory {
        /// The limit.
        limit_mib: u64,
        /// What the guest asked for.
        desired: usize,
    },
    /// CPU budget used up.
    #[error(
        "guest used more than its CPU budget of {cpu_ms} ms and was stopped (a runaway loop?); raise [limits] cpu_ms if the work is legitimate"
    )]
    Cpu {
        /// The budget.
        cpu_ms: u64,
    },
    /// Wall-clock limit reached.
    #[error("guest run exceeded its wall-clock limit of {seconds} s (time in host calls included) and was stopped")]
    Wall {
        /// The limit.
        seconds: u64,
    },
}

/// Errors loading or running a guest.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The file could not be read.
    #[error("cannot read component {path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a component.
    #[error("{path} is not a WebAssembly component: {reason}")]
    NotAComponent {
        /// The path (or name).
        path: String,
        /// Why.
        reason: String,
    },
    /// The component imports something the policy or host does not grant.
    #[error("component `{guest}` was refused before it ran:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    ImportsRefused {
        /// Guest name.
        guest: String,
        /// One line per refused import.
        problems: Vec<String>,
    },
    /// The component does not export what the world requires.
    #[error("component `{guest}` does not fit the `{world}` world: {message}")]
    WrongWorld {
        /// Guest name.
        guest: String,
        /// The world.
        world: &'static str,
        /// Details.
        message: String,
    },
    /// A limit was hit.
    #[error("{0}")]
    Limit(#[from] LimitExceeded),
    /// The guest trapped.
    #[error("guest `{guest}` crashed (trap): {message}")]
    Trap {
        /// Guest name.
        guest: String,
        /// The trap and its backtrace.
        message: String,
    },
    /// Another host failure.
    #[error(transparent)]
    Host(#[from] anyhow::Error),
}

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
        Automation::add_to_linker::<_, wasmtime::component::HasSelf<RunState>>(&mut linker, |s| s)?;
        // The hook world adds one interface (`hooks`, types only) to the same set.

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
        check_component_header(bytes, origin)?;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let component = crate::cache::load(&self.engine, bytes, &sha256, self.cache_dir.as_deref()).map_err(|e| {
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
                if !FERRY_INTERFACES.contains(&bare) {
                    problems.push(format!("`{name}`: this host does not provide that interface (is the guest built against a newer ferry?)"));
                    continue;
                }
                if bare == "ferry:host/types" || bare == "ferry:host/hooks" {
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
    ) -> Result<Result<String, crate::bindings::WitError>, RunError> {
        let (mut store, wall, guest) = limited_store(&self.engine, env);
        within_wall(wall, &guest, async {
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
) -> Result<Result<HookOutcome, crate::bindings::WitError>, RunError> {
    let (mut store, wall, guest) = limited_store(engine, env);
    within_wall(wall, &guest, async {
        let instance = pre.instantiate_async(&mut store).await?;
        instance.call_on_event(&mut store, event).await
    })
    .await
}

/// A store for one run of `env`'s guest: memory limiter, CPU budget counted
/// in epoch ticks (yielding to tokio at each), and the wall-clock limit.
fn limited_store(engine: &Engine, env: Arc<RunEnv>) -> (Store<RunState>, Duration, String) {
    let limits = env.config.limits.clone();
    let guest = env.guest.name.clone();
    let mut store = Store::new(engine, RunState::new(env));
    store.limiter(|s| &mut s.limiter);
    let budget_ticks = (limits.cpu_ms / EPOCH_TICK.as_millis() as u64).max(1);
    store.set_epoch_deadline(1);
    let cpu_ms = limits.cpu_ms;
    store.epoch_deadline_callback(move |mut ctx| {
        let data = ctx.data_mut();
        data.cpu_ticks += 1;
        if data.cpu_ticks > budget_ticks {
            return Err(wasmtime::Error::new(LimitExceeded::Cpu { cpu_ms }));
        }
        // Yield to tokio at every tick so a busy guest never starves the
        // host's other tasks (progress rendering, timeouts).
        Ok(UpdateDeadline::Yield(1))
    });
    (store, Duration::from_secs(limits.wall_seconds), guest)
}

/// Runs a guest call under the wall-clock limit and classifies failures.
async fn within_wall<T>(
    wall: Duration,
    guest: &str,
    fut: impl std::future::Future<Output = wasmtime::Result<T>>,
) -> Result<T, RunError> {
    match tokio::time::timeout(wall, fut).await {
        Err(_) => Err(LimitExceeded::Wall {
            seconds: wall.as_secs(),
        }
        .into()),
        Ok(Ok(result)) => Ok(result),
        Ok(Err(e)) => Err(classify_failure(e, guest)),
    }
}

/// Turns a wasmtime error from a guest call into the error an SRE reads.
fn classify_failure(e: wasmtime::Error, guest: &str) -> RunError {
    if let Some(limit) = e.downcast_ref::<LimitExceeded>() {
        return RunError::Limit(limit.clone());
    }
    if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
        let detail = format!("{e:?}");
        return RunError::Trap {
            guest: guest.to_string(),
            message: format!("{trap}\n{detail}"),
        };
    }
    RunError::Trap {
        guest: guest.to_string(),
        message: format!("{e:?}"),
    }
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

/// Links the allowed WASI interfaces: io, cli, clocks, random and filesystem
/// types (with no preopened directory). Sockets are never linked.
fn link_wasi(l: &mut Linker<RunState>) -> anyhow::Result<()> {
    use wasmtime::component::HasData;
    use wasmtime_wasi::cli::WasiCli;
    use wasmtime_wasi::clocks::WasiClocks;
    use wasmtime_wasi::filesystem::WasiFilesystem;
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random};
    use wasmtime_wasi::random::WasiRandom;
    use wasmtime_wasi::{ResourceTable, WasiView};

    struct HasIo;
    impl HasData for HasIo {
        type Data<'a> = &'a mut ResourceTable;
    }
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<RunState, HasIo>(l, |t| t.ctx().table)?;
    wasmtime_wasi::p2::bindings::io::poll::add_to_linker::<RunState, HasIo>(l, |t| t.ctx().table)?;
    wasmtime_wasi::p2::bindings::io::streams::add_to_linker::<RunState, HasIo>(l, |t| t.ctx().table)?;

    use wasmtime_wasi::cli::WasiCliView as _;
    use wasmtime_wasi::clocks::WasiClocksView as _;
    use wasmtime_wasi::filesystem::WasiFilesystemView as _;
    clocks::wall_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<RunState, WasiClocks>(l, RunState::clocks)?;
    filesystem::types::add_to_linker::<RunState, WasiFilesystem>(l, RunState::filesystem)?;
    filesystem::preopens::add_to_linker::<RunState, WasiFilesystem>(l, RunState::filesystem)?;
    random::random::add_to_linker::<RunState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure::add_to_linker::<RunState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    random::insecure_seed::add_to_linker::<RunState, WasiRandom>(l, |t| t.ctx().ctx.random())?;
    cli::exit::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::environment::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_input::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_output::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    Ok(())
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
