//! Registry credentials: Docker's `config.json` and weft's `registries`.

use crate::error::FetchError;
use base64::Engine;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A user name and password (or token); `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The `auths` of a Docker `config.json`, by registry key.
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    auths: HashMap<String, Credentials>,
    /// Where it was read from (None: no file).
    pub path: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct RawConfig {
    #[serde(default)]
    auths: HashMap<String, RawAuth>,
}

#[derive(serde::Deserialize, Default)]
struct RawAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default, rename = "identitytoken")]
    identity_token: Option<String>,
}

impl DockerConfig {
    /// The default location: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir).join("config.json")),
            _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
        }
    }

    /// Reads `path` (or the default location). A missing file is an empty
    /// configuration; an unreadable or malformed one is an error.
    pub fn load(path: Option<&Path>) -> Result<DockerConfig, FetchError> {
        let Some(path) = path.map(Path::to_path_buf).or_else(Self::default_path) else {
            return Ok(DockerConfig::default());
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut c = DockerConfig::parse(&text).map_err(|reason| {
                    FetchError::Settings(format!("docker config {}: {reason}", path.display()))
                })?;
                c.path = Some(path);
                Ok(c)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerConfig::default()),
            Err(source) => Err(FetchError::Io {
                what: "docker config",
                path,
                source,
            }),
        }
    }

    /// Parses the JSON text of a `config.json`.
    pub fn parse(text: &str) -> Result<DockerConfig, String> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let mut auths = HashMap::new();
        for (key, a) in raw.auths {
            let creds = if let Some(encoded) = a.auth.as_deref().filter(|s| !s.is_empty()) {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded.trim())
                    .map_err(|e| format!("auths.{key}.auth is not base64: {e}"))?;
                let decoded = String::from_utf8(decoded)
                    .map_err(|_| format!("auths.{key}.auth is not UTF-8 once decoded"))?;
                let (user, pass) = decoded
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{key}.auth does not decode to user:password"))?;
                Credentials {
                    username: user.to_owned(),
                    password: pass.to_owned(),
                }
            } else if let (Some(u), Some(p)) = (&a.username, &a.password) {
                Credentials {
                    username: u.clone(),
                    password: p.clone(),
                }
            } else if let Some(token) = &a.identity_token {
                Credentials {
                    username: "<token>".to_owned(),
                    password: token.clone(),
                }
            } else {
                continue;
            };
            auths.insert(key, creds);
        }
        Ok(DockerConfig { auths, path: None })
    }

    /// The credentials for a registry host (`host[:port]`): keys may be the
    /// bare host or a URL (`https://host/v1/`); Docker Hub also matches its
    /// legacy `https://index.docker.io/v1/` key.
    pub fn credentials_for(&self, host: &str) -> Option<&Credentials> {
        let normalize = |key: &str| -> String {
            let k = key
                .strip_prefix("https://")
                .or_else(|| key.strip_prefix("http://"))
                .unwrap_or(key);
            k.split('/').next().unwrap_or(k).to_owned()
        };
        let hub = matches!(
            host,
            "docker.io" | "index.docker.io" | "registry-1.docker.io"
        );
        self.auths.iter().find_map(|(k, c)| {
            let n = normalize(k);
            (n == host
                || hub
                    && matches!(
                        n.as_str(),
                        "docker.io" | "index.docker.io" | "registry-1.docker.io"
                    ))
            .then_some(c)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_auth_and_username_password_entries() {
        let auth = base64::engine::general_purpose::STANDARD.encode("alice:s3cret:with:colons");
        let c = DockerConfig::parse(&format!(
            r#"{{"auths": {{
                "127.0.0.1:5000": {{"auth": "{auth}"}},
                "https://ghcr.io/v1/": {{"username": "bob", "password": "pw"}},
                "https://index.docker.io/v1/": {{"auth": "{auth}"}},
                "empty.example": {{}}
            }}, "credsStore": "desktop"}}"#
        ))
        .unwrap();
        let a = c.credentials_for("127.0.0.1:5000").unwrap();
        assert_eq!(
            (a.username.as_str(), a.password.as_str()),
            ("alice", "s3cret:with:colons")
        );
        let b = c.credentials_for("ghcr.io").unwrap();
        assert_eq!((b.username.as_str(), b.password.as_str()), ("bob", "pw"));
        assert_eq!(c.credentials_for("docker.io").unwrap().username, "alice");
        assert!(c.credentials_for("empty.example").is_none());
        assert!(c.credentials_for("127.0.0.1:5001").is_none());
        let shown = format!("{a:?}");
        assert!(
            !shown.contains("s3cret") && shown.contains("redacted"),
            "{shown}"
        );
    }

    #[test]
    fn refuses_malformed_configs_naming_the_entry() {
        let e = DockerConfig::parse(r#"{"auths": {"r.io": {"auth": "!!!"}}}"#).unwrap_err();
        assert!(e.contains("auths.r.io.auth is not base64"), "{e}");
        let nocolon = base64::engine::general_purpose::STANDARD.encode("nocolon");
        let e = DockerConfig::parse(&format!(
            r#"{{"auths": {{"r.io": {{"auth": "{nocolon}"}}}}}}"#
        ))
        .unwrap_err();
        assert!(e.contains("user:password"), "{e}");
        assert!(
            DockerConfig::parse("[")
                .unwrap_err()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn a_missing_file_is_empty_and_a_given_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let missing = DockerConfig::load(Some(&dir.path().join("nope.json"))).unwrap();
        assert!(missing.credentials_for("r.io").is_none());
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"r.io":{"username":"u","password":"p"}}}"#,
        )
        .unwrap();
        let c = DockerConfig::load(Some(&path)).unwrap();
        assert_eq!(c.credentials_for("r.io").unwrap().password, "p");
        assert_eq!(c.path.as_deref(), Some(path.as_path()));
    }
}
