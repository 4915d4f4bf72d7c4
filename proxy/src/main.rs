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
enum Command {
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
    },
    /// Check a config file and load its plugins, without serving.
    Validate {
        #[arg(short, long)]
        config: PathBuf,
    },
    /// Print the JSON Schema of the config file.
    Schema,
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
        } => weft_proxy::server::run(
            &config,
            weft_proxy::server::RunOptions {
                cache_dir,
                watch_file: !no_watch,
            },
        ),
        Command::Validate { config } => weft_proxy::server::validate(&config, &Default::default())
            .map(|()| {
                println!("{}: ok", config.display());
            }),
        Command::Schema => serde_json::to_string_pretty(&weft_config::json_schema())
            .map(|s| println!("{s}"))
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
