//! `weft new filter NAME --lang rust|go` and `weft build`: a ready filter
//! project from a template, and its build for `wasm32-wasip1`.
//!
//! - **Rust**: a crate on the upstream `proxy-wasm` crate and `weft-sdk`
//!   (typed config), with a header-adding handler, a unit test of its
//!   configuration and an in-process test through `weft-filter-test` (the
//!   real host). Built with `cargo build --target wasm32-wasip1 --release`.
//! - **Go**: a module on weft's Go SDK (`weft.dev/sdk/go`), standard Go ≥
//!   1.24, built with `GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared`.
//!
//! weft's SDKs are not published to a registry: the templates point at
//! them by path. The SDK folder is `$WEFT_SDK_DIR` when set, else the
//! `sdk/` folder of the weft source tree this binary was built from, when
//! it exists; the path is written relative to the new project when both
//! are on one tree. Without either, the Rust template asks for `weft-sdk`
//! and `weft-filter-test` by version and the Go template leaves its
//! `replace` line commented out, with a note, for the user to complete.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

/// A filter's source language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Go,
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "rust",
            Lang::Go => "go",
        })
    }
}

impl FromStr for Lang {
    type Err = ScaffoldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "rust" | "rs" => Ok(Lang::Rust),
            "go" | "golang" => Ok(Lang::Go),
            _ => Err(ScaffoldError::UnknownLang(s.to_owned())),
        }
    }
}

/// Why a project could not be created or built.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("filter name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("unknown language {0:?} (expected rust or go)")]
    UnknownLang(String),
    #[error("{}: already exists and is not empty", .0.display())]
    Exists(PathBuf),
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: neither Cargo.toml nor go.mod found; not a filter project", .0.display())]
    UnknownProject(PathBuf),
    #[error("cannot run {tool}: {source}")]
    Tool {
        tool: String,
        source: std::io::Error,
    },
    #[error("building {}: {reason}", .dir.display())]
    Build { dir: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ScaffoldError + '_ {
    move |source| ScaffoldError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A filter name: a crate name and a Go module path segment alike.
fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad = |reason| ScaffoldError::BadName {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() || name.len() > 64 {
        return Err(bad("must be 1 to 64 characters"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(bad("must start with a lowercase letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        return Err(bad("may hold only lowercase letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// weft's `sdk/` folder, when it can be found.
fn sdk_dir() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("WEFT_SDK_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.join("rust/Cargo.toml").is_file() || p.join("go/go.mod").is_file())
        .and_then(|p| p.canonicalize().ok())
}

/// `to` relative to `from` (both absolute and canonical), or `to` itself
/// when they share nothing but the root.
fn relative(from: &Path, to: &Path) -> PathBuf {
    let a: Vec<Component<'_>> = from.components().collect();
    let b: Vec<Component<'_>> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common <= 1 {
        return to.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// The path to write for an SDK folder, seen from the project.
fn sdk_path(project: &Path, sdk: &Path, sub: &str) -> String {
    relative(project, &sdk.join(sub))
        .to_string_lossy()
        .replace('\\', "/")
}

fn write(path: &Path, text: &str) -> Result<(), ScaffoldError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// Creates the project `dir/NAME` for a new filter and returns its path.
/// `dir` is created if missing; `dir/NAME` must not exist or be empty.
pub fn new_filter(name: &str, lang: Lang, dir: &Path) -> Result<PathBuf, ScaffoldError> {
    check_name(name)?;
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let project = dir.join(name);
    if project.exists() {
        let mut entries = std::fs::read_dir(&project).map_err(io(&project))?;
        if entries.next().is_some() {
            return Err(ScaffoldError::Exists(project));
        }
    }
    std::fs::create_dir_all(&project).map_err(io(&project))?;
    let project = project.canonicalize().map_err(io(&project))?;
    let sdk = sdk_dir();
    let files = match lang {
        Lang::Rust => rust_files(name, &project, sdk.as_deref()),
        Lang::Go => go_files(name, &project, sdk.as_deref()),
    };
    for (file, text) in files {
        write(&project.join(file), &text)?;
    }
    Ok(project)
}

fn fill(template: &str, name: &str) -> String {
    template
        .replace("__NAME__", name)
        .replace("__CRATE__", &name.replace('-', "_"))
}

fn rust_files(name: &str, project: &Path, sdk: Option<&Path>) -> Vec<(&'static str, String)> {
    let (sdk_dep, test_dep) = match sdk.filter(|s| s.join("rust/Cargo.toml").is_file()) {
        Some(s) => (
            format!("{{ path = \"{}\" }}", sdk_path(project, s, "rust")),
            format!("{{ path = \"{}\" }}", sdk_path(project, s, "rust-test")),
        ),
        None => ("\"0.1\"".to_owned(), "\"0.1\"".to_owned()),
    };
    let cargo = fill(RUST_CARGO, name)
        .replace("__SDK_DEP__", &sdk_dep)
        .replace("__TEST_DEP__", &test_dep);
    vec![
        ("Cargo.toml", cargo),
        ("src/lib.rs", fill(RUST_LIB, name)),
        ("tests/filter.rs", fill(RUST_TEST, name)),
        ("README.md", fill(RUST_README, name)),
        (".gitignore", "/target\n".to_owned()),
    ]
}

/// The Go SDK's module path (what `sdk/go/go.mod` declares).
pub const GO_SDK_MODULE: &str = "weft.dev/sdk/go";

fn go_files(name: &str, project: &Path, sdk: Option<&Path>) -> Vec<(&'static str, String)> {
    let replace = match sdk.filter(|s| s.join("go/go.mod").is_file()) {
        Some(s) => format!(
            "replace {GO_SDK_MODULE} => {}\n",
            sdk_path(project, s, "go")
        ),
        None => format!(
            "// weft's Go SDK is not published: point this at weft's sdk/go folder.\n\
             // replace {GO_SDK_MODULE} => /path/to/weft/sdk/go\n"
        ),
    };
    let gomod = fill(GO_MOD, name).replace("__REPLACE__", &replace);
    vec![
        ("go.mod", gomod),
        ("main.go", fill(GO_MAIN, name)),
        ("README.md", fill(GO_README, name)),
        (".gitignore", "/filter.wasm\n".to_owned()),
    ]
}

/// Builds a filter project for `wasm32-wasip1` (Rust: `Cargo.toml`; Go:
/// `go.mod`) and returns the path of the `.wasm`.
pub fn build(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    if dir.join("Cargo.toml").is_file() {
        build_rust(dir)
    } else if dir.join("go.mod").is_file() {
        build_go(dir)
    } else {
        Err(ScaffoldError::UnknownProject(dir.to_path_buf()))
    }
}

fn run(mut cmd: Command, tool: &str, dir: &Path) -> Result<Vec<u8>, ScaffoldError> {
    let out = cmd.output().map_err(|source| ScaffoldError::Tool {
        tool: tool.to_owned(),
        source,
    })?;
    if !out.status.success() {
        return Err(ScaffoldError::Build {
            dir: dir.to_path_buf(),
            reason: format!(
                "{tool} failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ),
        });
    }
    Ok(out.stdout)
}

fn build_rust(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(dir).args([
        "build",
        "--target",
        "wasm32-wasip1",
        "--release",
        "--message-format",
        "json-render-diagnostics",
    ]);
    let stdout = run(cmd, "cargo build", dir)?;
    // The cdylib's `.wasm`, as cargo reports its artifacts.
    let wasm = String::from_utf8_lossy(&stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == "cdylib"))
        })
        .filter_map(|m| {
            m["filenames"]
                .as_array()?
                .iter()
                .filter_map(|f| f.as_str())
                .find(|f| f.ends_with(".wasm"))
                .map(PathBuf::from)
        })
        .next_back();
    wasm.ok_or_else(|| ScaffoldError::Build {
        dir: dir.to_path_buf(),
        reason: "cargo built no .wasm (is the crate a cdylib?)".into(),
    })
}

fn build_go(dir: &Path) -> Result<PathBuf, ScaffoldError> {
    let go = std::env::var("WEFT_GO").unwrap_or_else(|_| "go".into());
    let out = dir.join("filter.wasm");
    let mut cmd = Command::new(&go);
    cmd.current_dir(dir)
        .env("GOOS", "wasip1")
        .env("GOARCH", "wasm")
        .env("CGO_ENABLED", "0")
        .args(["build", "-buildmode=c-shared", "-o"])
        .arg(&out)
        .arg(".");
    run(cmd, "go build", dir)?;
    Ok(out)
}

const RUST_CARGO: &str = r#"[package]
name = "__NAME__"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the .wasm module; rlib: host-side unit tests of the config.
crate-type = ["cdylib", "rlib"]

[dependencies]
proxy-wasm = "0.2"
serde = { version = "1", features = ["derive"] }
weft-sdk = __SDK_DEP__

[dev-dependencies]
serde_json = "1"
# Runs the built .wasm in weft's real host, in-process.
weft-filter-test = __TEST_DEP__

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A project of its own, even inside another workspace's folder.
[workspace]
"#;

const RUST_LIB: &str = r##"//! `__NAME__`: a weft filter (proxy-wasm, Rust). It adds a configured
//! header to every request.
//!
//! ```yaml
//! pluginConfig:
//!   header: x-hello     # default x-__NAME__
//!   value: world        # default on
//! ```

use serde::Deserialize;

/// The plugin configuration (`pluginConfig` in weft.yaml).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The request header to add.
    pub header: String,
    /// Its value.
    pub value: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            header: "x-__NAME__".to_owned(),
            value: "on".to_owned(),
        }
    }
}

// The filter itself only exists in the .wasm (the proxy-wasm hostcalls
// are imports of the host).
#[cfg(target_arch = "wasm32")]
mod filter {
    use super::Config;
    use proxy_wasm::traits::{Context, HttpContext, RootContext};
    use proxy_wasm::types::{Action, ContextType, LogLevel};
    use std::rc::Rc;

    proxy_wasm::main! {{
        proxy_wasm::set_log_level(LogLevel::Info);
        proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
            Box::new(Root { config: Rc::new(Config::default()) })
        });
    }}

    struct Root {
        config: Rc<Config>,
    }

    impl Context for Root {}

    impl RootContext for Root {
        fn on_configure(&mut self, _size: usize) -> bool {
            match weft_sdk::config::load::<Config>() {
                Ok(config) => {
                    self.config = Rc::new(config);
                    true
                }
                // Logs "plugin NAME: invalid pluginConfig: FIELD: REASON"
                // at warn level and refuses the configuration.
                Err(e) => weft_sdk::config::report(&e),
            }
        }

        fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
            Some(Box::new(Filter {
                config: self.config.clone(),
            }))
        }

        fn get_type(&self) -> Option<ContextType> {
            Some(ContextType::HttpContext)
        }
    }

    struct Filter {
        config: Rc<Config>,
    }

    impl Context for Filter {}

    impl HttpContext for Filter {
        fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
            self.add_http_request_header(&self.config.header, &self.config.value);
            Action::Continue
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn config_defaults_and_errors() {
        let c: Config = weft_sdk::config::parse(b"").unwrap();
        assert_eq!(c, Config::default());
        let c: Config = weft_sdk::config::parse(br#"{"header":"x-a","value":"1"}"#).unwrap();
        assert_eq!((c.header.as_str(), c.value.as_str()), ("x-a", "1"));
        let e = weft_sdk::config::parse::<Config>(br#"{"value":7}"#).unwrap_err();
        assert_eq!(e.path(), Some("value"));
    }
}
"##;

const RUST_TEST: &str = r#"//! The filter built for wasm32-wasip1 and run in weft's real host.

use weft_filter_test::{Harness, HarnessError, Outcome, build_package};

fn wasm() -> Result<std::path::PathBuf, HarnessError> {
    build_package(env!("CARGO_MANIFEST_DIR"), env!("CARGO_PKG_NAME"))
}

#[test]
fn adds_the_configured_header() -> Result<(), HarnessError> {
    let h = Harness::load(wasm()?)
        .config(serde_json::json!({"header": "x-hello", "value": "world"}))
        .start()?;
    let mut s = h.stream();
    assert_eq!(s.request_headers_end(&[(":path", "/")])?, Outcome::Continue);
    assert_eq!(s.header("x-hello").as_deref(), Some("world"));
    Ok(())
}

#[test]
fn refuses_a_bad_config_naming_the_field() -> Result<(), HarnessError> {
    let err = Harness::load(wasm()?)
        .config(serde_json::json!({"value": 7}))
        .start()
        .err()
        .expect("the configuration is refused");
    assert!(
        err.to_string().contains("invalid pluginConfig: value: "),
        "{err}"
    );
    Ok(())
}
"#;

const RUST_README: &str = r#"# __NAME__

A weft filter in Rust: proxy-wasm (the upstream `proxy-wasm` crate) plus
`weft-sdk` for its typed configuration.

```sh
rustup target add wasm32-wasip1                       # once
cargo test                                            # config unit test + the .wasm in weft's host
cargo build --target wasm32-wasip1 --release          # or: weft build .
weft push target/wasm32-wasip1/release/__CRATE__.wasm oci://REGISTRY/__NAME__:0.1.0
```

Then in `weft.yaml`:

```yaml
plugins:
  - name: __NAME__
    url: oci://REGISTRY/__NAME__:0.1.0     # or file:///…/__CRATE__.wasm
    pluginConfig: { header: x-hello, value: world }
```
"#;

const GO_MOD: &str = r#"module example.com/__NAME__

go 1.24

require weft.dev/sdk/go v0.0.0

__REPLACE__"#;

const GO_MAIN: &str = r#"// __NAME__ is a weft filter (proxy-wasm) written with weft's Go SDK,
// built with standard Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .
//
// It adds a configured header to every request.
package main

import (
	"encoding/json"

	// weft's Go SDK (module weft.dev/sdk/go, see go.mod's replace line).
	"weft.dev/sdk/go/proxywasm"
	"weft.dev/sdk/go/proxywasm/types"
)

// c-shared modules need a main; it never runs.
func main() {}

func init() { proxywasm.SetVMContext(&vmContext{}) }

type vmContext struct{ types.DefaultVMContext }

func (*vmContext) NewPluginContext(uint32) types.PluginContext {
	return &pluginContext{cfg: config{Header: "x-__NAME__", Value: "on"}}
}

type config struct {
	Header string `json:"header"`
	Value  string `json:"value"`
}

type pluginContext struct {
	types.DefaultPluginContext
	cfg config
}

func (p *pluginContext) OnPluginStart(size int) types.OnPluginStartStatus {
	if size == 0 {
		return types.OnPluginStartStatusOK
	}
	data, err := proxywasm.GetPluginConfiguration()
	if err != nil {
		proxywasm.LogWarnf("__NAME__: cannot read pluginConfig: %v", err)
		return types.OnPluginStartStatusFailed
	}
	if err := json.Unmarshal(data, &p.cfg); err != nil {
		proxywasm.LogWarnf("__NAME__: invalid pluginConfig: %v", err)
		return types.OnPluginStartStatusFailed
	}
	return types.OnPluginStartStatusOK
}

func (p *pluginContext) NewHttpContext(uint32) types.HttpContext {
	return &httpContext{cfg: p.cfg}
}

type httpContext struct {
	types.DefaultHttpContext
	cfg config
}

func (h *httpContext) OnHttpRequestHeaders(int, bool) types.Action {
	if err := proxywasm.AddHttpRequestHeader(h.cfg.Header, h.cfg.Value); err != nil {
		proxywasm.LogWarnf("__NAME__: adding %s: %v", h.cfg.Header, err)
	}
	return types.ActionContinue
}
"#;

const GO_README: &str = r#"# __NAME__

A weft filter in standard Go (≥ 1.24) on weft's Go SDK.

```sh
GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o filter.wasm .   # or: weft build .
weft push filter.wasm oci://REGISTRY/__NAME__:0.1.0
```

Then in `weft.yaml`:

```yaml
plugins:
  - name: __NAME__
    url: oci://REGISTRY/__NAME__:0.1.0
    pluginConfig: { header: x-hello, value: world }
```
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh, empty directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let dir = std::env::temp_dir().join(format!(
                "weft-scaffold-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn rust_template() {
        let tmp = TempDir::new();
        let project = new_filter("my-filter", Lang::Rust, &tmp.0).unwrap();
        assert!(project.ends_with("my-filter"));
        for f in ["Cargo.toml", "src/lib.rs", "tests/filter.rs", "README.md"] {
            assert!(project.join(f).is_file(), "{f} missing");
        }
        let cargo = read(&project.join("Cargo.toml"));
        assert!(cargo.contains("name = \"my-filter\""), "{cargo}");
        assert!(cargo.contains("crate-type = [\"cdylib\", \"rlib\"]"));
        assert!(cargo.contains("proxy-wasm = \"0.2\""));
        assert!(!cargo.contains("__"), "unfilled placeholder:\n{cargo}");
        // This test runs inside weft's tree: the SDK is found, by path.
        let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../sdk/rust")
            .canonicalize()
            .unwrap();
        let line = cargo
            .lines()
            .find(|l| l.starts_with("weft-sdk = { path = \""))
            .unwrap_or_else(|| panic!("no path dependency:\n{cargo}"));
        let rel = line
            .trim_start_matches("weft-sdk = { path = \"")
            .trim_end_matches("\" }");
        assert_eq!(project.join(rel).canonicalize().unwrap(), sdk);
        let lib = read(&project.join("src/lib.rs"));
        assert!(lib.contains("x-my-filter"));
        assert!(lib.contains("weft_sdk::config::load::<Config>()"));
        assert!(lib.contains("add_http_request_header"));
        let readme = read(&project.join("README.md"));
        assert!(readme.contains("cargo build --target wasm32-wasip1 --release"));
        assert!(readme.contains("weft push target/wasm32-wasip1/release/my_filter.wasm oci://"));
    }

    #[test]
    fn go_template() {
        let tmp = TempDir::new();
        let project = new_filter("gofilter", Lang::Go, &tmp.0).unwrap();
        for f in ["go.mod", "main.go", "README.md"] {
            assert!(project.join(f).is_file(), "{f} missing");
        }
        let gomod = read(&project.join("go.mod"));
        assert!(
            gomod.starts_with("module example.com/gofilter\n"),
            "{gomod}"
        );
        assert!(gomod.contains("require weft.dev/sdk/go v0.0.0"));
        let replace = gomod
            .lines()
            .find(|l| l.starts_with("replace weft.dev/sdk/go => "))
            .unwrap_or_else(|| panic!("no replace line:\n{gomod}"));
        let rel = replace.trim_start_matches("replace weft.dev/sdk/go => ");
        let declared = read(&project.join(rel).join("go.mod"));
        assert!(
            declared.starts_with(&format!("module {GO_SDK_MODULE}\n")),
            "the SDK declares {declared}"
        );
        let main = read(&project.join("main.go"));
        assert!(main.starts_with("// gofilter is a weft filter"));
        assert!(main.contains("\"weft.dev/sdk/go/proxywasm\""));
        assert!(main.contains("func main() {}"));
        assert!(!main.contains("__"));
    }

    #[test]
    fn the_rust_example_is_the_template_output() {
        // examples/rust-filter was made by `weft new filter rust-filter`;
        // its code must not drift from what the template writes.
        let tmp = TempDir::new();
        let project = new_filter("rust-filter", Lang::Rust, &tmp.0).unwrap();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/rust-filter");
        for file in ["src/lib.rs", "tests/filter.rs"] {
            assert_eq!(
                read(&project.join(file)),
                read(&example.join(file)),
                "examples/rust-filter/{file} differs from the template"
            );
        }
    }

    #[test]
    fn names_are_checked_and_projects_not_overwritten() {
        let tmp = TempDir::new();
        for bad in ["", "My", "1x", "a b", "a/b", "../x"] {
            let e = new_filter(bad, Lang::Rust, &tmp.0).unwrap_err();
            assert!(matches!(e, ScaffoldError::BadName { .. }), "{bad}: {e}");
        }
        new_filter("twice", Lang::Go, &tmp.0).unwrap();
        let e = new_filter("twice", Lang::Rust, &tmp.0).unwrap_err();
        assert!(matches!(e, ScaffoldError::Exists(_)), "{e}");
        assert!(e.to_string().contains("twice"), "{e}");
        // An empty directory is fine.
        std::fs::create_dir_all(tmp.0.join("empty")).unwrap();
        new_filter("empty", Lang::Rust, &tmp.0).unwrap();
    }

    #[test]
    fn languages_parse() {
        assert_eq!("rust".parse::<Lang>().unwrap(), Lang::Rust);
        assert_eq!("Go".parse::<Lang>().unwrap(), Lang::Go);
        let e = "zig".parse::<Lang>().unwrap_err();
        assert!(e.to_string().contains("\"zig\""), "{e}");
        assert_eq!(Lang::Go.to_string(), "go");
    }

    #[test]
    fn build_needs_a_project() {
        let tmp = TempDir::new();
        let e = build(&tmp.0).unwrap_err();
        assert!(matches!(e, ScaffoldError::UnknownProject(_)), "{e}");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/w/examples/f"), Path::new("/w/sdk/rust")),
            PathBuf::from("../../sdk/rust")
        );
        assert_eq!(
            relative(Path::new("/a"), Path::new("/b/c")),
            PathBuf::from("/b/c")
        );
    }
}
