//! `weft-tests`: support for weft's end-to-end tests — builds the Wasm
//! filters of the workspace for `wasm32-wasip1`, finds the `weft` binary,
//! and starts real upstream servers on loopback. The end-to-end tests
//! themselves are in `tests/tests/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

pub mod client;
pub mod registry;
pub mod tls;
pub mod upstream;
pub mod weft;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The target directory of the workspace build.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_relative() {
                workspace_root().join(p)
            } else {
                p
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds a filter crate of the workspace for `wasm32-wasip1` (in its own
/// target directory, so it never waits on the build that runs the tests)
/// and returns the path of the `.wasm`.
pub fn build_filter(package: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    static BUILT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = target_dir().join("wasm");
    let file = dir
        .join("wasm32-wasip1/wasm")
        .join(format!("{}.wasm", package.replace('-', "_")));
    let built = BUILT.get_or_init(|| Mutex::new(Vec::new()));
    if built
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|p| p == package)
    {
        return file;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "--target",
            "wasm32-wasip1",
            "--profile",
            "wasm",
            "-p",
            package,
            "--target-dir",
        ])
        .arg(&dir)
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo to build filter {package}: {e}"));
    assert!(
        status.success(),
        "building filter {package} for wasm32-wasip1 failed (is the target installed? scripts/setup.sh installs it)"
    );
    built
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(package.to_owned());
    file
}

/// Reads a built filter.
pub fn filter_bytes(package: &str) -> Vec<u8> {
    let path = build_filter(package);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Builds the Go test filter with standard Go (installed by
/// `scripts/ensure-go.sh` when missing) and returns its path.
pub fn build_go_filter(dir: &str) -> PathBuf {
    let src = workspace_root().join(dir);
    let name = src
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("filter")
        .to_owned();
    let out = target_dir().join("go-filters").join(format!("{name}.wasm"));
    std::fs::create_dir_all(out.parent().expect("has parent")).expect("create go-filters dir");
    let status = Command::new("bash")
        .arg(src.join("build.sh"))
        .arg(&out)
        .current_dir(&src)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}/build.sh: {e}", src.display()));
    assert!(
        status.success(),
        "building the Go filter in {} failed",
        src.display()
    );
    out
}
