//! `weft`: the weft proxy's command line.

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

// glibc's allocator spends a tenth of a proxied request in malloc/free
// and fragments under many short-lived header maps; mimalloc's per-thread
// heaps suit one runtime per core.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "weft",
    version,
    about = "weft: a programmable HTTP proxy whose every feature is a proxy-wasm filter",
    propagate_version = true
)]
struct Cli {
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, default_value = "info", env = "WEFT_LOG")]
    log_level: String,
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum NewWhat {
    /// A proxy-wasm filter project (Rust or Go), in DIR/NAME.
    Filter {
        /// The filter's name (lowercase letters, digits, '-', '_'); also its directory.
        name: String,
        /// rust or go.
        #[arg(long, default_value = "rust")]
        lang: weft_proxy::scaffold::Lang,
        /// Where to create the project directory.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Create a project from a template.
    New {
        #[command(subcommand)]
        what: NewWhat,
    },
    /// Build a filter project (Cargo.toml or go.mod) for wasm32-wasip1; prints the .wasm path.
    Build {
        /// The project directory.
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Run the proxy from a config file (reloads on SIGHUP or when the file changes).
    Run {
        /// The weft.yaml to serve.
        #[arg(short, long)]
        config: PathBuf,
        /// Where compiled modules are cached (default: the config's cache_dir).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Do not watch the config file for changes (SIGHUP still reloads).
        #[arg(long)]
        no_watch: bool,
        /// Follow a weft-controller's plugin snapshots (http://HOST:PORT or
        /// https://…); its plugins are added to the config file's.
        #[arg(long, value_name = "URL")]
        controller: Option<String>,
        /// CA bundle (PEM) that verifies an https:// controller.
        #[arg(long, value_name = "FILE")]
        controller_ca: Option<PathBuf>,
        /// This proxy's node name, over the config's `node.name` (in
        /// Kubernetes: the pod's name, from the downward API).
        #[arg(long, env = "WEFT_NODE_NAME", value_name = "NAME")]
        node_name: Option<String>,
        /// This proxy's namespace, over the config's `node.namespace`.
        #[arg(long, env = "WEFT_NODE_NAMESPACE", value_name = "NAMESPACE")]
        node_namespace: Option<String>,
    },
    /// Check a config file and load its plugins, without serving.
    Validate {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Push a Wasm module to an OCI registry (CNCF Wasm artifact); prints the manifest digest.
    Push {
        /// The module (.wasm) to push.
        file: PathBuf,
        /// Where: oci://REGISTRY/REPO:TAG
        reference: String,
        /// Manifest annotation KEY=VALUE (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Pull a Wasm module from an OCI registry (CNCF, Istio OCI or Docker-compatible image).
    Pull {
        /// oci://REGISTRY/REPO[:TAG|@sha256:HEX]
        reference: String,
        /// The file to write the module to.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Show an image's manifest: digest, media types, sizes, annotations.
    Inspect {
        /// oci://REGISTRY/REPO[:TAG|@sha256:HEX]
        reference: String,
        /// Print the raw manifest JSON instead.
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List or prune the module cache.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(clap::Args)]
struct RegistryArgs {
    /// Speak plain HTTP (not HTTPS) to the registry.
    #[arg(long)]
    plain_http: bool,
    /// Docker config.json with registry credentials (default: $DOCKER_CONFIG/config.json, ~/.docker/config.json).
    #[arg(long, value_name = "PATH")]
    registry_config: Option<PathBuf>,
    /// A weft.yaml whose `registries` (plain_http, credentials, ca) apply.
    #[arg(long, value_name = "WEFT_YAML")]
    config: Option<PathBuf>,
}

impl RegistryArgs {
    fn options(self) -> weft_oci::cli::RegistryOptions {
        weft_oci::cli::RegistryOptions {
            plain_http: self.plain_http,
            registry_config: self.registry_config,
            config: self.config,
        }
    }
}

#[derive(Subcommand)]
enum CacheAction {
    /// List cached modules, most recently used first.
    Ls {
        /// weft's cache directory (default: the user's cache directory /weft).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Evict least recently used modules down to --max-size (default: everything).
    Prune {
        #[arg(long)]
        cache_dir: Option<PathBuf>,
        /// Keep at most this much (e.g. 100MiB).
        #[arg(long, value_parser = parse_size)]
        max_size: Option<u64>,
    },
}

fn parse_size(s: &str) -> Result<u64, String> {
    weft_config::parse_byte_size(s).map_err(|e| e.to_string())
}

/// Runs an OCI command on a current-thread runtime.
fn oci<T>(
    work: impl std::future::Future<Output = Result<T, weft_oci::FetchError>>,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(work)?)
}

fn init_logging(level: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(level).unwrap_or_else(|e| {
        eprintln!("weft: invalid --log-level {level:?} ({e}); using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_level, cli.log_format);
    let result = match cli.command {
        Command::Run {
            config,
            cache_dir,
            no_watch,
            controller,
            controller_ca,
            node_name,
            node_namespace,
        } => weft_proxy::server::run(
            &config,
            weft_proxy::server::RunOptions {
                cache_dir,
                watch_file: !no_watch,
                node: weft_config::NodeOverride {
                    name: node_name,
                    namespace: node_namespace,
                },
                controller: controller.map(|url| weft_proxy::discovery::Target {
                    url,
                    ca: controller_ca,
                }),
            },
        ),
        Command::New {
            what: NewWhat::Filter { name, lang, dir },
        } => weft_proxy::scaffold::new_filter(&name, lang, &dir)
            .map(|p| println!("created {}", p.display()))
            .map_err(Into::into),
        Command::Build { dir } => weft_proxy::scaffold::build(&dir)
            .map(|w| println!("{}", w.display()))
            .map_err(Into::into),
        Command::Validate { config } => weft_proxy::server::validate(&config, &Default::default())
            .map(|()| {
                println!("{}: ok", config.display());
            }),
        Command::Schema => serde_json::to_string_pretty(&weft_config::json_schema())
            .map(|s| println!("{s}"))
            .map_err(Into::into),
        Command::Push {
            file,
            reference,
            annotations,
            registry,
        } => oci(weft_oci::cli::push(
            &registry.options(),
            &file,
            &reference,
            &annotations,
        ))
        .map(|out| println!("{}", out.manifest_digest)),
        Command::Pull {
            reference,
            output,
            registry,
        } => oci(weft_oci::cli::pull(
            &registry.options(),
            &reference,
            &output,
        ))
        .map(|p| {
            println!(
                "{} -> {} ({}, {} bytes, module {})",
                p.manifest_digest,
                output.display(),
                p.format,
                p.wasm.len(),
                p.wasm_digest
            )
        }),
        Command::Inspect {
            reference,
            raw,
            registry,
        } => oci(weft_oci::cli::inspect(&registry.options(), &reference)).map(|i| {
            if raw {
                println!("{}", i.manifest_json);
            } else {
                print!("{i}");
            }
        }),
        Command::Cache {
            action: CacheAction::Ls { cache_dir },
        } => weft_oci::cli::cache_ls(cache_dir.as_deref())
            .map(|s| print!("{s}"))
            .map_err(Into::into),
        Command::Cache {
            action:
                CacheAction::Prune {
                    cache_dir,
                    max_size,
                },
        } => weft_oci::cli::cache_prune(cache_dir.as_deref(), max_size.unwrap_or(0))
            .map(|r| {
                println!(
                    "removed {} module(s), freed {} bytes, {} bytes remain",
                    r.removed.len(),
                    r.freed_bytes,
                    r.remaining_bytes
                )
            })
            .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("weft: {e:#}");
            ExitCode::FAILURE
        }
    }
}
