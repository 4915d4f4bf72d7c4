//! A real OCI registry for tests: Debian's `docker-registry` (the CNCF
//! distribution registry), installed with apt when missing, serving
//! plain HTTP on a loopback port with its own storage directory and,
//! optionally, htpasswd basic authentication. Killed on drop.

use crate::weft::{TempDir, free_port};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

const BINARY: &str = "docker-registry";

/// Installs `docker-registry` with apt-get when it is not on the PATH.
pub fn ensure_installed() -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = find_binary() {
        return p;
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "-q", BINARY])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run apt-get to install {BINARY}: {e}"));
    assert!(
        status.success(),
        "apt-get install -y {BINARY} failed (run `apt-get update` first, or install it by hand)"
    );
    find_binary().unwrap_or_else(|| panic!("{BINARY} is still not on the PATH after installing it"))
}

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(BINARY))
        .find(|p| p.is_file())
}

/// One running registry.
pub struct Registry {
    pub addr: SocketAddr,
    dir: TempDir,
    child: Option<Child>,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that requires basic auth as `user`/`password`.
    pub fn start_with_auth(user: &str, password: &str) -> Registry {
        Registry::launch(Some((user, password)))
    }

    /// An anonymous registry serving HTTPS with the given certificate.
    pub fn start_tls(cert: &Path, key: &Path) -> Registry {
        Registry::launch_with(None, Some((cert, key)))
    }

    fn launch(auth: Option<(&str, &str)>) -> Registry {
        Registry::launch_with(auth, None)
    }

    fn launch_with(auth: Option<(&str, &str)>, tls: Option<(&Path, &Path)>) -> Registry {
        let bin = ensure_installed();
        let mut dir = TempDir::new("registry");
        let mut last_error = String::new();
        // The port is picked free and then bound by the registry: retry
        // the rare case where something else took it in between.
        for _ in 0..3 {
            let port = free_port();
            let config = write_config(dir.path(), port, auth, tls);
            let log = std::fs::File::create(dir.path().join("registry.log"))
                .expect("create registry log");
            let child = Command::new(&bin)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log handle"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let mut reg = Registry {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
                child: Some(child),
            };
            match reg.wait_ready() {
                Ok(()) => return reg,
                Err(e) => {
                    last_error = e;
                    reg.stop();
                    dir = TempDir::new("registry");
                    drop(reg);
                }
            }
        }
        panic!("docker-registry did not come up: {last_error}");
    }

    /// Polls `GET /v2/` until the registry answers (at most ~15 s).
    fn wait_ready(&mut self) -> Result<(), String> {
        for _ in 0..150 {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("it exited with {status}; log:\n{}", self.log()));
            }
            // 400: an HTTPS registry answering a plain-HTTP probe.
            if matches!(self.get_status("/v2/"), Some(200 | 401 | 400)) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "no answer on {} after 15 s; log:\n{}",
            self.addr,
            self.log()
        ))
    }

    /// The status code of a plain `GET path`, or None when nothing answers.
    pub fn get_status(&self, path: &str) -> Option<u16> {
        let mut s = TcpStream::connect_timeout(&self.addr, Duration::from_millis(500)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr).ok()?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).ok()?;
        let head = std::str::from_utf8(&buf[..n]).ok()?;
        head.split_whitespace().nth(1)?.parse().ok()
    }

    /// `127.0.0.1:PORT`, the host part of image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The registry's log (its access log included).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Its working directory (config, storage, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts the registry again after [`Registry::stop`], on the same port
    /// with the same storage.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.path().join("registry.log"))
            .expect("open registry log");
        let child = Command::new(ensure_installed())
            .arg("serve")
            .arg(self.dir.path().join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot restart docker-registry: {e}"));
        self.child = Some(child);
        if let Err(e) = self.wait_ready() {
            panic!("docker-registry did not come back: {e}");
        }
    }

    /// Kills the registry (it stops answering at once).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn write_config(
    dir: &Path,
    port: u16,
    auth: Option<(&str, &str)>,
    tls: Option<(&Path, &Path)>,
) -> PathBuf {
    let storage = dir.join("storage");
    std::fs::create_dir_all(&storage).expect("create registry storage");
    let mut yaml = format!(
        "version: 0.1\n\
         log:\n  level: info\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: weft-test-secret\n",
        storage.display()
    );
    // Nested under `http:`, which the text above ends with.
    if let Some((cert, key)) = tls {
        yaml.push_str(&format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    if let Some((user, password)) = auth {
        let hash = bcrypt::hash_with_result(password, 4)
            .expect("bcrypt hash")
            .format_for_version(bcrypt::Version::TwoY);
        let htpasswd = dir.join("htpasswd");
        std::fs::write(&htpasswd, format!("{user}:{hash}\n")).expect("write htpasswd");
        yaml.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: weft-test\n    path: {}\n",
            htpasswd.display()
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, yaml).expect("write registry config");
    path
}
