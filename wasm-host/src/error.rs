//! Typed errors of the host. Each names the plugin (module) and the reason.

use crate::abi::AbiVersion;

/// A module that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("wasm engine: {0}")]
    Engine(String),
    #[error("plugin {module}: not a valid WebAssembly module: {reason}")]
    Compile { module: String, reason: String },
    #[error(
        "plugin {module}: the module declares no known proxy-wasm ABI version \
         (it must export proxy_abi_version_0_2_1, proxy_abi_version_0_2_0 or proxy_abi_version_0_1_0)"
    )]
    NoAbiVersion { module: String },
    #[error(
        "plugin {module}: the module (ABI {abi}) imports {import}, which the host does not provide"
    )]
    UnknownImport {
        module: String,
        import: String,
        abi: AbiVersion,
    },
    #[error("plugin {module}: the module does not export `{export}`")]
    MissingExport {
        module: String,
        export: &'static str,
    },
    #[error(
        "plugin {module}: memory limit of {limit} bytes exceeds the host's maximum of {max} bytes"
    )]
    MemoryLimit {
        module: String,
        limit: usize,
        max: usize,
    },
    #[error("plugin {module}: the module (ABI {abi}) cannot be linked: {reason}")]
    Link {
        module: String,
        abi: AbiVersion,
        reason: String,
    },
}

/// A VM that failed: at start, or in a callback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum VmError {
    #[error("plugin {plugin}: cannot instantiate the module: {reason}")]
    Instantiate { plugin: String, reason: String },
    #[error("plugin {plugin}: export `{export}` has the wrong signature: {reason}")]
    BadExport {
        plugin: String,
        export: &'static str,
        reason: String,
    },
    #[error("plugin {plugin}: proxy_on_vm_start returned false (vm configuration rejected){}", reason_suffix(.reason))]
    StartRefused {
        plugin: String,
        reason: Option<String>,
    },
    #[error("plugin {plugin}: proxy_on_configure returned false (plugin configuration rejected){}", reason_suffix(.reason))]
    ConfigureRefused {
        plugin: String,
        reason: Option<String>,
    },
    #[error("plugin {plugin}: {callback} exceeded its deadline of {timeout_ms} ms")]
    Deadline {
        plugin: String,
        callback: &'static str,
        timeout_ms: u64,
    },
    #[error("plugin {plugin}: {callback} exceeded the memory limit of {limit} bytes")]
    MemoryLimit {
        plugin: String,
        callback: &'static str,
        limit: usize,
    },
    #[error("plugin {plugin}: {callback} trapped: {reason}")]
    Trap {
        plugin: String,
        callback: &'static str,
        reason: String,
    },
    #[error("plugin {plugin}: the VM failed earlier and was discarded")]
    Discarded { plugin: String },
}

impl VmError {
    /// The plugin this error is about.
    pub fn plugin(&self) -> &str {
        match self {
            VmError::Instantiate { plugin, .. }
            | VmError::BadExport { plugin, .. }
            | VmError::StartRefused { plugin, .. }
            | VmError::ConfigureRefused { plugin, .. }
            | VmError::Deadline { plugin, .. }
            | VmError::MemoryLimit { plugin, .. }
            | VmError::Trap { plugin, .. }
            | VmError::Discarded { plugin } => plugin,
        }
    }
}

fn reason_suffix(reason: &Option<String>) -> String {
    match reason {
        Some(r) => format!(": {r}"),
        None => String::new(),
    }
}
