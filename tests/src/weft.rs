//! Runs the real `weft` binary for end-to-end tests.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `weft` binary built by `cargo build --workspace --bins`.
pub fn weft_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("WEFT_BIN") {
        return PathBuf::from(p);
    }
    let p = crate::target_dir().join("debug").join("weft");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (or `cargo build -p weft-proxy`) before the end-to-end tests",
        p.display()
    );
    p
}

/// The `weft-controller` binary built by `cargo build --workspace --bins`.
pub fn controller_bin() -> PathBuf {
    let p = crate::target_dir().join("debug").join("weft-controller");
    assert!(
        p.exists(),
        "{} is missing: run scripts/test.sh (or `cargo build -p weft-controller`) before the end-to-end tests",
        p.display()
    );
    p
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir =
            std::env::temp_dir().join(format!("weft-{tag}-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A running `weft run`.
pub struct Weft {
    pub child: Child,
    pub dir: TempDir,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

fn collect(stream: impl std::io::Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>, echo: bool) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            if echo {
                eprintln!("[weft] {line}");
            }
            sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
    });
}

impl Weft {
    /// Writes `config` (with `{admin}` replaced by a free admin address) to
    /// a temp dir and starts weft on it; waits until `/ready`.
    pub fn start(config: &str) -> Weft {
        Self::try_start(config, TempDir::new("run")).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn try_start(config: &str, dir: TempDir) -> Result<Weft, String> {
        Self::try_start_with(config, dir, &[])
    }

    /// [`Weft::try_start`] with more `weft run` arguments.
    pub fn try_start_with(config: &str, dir: TempDir, args: &[&str]) -> Result<Weft, String> {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let text = config
            .replace("{admin}", &admin.to_string())
            .replace("{dir}", &dir.path().display().to_string());
        let path = dir.write("weft.yaml", &text);
        let mut cmd = Command::new(weft_bin());
        cmd.args(["run", "--config"]).arg(&path);
        // A private cache per run, unless the config names its own (a test
        // that restarts weft on the same cache).
        if !text.contains("\ncache_dir:") {
            cmd.args(["--cache-dir"]).arg(dir.path().join("cache"));
        }
        cmd.args(args);
        let mut child = cmd
            .env("WEFT_LOG", "info,weft_proxy=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start weft: {e}"))?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().expect("stdout"), stdout.clone(), false);
        collect(child.stderr.take().expect("stderr"), stderr.clone(), true);
        let mut weft = Weft {
            child,
            dir,
            config: path,
            admin,
            stdout,
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = weft.child.try_wait() {
                return Err(format!(
                    "weft exited during start-up ({status}):\n{}",
                    weft.stderr_text()
                ));
            }
            if crate::client::get_status(&format!("http://{admin}/ready")) == Some(200) {
                return Ok(weft);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "weft did not become ready:\n{}",
                    weft.stderr_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin)
    }

    /// Sends a signal to weft.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for weft to exit (bounded).
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Weft {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `weft ARGS…` to completion: (exit code, stdout, stderr).
pub fn weft_cmd(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(weft_bin())
        .args(args)
        .output()
        .expect("run weft");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
