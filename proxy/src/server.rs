//! `weft run`: start-up, hot reload and drain.
//!
//! The main thread validates the configuration and builds the first
//! [`Generation`], binds every listener once per worker (`SO_REUSEPORT`),
//! starts the workers, the admin listener and the cluster background tasks,
//! and then waits for signals: SIGHUP (or a change of the file) reloads,
//! SIGTERM/SIGINT drains and exits 0.

use crate::access_log::AccessLogger;
use crate::admin::AdminState;
use crate::generation::{Generation, GenerationError, Loader, MetricsBook};
use crate::worker::run_worker;
use anyhow::{Context, anyhow, bail};
use parking_lot::RwLock;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use weft_wasm_host::{Runtime, RuntimeOptions};

/// Options of `weft run` beyond the config file.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub cache_dir: Option<PathBuf>,
    /// Poll the config file for changes (default true).
    pub watch_file: bool,
    /// A controller whose plugin snapshots are added to the file's plugins.
    pub controller: Option<crate::discovery::Target>,
    /// The node's name and namespace from the command line.
    pub node: weft_config::NodeOverride,
}

fn load_config(
    path: &Path,
    node: &weft_config::NodeOverride,
) -> anyhow::Result<weft_config::Config> {
    weft_config::load_with(path, node).map_err(|e| anyhow!("{e}"))
}

/// Validates a config file and loads its plugins, without serving.
pub fn validate(path: &Path, options: &RunOptions) -> anyhow::Result<()> {
    let config = load_config(path, &options.node)?;
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir: options.cache_dir.clone(),
        ..Default::default()
    })?;
    let loader = Loader {
        runtime,
        metrics: Arc::new(MetricsBook::default()),
        cache_dir: options.cache_dir.clone(),
        strict_fetch: true,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let built = local.block_on(&rt, loader.build(config, 0));
    match built {
        Ok(_) => Ok(()),
        Err(errors) => bail!(format_errors(path, &errors)),
    }
}

fn format_errors(path: &Path, errors: &[crate::generation::GenerationError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {e}", path.display()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs the proxy until SIGTERM/SIGINT.
pub fn run(path: &Path, options: RunOptions) -> anyhow::Result<()> {
    let config = load_config(path, &options.node)?;
    let workers = config.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let cache_dir = options
        .cache_dir
        .clone()
        .or_else(|| config.cache_dir.clone());
    let runtime = Runtime::new(RuntimeOptions {
        cache_dir,
        ..Default::default()
    })?;
    let loader = Loader {
        runtime: runtime.clone(),
        metrics: Arc::new(MetricsBook::default()),
        cache_dir: options.cache_dir.clone(),
        strict_fetch: false,
    };
    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let mut generation = local
        .block_on(&control, loader.build(config, 1))
        .map_err(|errors| anyhow!(format_errors(path, &errors)))?;
    generation
        .bind_listeners(None, workers)
        .map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let generation = Arc::new(generation);
    let config = generation.config.clone();

    let access = match &config.access_log {
        Some(a) if a.enabled => AccessLogger::start(a.path.as_deref())
            .with_context(|| format!("{}: access_log: cannot open the log file", path.display()))?,
        _ => AccessLogger::off(),
    };

    let admin = Arc::new(AdminState {
        current: RwLock::new(generation.clone()),
        ready: AtomicBool::new(false),
        runtime: runtime.clone(),
        reloads_ok: AtomicU64::new(0),
        reloads_failed: AtomicU64::new(0),
        last_reload_error: RwLock::new(None),
    });
    if let Some(a) = &config.admin {
        let bound = crate::admin::spawn(a.address, admin.clone())
            .with_context(|| format!("admin: cannot bind {}", a.address))?;
        tracing::info!(address = %bound, "admin listening");
    }

    let (gen_tx, gen_rx) = watch::channel(generation.clone());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..workers {
        handles.push(run_worker(
            i,
            gen_rx.clone(),
            shutdown_rx.clone(),
            access.clone(),
            ready_tx.clone(),
        )?);
    }
    drop(ready_tx);
    for _ in 0..workers {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("{e}"),
            Err(_) => bail!("a worker exited during start-up"),
        }
    }
    admin.ready.store(true, Ordering::Relaxed);
    tracing::info!(
        workers,
        generation = generation.id,
        plugins = generation.plugins.len(),
        "weft is ready"
    );

    // Cluster background work (DNS, health checks) for the live generation.
    let mut background = generation.cluster_state.clone();
    local.block_on(&control, async {
        background.spawn_background();
    });

    let drain_timeout = config.drain_timeout;
    let result: anyhow::Result<()> = local.block_on(&control, async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut last_mtime = mtime(path);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut next_id = 2u64;
        // Plugins whose module could not be fetched are retried with
        // backoff until they load; the config itself is unchanged.
        let mut retry = RetryPlan::for_generation(&generation);
        // The file's own config (last good) and the controller's plugins
        // (last snapshot applied) make the effective config together.
        let mut file_config = (*generation.config).clone();
        let mut from_controller: Vec<weft_config::PluginSpec> = Vec::new();
        let mut applied: Option<(String, crate::discovery::Report)> = None;
        let mut last_dir = plugins_dir_fingerprint(&file_config);
        let mut discovery = options
            .controller
            .clone()
            .map(|t| crate::discovery::spawn(t, file_config.node.clone()));
        loop {
            enum Wake {
                Reload,
                Retry,
                Idle,
                Snapshot(crate::discovery::Snapshot),
            }
            let wake = tokio::select! {
                _ = hup.recv() => { tracing::info!("SIGHUP: reloading {}", path.display()); Wake::Reload }
                _ = tick.tick() => {
                    let m = mtime(path);
                    let dir = plugins_dir_fingerprint(&file_config);
                    if options.watch_file && m.is_some() && m != last_mtime {
                        last_mtime = m;
                        tracing::info!("{} changed: reloading", path.display());
                        Wake::Reload
                    } else if options.watch_file && dir != last_dir {
                        last_dir = dir;
                        tracing::info!("the plugins directory changed: reloading");
                        Wake::Reload
                    } else {
                        Wake::Idle
                    }
                }
                _ = retry.wait() => Wake::Retry,
                Some(snapshot) = next_snapshot(&mut discovery) => Wake::Snapshot(snapshot),
                _ = term.recv() => break,
                _ = int.recv() => break,
            };
            let swap = |next: Arc<Generation>, background: &mut Arc<crate::upstream::SharedClusterState>| {
                background.shutdown();
                *background = next.cluster_state.clone();
                background.spawn_background();
                *admin.current.write() = next.clone();
                let _ = gen_tx.send(next);
            };
            match wake {
                Wake::Idle => {}
                Wake::Snapshot(snapshot) => {
                    let Some((_, reports)) = &discovery else { continue };
                    if let Some((version, report)) = &applied
                        && *version == snapshot.version
                    {
                        // A reconnect: the same snapshot again.
                        let _ = reports.send(report.clone()).await;
                        continue;
                    }
                    let version = snapshot.version.clone();
                    if snapshot.plugins == from_controller {
                        // Nothing changes for this proxy (say, its first,
                        // empty snapshot): acknowledge without a rebuild.
                        let current = admin.current.read().clone();
                        let report = report_of(&version, &current);
                        applied = Some((version, report.clone()));
                        let _ = reports.send(report).await;
                        continue;
                    }
                    let built = match merge(file_config.clone(), &snapshot.plugins) {
                        Ok(config) => build_next(&loader, &admin, config, next_id, workers).await,
                        Err(e) => Err(vec![e]),
                    };
                    match built {
                        Ok(next) => {
                            next_id += 1;
                            let report = report_of(&version, &next);
                            tracing::info!(
                                version = %version,
                                plugins = snapshot.plugins.len(),
                                failed = report.errors.len(),
                                generation = next_id - 1,
                                "controller snapshot applied"
                            );
                            retry = RetryPlan::for_generation(&next);
                            swap(next, &mut background);
                            from_controller = snapshot.plugins;
                            applied = Some((version, report.clone()));
                            let _ = reports.send(report).await;
                        }
                        Err(errors) => {
                            let report = crate::discovery::Report {
                                version: version.clone(),
                                errors: errors_by_plugin(&errors),
                            };
                            tracing::error!(
                                version = %version,
                                "controller snapshot refused, the previous plugins keep serving: {}",
                                errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
                            );
                            let _ = reports.send(report).await;
                        }
                    }
                }
                Wake::Reload => {
                    last_mtime = mtime(path);
                    match reload_once(path, &options.node, &loader, &admin, next_id, workers, &from_controller).await {
                        Ok((next, file)) => {
                            file_config = file;
                            last_dir = plugins_dir_fingerprint(&file_config);
                            next_id += 1;
                            retry = RetryPlan::for_generation(&next);
                            swap(next, &mut background);
                            admin.reloads_ok.fetch_add(1, Ordering::Relaxed);
                            *admin.last_reload_error.write() = None;
                            tracing::info!(generation = next_id - 1, "configuration reloaded");
                        }
                        Err(e) => {
                            admin.reloads_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::error!(
                                "reload refused, the previous configuration keeps serving: {e:#}"
                            );
                            *admin.last_reload_error.write() = Some(format!("{e:#}"));
                        }
                    }
                }
                Wake::Retry => {
                    let current = admin.current.read().clone();
                    // The live configuration built again, to load its pending plugins.
                    let config = (*current.config).clone();
                    let built = build_next(&loader, &admin, config, next_id, workers).await;
                    match built {
                        Ok(next) if next.pending_plugins.len() < current.pending_plugins.len() => {
                            next_id += 1;
                            let up: Vec<&str> = current
                                .pending_plugins
                                .iter()
                                .filter(|p| !next.pending_plugins.iter().any(|n| n.name == p.name))
                                .map(|p| p.name.as_str())
                                .collect();
                            tracing::info!(plugins = ?up, generation = next_id - 1, "pending plugins are loaded");
                            retry = RetryPlan::for_generation(&next);
                            swap(next, &mut background);
                        }
                        Ok(_) => {
                            tracing::debug!("pending plugins are still not available");
                            retry.back_off();
                        }
                        Err(errors) => {
                            let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                            tracing::warn!("retrying pending plugins failed: {}", errors.join("; "));
                            retry.back_off();
                        }
                    }
                }
            }
        }
        Ok(())
    });
    result?;
    tracing::info!(timeout = ?drain_timeout, "draining: no new connections, finishing requests in flight");
    admin.ready.store(false, Ordering::Relaxed);
    let _ = shutdown_tx.send(true);
    let deadline = std::time::Instant::now() + drain_timeout;
    for h in handles {
        while !h.is_finished() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// When to try the pending plugins of the live generation again: 1 s
/// after it went live, then doubling up to 30 s.
struct RetryPlan {
    next: Option<tokio::time::Instant>,
    delay: Duration,
}

impl RetryPlan {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(30);

    fn for_generation(g: &Generation) -> Self {
        RetryPlan {
            next: (!g.pending_plugins.is_empty())
                .then(|| tokio::time::Instant::now() + Self::FIRST),
            delay: Self::FIRST,
        }
    }

    fn back_off(&mut self) {
        self.delay = (self.delay * 2).min(Self::MAX);
        self.next = Some(tokio::time::Instant::now() + self.delay);
    }

    /// Resolves at the next retry; never when nothing is pending.
    async fn wait(&self) {
        match self.next {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// A fingerprint of the config's `plugins_dir`, if it has one.
fn plugins_dir_fingerprint(config: &weft_config::Config) -> Option<u64> {
    config
        .plugins_dir
        .as_deref()
        .map(weft_config::wasmplugin::dir_fingerprint)
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn reload_once(
    path: &Path,
    node: &weft_config::NodeOverride,
    loader: &Loader,
    admin: &AdminState,
    id: u64,
    workers: usize,
    from_controller: &[weft_config::PluginSpec],
) -> anyhow::Result<(Arc<Generation>, weft_config::Config)> {
    let file = load_config(path, node)?;
    let config =
        merge(file.clone(), from_controller).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let next = build_next(loader, admin, config, id, workers)
        .await
        .map_err(|errors| anyhow!(format_errors(path, &errors)))?;
    Ok((next, file))
}

/// Builds a generation and binds its new listeners.
async fn build_next(
    loader: &Loader,
    admin: &AdminState,
    config: weft_config::Config,
    id: u64,
    workers: usize,
) -> Result<Arc<Generation>, Vec<GenerationError>> {
    let current = admin.current.read().clone();
    let mut next = loader.build(config, id).await?;
    next.bind_listeners(Some(&current), workers)
        .map_err(|e| vec![e])?;
    Ok(Arc::new(next))
}

/// The file's config with the controller's plugins added.
fn merge(
    mut config: weft_config::Config,
    from_controller: &[weft_config::PluginSpec],
) -> Result<weft_config::Config, GenerationError> {
    for p in from_controller {
        if config.plugins.iter().any(|q| q.name == p.name) {
            return Err(GenerationError::Plugin {
                plugin: p.name.clone(),
                reason: "the controller sends a plugin the config file already has".into(),
            });
        }
        config.plugins.push(p.clone());
    }
    Ok(config)
}

/// The next snapshot, or never without a controller.
async fn next_snapshot(
    discovery: &mut Option<(
        tokio::sync::mpsc::Receiver<crate::discovery::Snapshot>,
        tokio::sync::mpsc::Sender<crate::discovery::Report>,
    )>,
) -> Option<crate::discovery::Snapshot> {
    match discovery {
        Some((rx, _)) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What the controller hears of a snapshot applied: plugins that are
/// pending (module not fetched) or skipped (FAIL_OPEN, failed to load).
fn report_of(version: &str, g: &Generation) -> crate::discovery::Report {
    let mut errors = std::collections::BTreeMap::new();
    for p in &g.pending_plugins {
        errors.insert(p.name.clone(), format!("module not available: {}", p.error));
    }
    for (name, e) in &g.skipped_plugins {
        errors.insert(name.clone(), e.clone());
    }
    crate::discovery::Report {
        version: version.to_owned(),
        errors,
    }
}

/// Errors keyed by plugin name; others under `*`.
fn errors_by_plugin(errors: &[GenerationError]) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for e in errors {
        match e {
            GenerationError::Plugin { plugin, reason } => {
                out.insert(plugin.clone(), reason.clone());
            }
            other => {
                out.entry("*".to_owned())
                    .and_modify(|s: &mut String| {
                        s.push_str("; ");
                        s.push_str(&other.to_string());
                    })
                    .or_insert_with(|| other.to_string());
            }
        }
    }
    out
}
