//! The OCI layer against a real registry (Debian's `docker-registry` on
//! loopback): push and pull in every accepted format, pins, auth, the
//! cache (coalescing, eviction, fallback), local layouts, and the
//! `weft push|pull|inspect` commands.

use indicatif::ProgressBar;
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use weft_config::{ImagePullPolicy, ModuleSource};
use weft_oci::{
    CacheOptions, ClientSettings, FetchError, FetchSettings, ImageRef, ModuleFetcher,
    RegistryClient, sha256_digest,
};
use weft_tests::registry::Registry;
use weft_tests::weft::{TempDir, weft_bin};

/// A small valid Wasm module; `n` makes it unique, `pad` bytes of data make it bigger.
fn module(n: u32, pad: usize) -> Vec<u8> {
    wat::parse_str(format!(
        r#"(module (memory 1) (func (export "f{n}") (result i32) i32.const {n}) (data (i32.const 0) "{}"))"#,
        "x".repeat(pad)
    ))
    .expect("valid wat")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn plain(reg: &Registry) -> weft_config::Registry {
    weft_config::Registry {
        host: reg.host(),
        plain_http: true,
        ..Default::default()
    }
}

fn fetcher_with(
    cache: &Path,
    registries: Vec<weft_config::Registry>,
    options: CacheOptions,
) -> ModuleFetcher {
    ModuleFetcher::new(FetchSettings {
        cache_dir: Some(cache.to_path_buf()),
        cache: options,
        registries,
        docker_config: Some(cache.join("no-docker-config.json")),
        ..FetchSettings::default()
    })
    .expect("fetcher")
}

fn fetcher(cache: &Path, reg: &Registry) -> ModuleFetcher {
    fetcher_with(cache, vec![plain(reg)], CacheOptions::default())
}

fn client(registries: Vec<weft_config::Registry>) -> RegistryClient {
    RegistryClient::new(ClientSettings {
        registries,
        docker_config: Some(PathBuf::from("/nonexistent/docker-config.json")),
        ..ClientSettings::default()
    })
    .expect("client")
}

async fn push(reg: &Registry, reference: &str, wasm: &[u8]) -> weft_oci::PushOutcome {
    let r = ImageRef::parse(reference).expect("reference");
    client(vec![plain(reg)])
        .push_wasm(
            &r,
            wasm,
            Some("filter.wasm"),
            &BTreeMap::new(),
            &ProgressBar::hidden(),
        )
        .await
        .unwrap_or_else(|e| panic!("push {reference}: {e}"))
}

fn oci(reference: String) -> ModuleSource {
    ModuleSource::Oci(reference)
}

/// Pushes an image with `oci-client` directly (not weft's pusher).
async fn raw_push(
    reg: &Registry,
    repo: &str,
    config: (&str, Vec<u8>),
    layer: (&str, Vec<u8>),
    manifest_media_type: &str,
) {
    weft_oci::install_crypto_provider();
    let c = oci_client::Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let r: oci_client::Reference = format!("{}/{repo}", reg.host()).parse().expect("reference");
    let layers = [ImageLayer::new(layer.1, layer.0.to_owned(), None)];
    let config = Config::new(config.1, config.0.to_owned(), None);
    let mut manifest = OciImageManifest::build(&layers, &config, None);
    manifest.media_type = Some(manifest_media_type.to_owned());
    c.push(
        &r,
        &layers,
        config,
        &RegistryAuth::Anonymous,
        Some(manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("oci-client push {repo}: {e}"));
}

fn tar_gz(name: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, name, data).expect("tar");
    let raw = b.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn push_then_pull_by_tag_and_by_digest_with_the_pin_verified() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-roundtrip");
    let wasm = module(1, 0);
    let want = sha256_digest(&wasm);
    rt().block_on(async {
        let pushed = push(&reg, &format!("{}/filters/rt:v1", reg.host()), &wasm).await;
        assert_eq!(pushed.wasm_digest, want);
        let f = fetcher(dir.path(), &reg);
        let by_tag = f
            .fetch(
                &oci(format!("{}/filters/rt:v1", reg.host())),
                Some(&want[7..]),
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect("fetch by tag");
        assert_eq!(by_tag.bytes, wasm);
        assert_eq!(by_tag.digest, want);
        assert!(!by_tag.from_cache);
        assert!(
            by_tag.source_desc.contains(&pushed.manifest_digest),
            "{}",
            by_tag.source_desc
        );
        assert_eq!(f.stats().downloads, 1);

        // A second fetcher with an empty cache, by manifest digest.
        let dir2 = TempDir::new("oci-roundtrip2");
        let f2 = fetcher(dir2.path(), &reg);
        let by_digest = f2
            .fetch(
                &oci(format!(
                    "{}/filters/rt@{}",
                    reg.host(),
                    pushed.manifest_digest
                )),
                Some(&want),
                ImagePullPolicy::IfNotPresent,
            )
            .await
            .expect("fetch by digest");
        assert_eq!(by_digest.bytes, wasm);
        assert_eq!(f2.stats().downloads, 1);

        // Again: IfNotPresent serves the cache without a download.
        let again = f2
            .fetch(
                &oci(format!(
                    "{}/filters/rt@{}",
                    reg.host(),
                    pushed.manifest_digest
                )),
                None,
                ImagePullPolicy::IfNotPresent,
            )
            .await
            .expect("fetch again");
        assert!(again.from_cache);
        assert_eq!(again.bytes, wasm);
        let s = f2.stats();
        assert_eq!((s.downloads, s.cache_hits), (1, 1));
    });
}

#[test]
fn weft_push_pull_and_inspect_commands() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-cli");
    // A real filter, big enough to go up in several chunks.
    let wasm = weft_tests::filter_bytes("weft-filter-header-rewrite");
    let file = dir.write("header-rewrite.wasm", &wasm);
    let target = format!("oci://{}/cli/rewrite:v2", reg.host());
    let out = Command::new(weft_bin())
        .args(["push", "--plain-http"])
        .arg(&file)
        .arg(&target)
        .args([
            "--annotation",
            "org.opencontainers.image.source=https://example.invalid/rewrite",
        ])
        .args(["--registry-config"])
        .arg(dir.path().join("none.json"))
        .output()
        .expect("run weft push");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success(),
        "weft push: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("sha256:") && stdout.len() == 71,
        "weft push prints the manifest digest, got {stdout:?}"
    );
    let digest = stdout;

    let pulled = dir.path().join("pulled.wasm");
    let out = Command::new(weft_bin())
        .args(["pull", "--plain-http"])
        .arg(format!("oci://{}/cli/rewrite@{digest}", reg.host()))
        .arg("-o")
        .arg(&pulled)
        .output()
        .expect("run weft pull");
    assert!(
        out.status.success(),
        "weft pull: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&pulled).expect("pulled file"), wasm);

    let out = Command::new(weft_bin())
        .args(["inspect", "--plain-http"])
        .arg(&target)
        .output()
        .expect("run weft inspect");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "weft inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        digest.as_str(),
        "application/vnd.wasm.config.v0+json",
        "application/wasm",
        "application/vnd.oci.image.manifest.v1+json",
        &sha256_digest(&wasm),
        "org.opencontainers.image.source: https://example.invalid/rewrite",
        "org.opencontainers.image.title: header-rewrite.wasm",
        "org.opencontainers.image.version: v2",
        "org.opencontainers.image.created: ",
    ] {
        assert!(
            text.contains(needle),
            "inspect output lacks {needle:?}:\n{text}"
        );
    }

    // Without --plain-http the client insists on HTTPS and fails clearly.
    let out = Command::new(weft_bin())
        .args(["inspect"])
        .arg(&target)
        .output()
        .expect("run weft inspect");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&reg.host()));
}

#[test]
fn pulls_istio_oci_and_docker_compatible_images() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-istio");
    let wasm = module(3, 10);
    let want = sha256_digest(&wasm);
    rt().block_on(async {
        raw_push(
            &reg,
            "istio/oci:v1",
            ("application/vnd.module.wasm.config.v1+json", b"{}".to_vec()),
            ("application/vnd.module.wasm.content.layer.v1+wasm", wasm.clone()),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
        raw_push(
            &reg,
            "istio/docker:v1",
            (
                "application/vnd.docker.container.image.v1+json",
                br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec(),
            ),
            ("application/vnd.docker.image.rootfs.diff.tar.gzip", tar_gz("plugin.wasm", &wasm)),
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .await;
        let c = client(vec![plain(&reg)]);
        for (repo, format) in [
            ("istio/oci:v1", weft_oci::ArtifactFormat::IstioOci),
            ("istio/docker:v1", weft_oci::ArtifactFormat::DockerCompat),
        ] {
            let r = ImageRef::parse(&format!("{}/{repo}", reg.host())).expect("ref");
            let p = c.pull(&r, &ProgressBar::hidden()).await.unwrap_or_else(|e| panic!("{repo}: {e}"));
            assert_eq!(p.format, format, "{repo}");
            assert_eq!(p.wasm, wasm, "{repo}");
            let f = fetcher(dir.path(), &reg);
            let m = f
                .fetch(&oci(format!("{}/{repo}", reg.host())), Some(&want), ImagePullPolicy::Unspecified)
                .await
                .unwrap_or_else(|e| panic!("fetch {repo}: {e}"));
            assert_eq!(m.digest, want);
        }
    });
}

#[test]
fn foreign_media_types_and_pin_mismatches_are_refused() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-refuse");
    let wasm = module(4, 0);
    rt().block_on(async {
        raw_push(
            &reg,
            "odd/text:v1",
            ("application/vnd.oci.image.config.v1+json", b"{}".to_vec()),
            ("text/plain", b"hello".to_vec()),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
        let f = fetcher(dir.path(), &reg);
        let e = f
            .fetch(
                &oci(format!("{}/odd/text:v1", reg.host())),
                None,
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect_err("a text/plain layer is not a module");
        assert!(matches!(e, FetchError::UnsupportedMediaTypes { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("text/plain") && msg.contains("application/vnd.oci.image.config.v1+json"),
            "{msg}"
        );

        push(&reg, &format!("{}/pin/f:v1", reg.host()), &wasm).await;
        let wrong = "ab".repeat(32);
        let e = f
            .fetch(
                &oci(format!("{}/pin/f:v1", reg.host())),
                Some(&wrong),
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect_err("wrong pin");
        let msg = e.to_string();
        assert!(matches!(e, FetchError::PinMismatch { .. }), "{msg}");
        assert!(
            msg.contains(&wrong) && msg.contains(&sha256_digest(&wasm)),
            "{msg}"
        );
    });
}

#[test]
fn basic_auth_registry_needs_the_right_password() {
    let reg = Registry::start_with_auth("ci", "right-pass");
    let dir = TempDir::new("oci-auth");
    let wasm = module(5, 0);
    let good = dir.write("good.pass", "right-pass\n");
    let bad = dir.write("bad.pass", "wrong-pass\n");
    let with = |file: &Path| weft_config::Registry {
        host: reg.host(),
        plain_http: true,
        username: Some("ci".into()),
        password_file: Some(file.to_path_buf()),
        ca: None,
    };
    rt().block_on(async {
        let r = ImageRef::parse(&format!("{}/private/f:v1", reg.host())).expect("ref");
        client(vec![with(&good)])
            .push_wasm(&r, &wasm, None, &BTreeMap::new(), &ProgressBar::hidden())
            .await
            .expect("push with the right password");

        let ok = fetcher_with(
            &dir.path().join("c1"),
            vec![with(&good)],
            CacheOptions::default(),
        )
        .fetch(&oci(r.to_string()), None, ImagePullPolicy::Unspecified)
        .await
        .expect("pull with the right password");
        assert_eq!(ok.bytes, wasm);

        let e = fetcher_with(
            &dir.path().join("c2"),
            vec![with(&bad)],
            CacheOptions::default(),
        )
        .fetch(&oci(r.to_string()), None, ImagePullPolicy::Unspecified)
        .await
        .expect_err("wrong password");
        assert!(matches!(e, FetchError::Auth { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("authentication failed") && msg.contains(&reg.host()),
            "{msg}"
        );
        assert!(
            !msg.contains("wrong-pass"),
            "the secret is not printed: {msg}"
        );

        let e = fetcher_with(
            &dir.path().join("c3"),
            vec![plain(&reg)],
            CacheOptions::default(),
        )
        .fetch(&oci(r.to_string()), None, ImagePullPolicy::Unspecified)
        .await
        .expect_err("anonymous");
        assert!(matches!(e, FetchError::Auth { .. }), "{e:?}");

        // Docker's config.json works too.
        let auth = "Y2k6cmlnaHQtcGFzcw=="; // base64("ci:right-pass")
        let docker = dir.write(
            "config.json",
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host()),
        );
        let f = ModuleFetcher::new(FetchSettings {
            cache_dir: Some(dir.path().join("c4")),
            registries: vec![plain(&reg)],
            docker_config: Some(docker),
            ..FetchSettings::default()
        })
        .expect("fetcher");
        let m = f
            .fetch(&oci(r.to_string()), None, ImagePullPolicy::Unspecified)
            .await
            .expect("pull with docker config credentials");
        assert_eq!(m.bytes, wasm);
    });
}

#[test]
fn concurrent_fetches_of_one_image_download_once() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-coalesce");
    let wasm = module(6, 2000);
    rt().block_on(async {
        push(&reg, &format!("{}/co/f:v1", reg.host()), &wasm).await;
        let f = fetcher(dir.path(), &reg);
        let src = oci(format!("{}/co/f:v1", reg.host()));
        let all = futures_util::future::join_all(
            (0..6).map(|_| f.fetch(&src, None, ImagePullPolicy::IfNotPresent)),
        )
        .await;
        for m in all {
            assert_eq!(m.expect("fetch").bytes, wasm);
        }
        let s = f.stats();
        assert_eq!(s.downloads, 1, "{s:?}");
        assert_eq!(s.cache_hits, 5, "{s:?}");
    });
    let blob_gets = reg
        .log()
        .lines()
        .filter(|l| l.contains(&format!("GET /v2/co/f/blobs/{}", sha256_digest(&wasm))))
        .count();
    assert_eq!(blob_gets, 1, "registry log:\n{}", reg.log());
}

#[test]
fn the_cache_evicts_least_recently_used_modules_beyond_its_size() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-evict");
    let mods: Vec<Vec<u8>> = (0..3).map(|i| module(10 + i, 1000)).collect();
    let size = mods[0].len() as u64;
    rt().block_on(async {
        for (i, m) in mods.iter().enumerate() {
            push(&reg, &format!("{}/ev/m{i}:v1", reg.host()), m).await;
        }
        let f = fetcher_with(
            dir.path(),
            vec![plain(&reg)],
            CacheOptions {
                max_bytes: 2 * size + size / 2,
                ..CacheOptions::default()
            },
        );
        for i in 0..3 {
            let src = oci(format!("{}/ev/m{i}:v1", reg.host()));
            f.fetch(&src, None, ImagePullPolicy::IfNotPresent)
                .await
                .expect("fetch");
            // Distinct access times for the LRU order.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let cached: Vec<String> = f
            .cache()
            .ls()
            .expect("ls")
            .into_iter()
            .map(|e| e.digest)
            .collect();
        assert_eq!(cached.len(), 2, "{cached:?}");
        assert!(
            !cached.contains(&sha256_digest(&mods[0])),
            "the oldest is evicted"
        );
        assert!(f.cache().size().expect("size") <= 2 * size + size / 2);
        assert_eq!(f.stats().downloads, 3);
        // The evicted one is downloaded again.
        let again = f
            .fetch(
                &oci(format!("{}/ev/m0:v1", reg.host())),
                None,
                ImagePullPolicy::IfNotPresent,
            )
            .await
            .expect("refetch");
        assert_eq!(again.bytes, mods[0]);
        assert!(!again.from_cache);
        assert_eq!(f.stats().downloads, 4);
    });
    // `weft cache ls|prune` see the same cache (DIR/oci).
    let weft_dir = TempDir::new("oci-cli-cache");
    let cache =
        weft_oci::Cache::open(weft_dir.path().join("oci"), CacheOptions::default()).expect("cache");
    let d = cache.put_blob(&mods[1]).expect("put");
    let out = Command::new(weft_bin())
        .args(["cache", "ls", "--cache-dir"])
        .arg(weft_dir.path())
        .output()
        .expect("weft cache ls");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&d), "{out:?}");
    let out = Command::new(weft_bin())
        .args(["cache", "prune", "--cache-dir"])
        .arg(weft_dir.path())
        .output()
        .expect("weft cache prune");
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("removed 1 module"),
        "{out:?}"
    );
    assert!(!cache.has_blob(&d));
}

#[test]
fn oci_layout_directories_are_a_source() {
    let dir = TempDir::new("oci-layout");
    let layout = dir.path().join("layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    let put = |bytes: &[u8]| {
        let d = sha256_digest(bytes);
        std::fs::write(layout.join("blobs/sha256").join(&d[7..]), bytes).expect("blob");
        d
    };
    let wasm = module(7, 0);
    let layer = put(&wasm);
    let config = put(b"{}");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.wasm.config.v0+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/wasm", "digest": layer, "size": wasm.len()}]
    }))
    .expect("json");
    let m = put(&manifest);
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("marker");
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": manifest.len(),
             "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
        .expect("json"),
    )
    .expect("index");
    let f = fetcher_with(
        &dir.path().join("cache"),
        Vec::new(),
        CacheOptions::default(),
    );
    rt().block_on(async {
        let src = ModuleSource::OciLayout(PathBuf::from(format!("{}:v1", layout.display())));
        let got = f
            .fetch(
                &src,
                Some(&sha256_digest(&wasm)),
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect("layout fetch");
        assert_eq!(got.bytes, wasm);
        assert!(got.source_desc.contains(&m), "{}", got.source_desc);
        let missing = ModuleSource::OciLayout(PathBuf::from(format!("{}:v9", layout.display())));
        let e = f
            .fetch(&missing, None, ImagePullPolicy::Unspecified)
            .await
            .expect_err("no v9");
        assert!(e.to_string().contains("\"v9\""), "{e}");
    });
}

#[test]
fn http_sources_need_and_check_the_pin() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-http");
    let wasm = module(8, 0);
    rt().block_on(async {
        push(&reg, &format!("{}/http/f:v1", reg.host()), &wasm).await;
        // An anonymous registry serves blobs over plain GET: a fine HTTP origin.
        let url = format!(
            "http://{}/v2/http/f/blobs/{}",
            reg.host(),
            sha256_digest(&wasm)
        );
        let f = fetcher(dir.path(), &reg);
        let got = f
            .fetch(
                &ModuleSource::Http(url.clone()),
                Some(&sha256_digest(&wasm)[7..]),
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect("http fetch");
        assert_eq!(got.bytes, wasm);
        let wrong = "cd".repeat(32);
        let dir2 = TempDir::new("oci-http2");
        let e = fetcher(dir2.path(), &reg)
            .fetch(
                &ModuleSource::Http(url),
                Some(&wrong),
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect_err("wrong pin");
        let msg = e.to_string();
        assert!(
            msg.contains(&wrong) && msg.contains(&sha256_digest(&wasm)),
            "{msg}"
        );
    });
}

#[test]
fn a_stopped_registry_falls_back_to_the_cached_module() {
    let mut reg = Registry::start();
    let dir = TempDir::new("oci-fallback");
    let wasm = module(9, 0);
    let latest = format!("{}/fb/f:latest", reg.host());
    rt().block_on(async {
        push(&reg, &latest, &wasm).await;
        let first = fetcher(dir.path(), &reg)
            .fetch(&oci(latest.clone()), None, ImagePullPolicy::Unspecified)
            .await
            .expect("first fetch");
        assert!(!first.from_cache);
    });
    reg.stop();
    rt().block_on(async {
        // A new fetcher on the same cache directory: the cache survived the "restart".
        let f = fetcher_with(dir.path(), vec![plain(&reg)], CacheOptions::default());
        let m = f
            .fetch(&oci(latest.clone()), None, ImagePullPolicy::Unspecified)
            .await
            .expect("served from the cache");
        assert_eq!(m.bytes, wasm);
        assert!(m.from_cache);
        let note = m.note.expect("a note explains the fallback");
        assert!(
            note.contains("unreachable") && note.contains(&sha256_digest(&wasm)),
            "{note}"
        );
        assert_eq!(f.stats().fallbacks, 1);

        let e = f
            .fetch(
                &oci(format!("{}/fb/never:v1", reg.host())),
                None,
                ImagePullPolicy::Unspecified,
            )
            .await
            .expect_err("nothing cached for this one");
        assert!(matches!(e, FetchError::Unreachable { .. }), "{e:?}");
    });
}

#[test]
fn a_multi_platform_index_resolves_to_its_wasm_entry() {
    let reg = Registry::start();
    let dir = TempDir::new("oci-index");
    let wasm = module(11, 0);
    rt().block_on(async {
        let pushed = push(&reg, &format!("{}/multi/f:wasm", reg.host()), &wasm).await;
        raw_push(
            &reg,
            "multi/f:linux",
            ("application/vnd.oci.image.config.v1+json", b"{}".to_vec()),
            ("application/vnd.oci.image.layer.v1.tar+gzip", tar_gz("bin/sh", b"#!")),
            "application/vnd.oci.image.manifest.v1+json",
        )
        .await;
        let c = client(vec![plain(&reg)]);
        let linux = c
            .inspect(&ImageRef::parse(&format!("{}/multi/f:linux", reg.host())).expect("ref"))
            .await
            .expect("inspect linux");
        let wasm_image = c
            .inspect(&ImageRef::parse(&format!("{}/multi/f:wasm", reg.host())).expect("ref"))
            .await
            .expect("inspect wasm");
        assert_eq!(wasm_image.manifest_digest, pushed.manifest_digest);
        let index: oci_client::manifest::OciImageIndex = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": linux.manifest_digest,
                 "size": linux.manifest_json.len(), "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": wasm_image.manifest_digest,
                 "size": wasm_image.manifest_json.len(), "platform": {"os": "wasip1", "architecture": "wasm"}}
            ]
        }))
        .expect("index json");
        let oc = oci_client::Client::new(ClientConfig {
            protocol: ClientProtocol::Http,
            ..Default::default()
        });
        let r: oci_client::Reference = format!("{}/multi/f:v1", reg.host()).parse().expect("ref");
        oc.push_manifest_list(&r, &RegistryAuth::Anonymous, index)
            .await
            .expect("push index");

        let m = fetcher(dir.path(), &reg)
            .fetch(&oci(format!("{}/multi/f:v1", reg.host())), Some(&sha256_digest(&wasm)), ImagePullPolicy::Unspecified)
            .await
            .expect("fetch through the index");
        assert_eq!(m.bytes, wasm);
        let shown = c
            .inspect(&ImageRef::parse(&format!("{}/multi/f:v1", reg.host())).expect("ref"))
            .await
            .expect("inspect index");
        assert!(shown.index_digest.is_some());
        assert_eq!(shown.manifest_digest, pushed.manifest_digest);
        assert_eq!(shown.format, Some(weft_oci::ArtifactFormat::CncfWasm));
    });
}

/// HTTPS registries: verified with the `ca` of the registry's entry; with
/// neither that CA nor a system root, the pull fails and says why.
#[test]
fn https_registries_are_verified_with_the_given_ca() {
    let pki = weft_tests::tls::Pki::new();
    let reg = Registry::start_tls(&pki.server_cert, &pki.server_key);
    let wasm = wat::parse_str("(module (memory (export \"memory\") 1))").expect("wat");
    let reference = format!("{}/tls/filter:v1", reg.host());
    let trusted = weft_config::Registry {
        host: reg.host(),
        ca: Some(pki.ca.clone()),
        ..Default::default()
    };
    let cache = TempDir::new("oci-tls");
    rt().block_on(async {
        let r = ImageRef::parse(&reference).expect("reference");
        client(vec![trusted.clone()])
            .push_wasm(
                &r,
                &wasm,
                Some("filter.wasm"),
                &BTreeMap::new(),
                &ProgressBar::hidden(),
            )
            .await
            .unwrap_or_else(|e| panic!("push over HTTPS: {e}"));
        let got = fetcher_with(cache.path(), vec![trusted], CacheOptions::default())
            .fetch(
                &oci(reference.clone()),
                None,
                weft_config::ImagePullPolicy::Always,
            )
            .await
            .unwrap_or_else(|e| panic!("pull over HTTPS: {e}"));
        assert_eq!(got.bytes, wasm);

        let untrusted = TempDir::new("oci-tls-untrusted");
        let err = fetcher_with(
            untrusted.path(),
            vec![weft_config::Registry {
                host: reg.host(),
                ..Default::default()
            }],
            CacheOptions::default(),
        )
        .fetch(
            &oci(reference.clone()),
            None,
            weft_config::ImagePullPolicy::Always,
        )
        .await
        .expect_err("an unknown CA is refused");
        let text = format!("{err:#}");
        assert!(text.contains(&reg.host()), "{text}");
        assert!(text.contains("invalid peer certificate"), "{text}");
    });
}
