//! The engine side: one wasmtime [`Engine`] and [`Linker`] per process,
//! modules compiled once per digest (and cached on disk), and the epoch
//! ticker that enforces callback deadlines.

use crate::abi::AbiVersion;
use crate::error::LoadError;
use crate::host::{self, HostState};
use crate::plugin::PluginInfo;
use crate::shared::SharedState;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use wasmtime::{Config, Engine, InstancePre, Linker, Module, Store};

/// How often the engine's epoch advances; deadlines are multiples of it.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Process-wide options of the host.
#[derive(Clone, Debug)]
pub struct RuntimeOptions {
    /// Where compiled modules are cached (`<dir>/<engine>/<sha256>.cwasm`).
    pub cache_dir: Option<PathBuf>,
    /// Size of the pooling allocator: how many VMs (and call stacks) can
    /// exist at once. 0 selects on-demand allocation instead.
    pub max_vms: u32,
    /// Largest linear memory a plugin may be configured with.
    pub max_memory: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: None,
            max_vms: 256,
            max_memory: 1 << 30,
        }
    }
}

fn engine_config(options: &RuntimeOptions, pooling: bool) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    config.max_wasm_stack(1 << 20);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if pooling {
        // VMs, their memories and the fiber stacks of async calls come from
        // pools: no mmap/munmap per instantiation or per nested call.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_core_instances(options.max_vms)
            .total_memories(options.max_vms)
            .total_tables(options.max_vms)
            .total_stacks(options.max_vms * 2)
            .total_component_instances(0)
            .max_memory_size(options.max_memory)
            .table_elements(200_000)
            .max_core_instance_size(4 << 20);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// The process-wide host: engine, linker, shared state, module cache.
pub struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<HostState>,
    env_names: HashSet<&'static str>,
    wasi_names: HashSet<String>,
    pub(crate) shared: Arc<SharedState>,
    pub(crate) max_memory: usize,
    cache_dir: Option<PathBuf>,
    engine_key: String,
    modules: Mutex<HashMap<String, Module>>,
    stop_ticker: Arc<AtomicBool>,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
    }
}

/// A module compiled, checked and ready to instantiate.
pub struct PluginModule {
    pub name: String,
    /// `sha256:<hex>` of the module bytes.
    pub digest: String,
    pub abi: AbiVersion,
    /// True when the compiled code came from the on-disk cache.
    pub from_cache: bool,
    pub(crate) pre: InstancePre<HostState>,
    pub(crate) runtime: Arc<Runtime>,
}

impl std::fmt::Debug for PluginModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginModule")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .finish()
    }
}

impl Runtime {
    pub fn new(options: RuntimeOptions) -> Result<Arc<Runtime>, LoadError> {
        let engine = match Engine::new(&engine_config(&options, options.max_vms > 0)) {
            Ok(e) => e,
            Err(e) if options.max_vms > 0 => {
                tracing::warn!("pooling allocator unavailable ({e:#}); allocating VMs on demand");
                Engine::new(&engine_config(&options, false))
                    .map_err(|e| LoadError::Engine(format!("{e:#}")))?
            }
            Err(e) => return Err(LoadError::Engine(format!("{e:#}"))),
        };
        let mut linker: Linker<HostState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut HostState| &mut s.wasi)
            .map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        let env_names =
            host::add_hostcalls(&mut linker).map_err(|e| LoadError::Engine(format!("{e:#}")))?;
        // The names WASI provides, for precise import errors.
        let mut probe = Store::new(&engine, HostState::probe());
        let wasi_names = linker
            .iter(&mut probe)
            .filter(|(m, _, _)| *m == "wasi_snapshot_preview1")
            .map(|(_, n, _)| n.to_owned())
            .collect();
        drop(probe);
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let stop_ticker = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("weft-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| LoadError::Engine(format!("cannot start the epoch thread: {e}")))?;
        }
        Ok(Arc::new(Runtime {
            engine,
            linker,
            env_names: env_names.into_iter().collect(),
            wasi_names,
            shared: Arc::new(SharedState::default()),
            max_memory: options.max_memory,
            cache_dir: options.cache_dir,
            engine_key,
            modules: Mutex::new(HashMap::new()),
            stop_ticker,
        }))
    }

    /// State shared by all plugins (shared data, queues, metrics).
    pub fn shared(&self) -> &Arc<SharedState> {
        &self.shared
    }

    /// Compiles (or finds compiled) and checks a module. `name` names the
    /// plugin in errors.
    pub fn load(
        self: &Arc<Self>,
        name: &str,
        bytes: &[u8],
    ) -> Result<Arc<PluginModule>, LoadError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        let (module, from_cache) = self.module_for(name, &digest, bytes)?;
        let abi = AbiVersion::MARKERS
            .iter()
            .find(|(marker, _)| module.get_export(marker).is_some())
            .map(|(_, v)| *v)
            .ok_or_else(|| LoadError::NoAbiVersion {
                module: name.to_owned(),
            })?;
        for import in module.imports() {
            let known = match import.module() {
                "env" => self.env_names.contains(import.name()),
                "wasi_snapshot_preview1" => self.wasi_names.contains(import.name()),
                _ => false,
            };
            if !known {
                return Err(LoadError::UnknownImport {
                    module: name.to_owned(),
                    import: format!("{}.{}", import.module(), import.name()),
                    abi,
                });
            }
        }
        if module.get_export("memory").is_none() {
            return Err(LoadError::MissingExport {
                module: name.to_owned(),
                export: "memory",
            });
        }
        let allocator = if abi == AbiVersion::V0_1_0 {
            "malloc"
        } else {
            "proxy_on_memory_allocate"
        };
        if module.get_export(allocator).is_none() && module.get_export("malloc").is_none() {
            return Err(LoadError::MissingExport {
                module: name.to_owned(),
                export: allocator,
            });
        }
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| LoadError::Link {
                module: name.to_owned(),
                abi,
                reason: format!("{e:#}"),
            })?;
        Ok(Arc::new(PluginModule {
            name: name.to_owned(),
            digest,
            abi,
            from_cache,
            pre,
            runtime: self.clone(),
        }))
    }

    fn module_for(
        &self,
        name: &str,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(Module, bool), LoadError> {
        if let Some(m) = self.modules.lock().get(digest) {
            return Ok((m.clone(), false));
        }
        let cached = self.cache_path(digest);
        if let Some(path) = &cached
            && path.exists()
        {
            // SAFETY: the file was written by `Module::serialize` of an
            // engine with the same compatibility hash (it is in the path),
            // into a cache directory only this process writes.
            match unsafe { Module::deserialize_file(&self.engine, path) } {
                Ok(m) => {
                    tracing::debug!(plugin = name, digest, "compiled module loaded from cache");
                    self.modules.lock().insert(digest.to_owned(), m.clone());
                    return Ok((m, true));
                }
                Err(e) => {
                    tracing::warn!(plugin = name, path = %path.display(), "ignoring unreadable compiled-module cache entry: {e:#}")
                }
            }
        }
        let module = Module::new(&self.engine, bytes).map_err(|e| LoadError::Compile {
            module: name.to_owned(),
            reason: format!("{e:#}"),
        })?;
        if let Some(path) = cached
            && let Err(e) = write_cache(&path, &module)
        {
            tracing::warn!(plugin = name, path = %path.display(), "cannot cache compiled module: {e:#}");
        }
        self.modules
            .lock()
            .insert(digest.to_owned(), module.clone());
        Ok((module, false))
    }

    fn cache_path(&self, digest: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        Some(
            dir.join("compiled")
                .join(&self.engine_key)
                .join(format!("{hex}.cwasm")),
        )
    }
}

fn write_cache(path: &std::path::Path, module: &Module) -> anyhow_like::Result<()> {
    let bytes = module
        .serialize()
        .map_err(|e| anyhow_like::Error(format!("{e:#}")))?;
    let dir = path
        .parent()
        .ok_or_else(|| anyhow_like::Error("no parent".into()))?;
    std::fs::create_dir_all(dir).map_err(|e| anyhow_like::Error(e.to_string()))?;
    let tmp = dir.join(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| anyhow_like::Error(e.to_string()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow_like::Error(e.to_string()))?;
    Ok(())
}

mod anyhow_like {
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    pub type Result<T> = std::result::Result<T, Error>;
}

impl HostState {
    /// A state for a throwaway store (linker introspection only).
    fn probe() -> HostState {
        let info: PluginInfo = crate::plugin::PluginOptions::new("probe").into();
        HostState::new(
            wasmtime_wasi::WasiCtxBuilder::new().build_p1(),
            Arc::new(info),
            Arc::new(SharedState::default()),
            Arc::new(|_: &str| false),
        )
    }
}
