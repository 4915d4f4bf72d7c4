//! `weft-controller`: prints the WasmPlugin CRD, or serves snapshots to
//! weft proxies from a directory of WasmPlugin manifests or from the
//! Kubernetes API (WasmPlugins, Pods and Services, all namespaces).

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::mpsc;
use weft_controller::debounce::{DebounceConfig, debounce};
use weft_controller::dir::DirSource;
use weft_controller::kubernetes::KubeOptions;
use weft_controller::select::DEFAULT_ROOT_NAMESPACE;
use weft_controller::server::{Hub, serve_with};
use weft_controller::snapshot::{Engine, PluginChange};

#[derive(Parser)]
#[command(name = "weft-controller", version, about = "weft's control plane")]
struct Cli {
    /// Log filter (tracing syntax).
    #[arg(long, env = "WEFT_LOG", default_value = "info", global = true)]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start-up: the size of the `run` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Print the WasmPlugin CustomResourceDefinition (YAML).
    Crd,
    /// Serve snapshots to proxies.
    Run {
        /// Read WasmPlugin manifests (*.yaml, *.yml) from this directory, and watch it.
        #[arg(
            long,
            required_unless_present = "kubernetes",
            conflicts_with = "kubernetes"
        )]
        from_dir: Option<PathBuf>,
        /// Watch WasmPlugins, Pods and Services in every namespace of the
        /// cluster (in-cluster service account, or the kubeconfig), and
        /// write each WasmPlugin's status.
        #[arg(long)]
        kubernetes: bool,
        /// With --kubernetes: only pods matching this label selector are workloads.
        #[arg(long, requires = "kubernetes")]
        pod_selector: Option<String>,
        /// With --kubernetes: write statuses once changes stopped for this long.
        #[arg(long, default_value = "500ms", value_parser = duration)]
        status_quiet: Duration,
        /// Address of the streaming, /status and /metrics server.
        #[arg(long, default_value = "127.0.0.1:15010")]
        listen: SocketAddr,
        /// Serve TLS with this certificate chain (PEM); proxies verify it
        /// with `weft run --controller https://… --controller-ca CA`.
        #[arg(long, requires = "tls_key", value_name = "FILE")]
        tls_cert: Option<PathBuf>,
        /// The key (PEM) of --tls-cert.
        #[arg(long, requires = "tls_cert", value_name = "FILE")]
        tls_key: Option<PathBuf>,
        /// Plugins in this namespace apply to every namespace.
        #[arg(long, default_value = DEFAULT_ROOT_NAMESPACE)]
        root_namespace: String,
        /// How often the directory is looked at.
        #[arg(long, default_value = "1s", value_parser = duration)]
        poll_interval: Duration,
        /// Push once changes stopped for this long.
        #[arg(long, default_value = "100ms", value_parser = duration)]
        debounce_quiet: Duration,
        /// Push at the latest this long after the first change.
        #[arg(long, default_value = "1s", value_parser = duration)]
        debounce_max: Duration,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    weft_config::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(&cli.log_level)?)
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Crd => print!("{}", weft_controller::crd::crd_yaml()?),
        Command::Run {
            from_dir,
            kubernetes,
            pod_selector,
            status_quiet,
            listen,
            tls_cert,
            tls_key,
            root_namespace,
            poll_interval,
            debounce_quiet,
            debounce_max,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(
                    weft_controller::server::tls_acceptor(&cert, &key)
                        .map_err(|e| anyhow::anyhow!("--tls-cert/--tls-key: {e}"))?,
                ),
                _ => None,
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let debounce_cfg = DebounceConfig {
                quiet: debounce_quiet,
                max: debounce_max,
            };
            match from_dir {
                Some(dir) if !kubernetes => rt.block_on(run(
                    dir,
                    listen,
                    tls,
                    root_namespace,
                    poll_interval,
                    debounce_cfg,
                ))?,
                _ => rt.block_on(run_kubernetes(
                    listen,
                    tls,
                    root_namespace,
                    KubeOptions {
                        pod_selector,
                        debounce: debounce_cfg,
                        status_quiet,
                        ..KubeOptions::default()
                    },
                ))?,
            }
        }
    }
    Ok(())
}

async fn run(
    dir: PathBuf,
    listen: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    root_ns: String,
    poll_interval: Duration,
    debounce_cfg: DebounceConfig,
) -> anyhow::Result<()> {
    let mut source = DirSource::new(&dir);
    let hub = Hub::new(Engine::new(root_ns));
    // The first read is applied at once, so the first proxies get it.
    let first = source.poll()?.unwrap_or_default();
    report_errors(&source, &hub);
    hub.apply(first);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let listen = listener.local_addr()?;
    tracing::info!(%listen, dir = %dir.display(), tls = tls.is_some(), "serving");

    let (tx, rx) = mpsc::channel::<Vec<PluginChange>>(64);
    let (btx, mut brx) = mpsc::channel(4);
    tokio::spawn(debounce(debounce_cfg, rx, btx));
    let pusher = hub.clone();
    tokio::spawn(async move {
        while let Some(batch) = brx.recv().await {
            let changed = pusher.apply(batch.into_iter().flatten().collect());
            tracing::info!(workloads = changed.len(), "snapshots changed");
        }
    });
    let poll_hub = hub.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(poll_interval);
        loop {
            tick.tick().await;
            match source.poll() {
                Ok(Some(changes)) => {
                    report_errors(&source, &poll_hub);
                    if !changes.is_empty() && tx.send(changes).await.is_err() {
                        break;
                    }
                }
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}"),
            }
        }
    });
    serve_with(listener, hub, tls).await?;
    Ok(())
}

async fn run_kubernetes(
    listen: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    root_ns: String,
    opts: KubeOptions,
) -> anyhow::Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (in-cluster config or kubeconfig)")?;
    let hub = Hub::new(Engine::new(root_ns));
    let synced = weft_controller::kubernetes::start(client, hub.clone(), opts);
    // The first lists are applied before serving, so the first proxies get
    // complete snapshots.
    synced
        .await
        .context("the Kubernetes watchers stopped before their first lists")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(listen = %listener.local_addr()?, "serving (kubernetes)");
    serve_with(listener, hub, tls).await?;
    Ok(())
}

fn report_errors(source: &DirSource, hub: &Hub) {
    let errors: Vec<String> = source
        .content()
        .errors
        .iter()
        .map(|e| e.to_string())
        .collect();
    for e in &errors {
        tracing::warn!("{e}");
    }
    hub.set_source_errors(errors);
}
