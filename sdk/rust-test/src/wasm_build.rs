//! Building filters for `wasm32-wasip1` from a test: a workspace filter of
//! weft itself, or any filter crate by its manifest directory. Builds go to
//! a target directory of their own (`<target>/wasm`), so they never wait on
//! the build lock of the `cargo test` that runs them.

use crate::HarnessError;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// One build at a time per test process (cargo would serialize them anyway).
static LOCK: Mutex<()> = Mutex::new(());

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// The weft workspace this crate belongs to.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    // sdk/rust-test → the workspace root.
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

fn workspace_target() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        Some(p) if p.is_relative() => workspace_root().join(p),
        Some(p) => p,
        None => workspace_root().join("target"),
    }
}

fn run(mut cmd: Command, package: &str) -> Result<(), HarnessError> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = cmd.output().map_err(|e| HarnessError::Build {
        package: package.to_owned(),
        reason: format!("cannot run cargo: {e}"),
    })?;
    if out.status.success() {
        return Ok(());
    }
    Err(HarnessError::Build {
        package: package.to_owned(),
        reason: format!(
            "cargo build failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    })
}

fn artifact(file: PathBuf, package: &str) -> Result<PathBuf, HarnessError> {
    if file.is_file() {
        Ok(file)
    } else {
        Err(HarnessError::Build {
            package: package.to_owned(),
            reason: format!(
                "the build succeeded but {} is missing (is the crate a cdylib?)",
                file.display()
            ),
        })
    }
}

/// Builds a filter package of the weft workspace as the end-to-end tests
/// do (`cargo build --target wasm32-wasip1 --profile wasm -p PACKAGE
/// --target-dir <target>/wasm`) and returns the path of its `.wasm`.
///
/// ```no_run
/// let wasm = weft_filter_test::build_workspace_filter("weft-filter-router")?;
/// # Ok::<(), weft_filter_test::HarnessError>(())
/// ```
pub fn build_workspace_filter(package: &str) -> Result<PathBuf, HarnessError> {
    let dir = workspace_target().join("wasm");
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root())
        .args(["build", "--quiet", "--target", "wasm32-wasip1"])
        .args(["--profile", "wasm", "-p", package, "--target-dir"])
        .arg(&dir);
    run(cmd, package)?;
    artifact(
        dir.join("wasm32-wasip1/wasm")
            .join(format!("{}.wasm", package.replace('-', "_"))),
        package,
    )
}

/// Builds any filter crate (`cargo build --target wasm32-wasip1 --release`)
/// given its manifest directory and package name, into
/// `<its target dir>/wasm`, and returns the path of its `.wasm`. In a
/// filter's own tests:
///
/// ```no_run
/// let wasm = weft_filter_test::build_package(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))?;
/// # Ok::<(), weft_filter_test::HarnessError>(())
/// ```
pub fn build_package(
    manifest_dir: impl AsRef<Path>,
    package: &str,
) -> Result<PathBuf, HarnessError> {
    let manifest = manifest_dir.as_ref().join("Cargo.toml");
    let target = target_directory(&manifest, package)?.join("wasm");
    let mut cmd = Command::new(cargo());
    cmd.args(["build", "--quiet", "--target", "wasm32-wasip1", "--release"])
        .arg("--manifest-path")
        .arg(&manifest)
        .args(["-p", package, "--target-dir"])
        .arg(&target);
    run(cmd, package)?;
    artifact(
        target
            .join("wasm32-wasip1/release")
            .join(format!("{}.wasm", package.replace('-', "_"))),
        package,
    )
}

/// The target directory cargo uses for a manifest (`cargo metadata`).
fn target_directory(manifest: &Path, package: &str) -> Result<PathBuf, HarnessError> {
    let fail = |reason: String| HarnessError::Build {
        package: package.to_owned(),
        reason,
    };
    let out = Command::new(cargo())
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(manifest)
        .output()
        .map_err(|e| fail(format!("cannot run cargo metadata: {e}")))?;
    if !out.status.success() {
        return Err(fail(format!(
            "cargo metadata for {} failed: {}",
            manifest.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| fail(format!("cargo metadata printed no JSON: {e}")))?;
    meta.get("target_directory")
        .and_then(|v| v.as_str())
        .map(PathBuf::from)
        .ok_or_else(|| fail("cargo metadata has no target_directory".into()))
}
