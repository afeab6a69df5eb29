//! The publisher side: `qiao connector build`, `pack` and `sign`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use qiao_contract::ConnectorInfo;
use qiao_directory::keys::SigningKey;
use qiao_directory::manifest::{AuthorManifest, MANIFEST_FILE, Manifest};
use qiao_directory::package::{self, README_FILE, SIGNATURE_EXTENSION};
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use serde_json::Value;

use crate::key::PasswordArgs;

/// The cargo to run: the one that runs us (`$CARGO`), else `cargo` on the PATH.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Builds the connector crate at `dir` for `wasm32-wasip2` with its size-optimised
/// `connector` profile (`--release` when the crate defines none) and returns the component.
pub fn build(dir: &Path) -> Result<PathBuf> {
    let manifest_path = dir.join("Cargo.toml");
    let cargo_toml = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("{} is not a connector crate (no Cargo.toml)", dir.display()))?;
    let profile = if cargo_toml.lines().any(|l| l.trim() == "[profile.connector]") {
        "--profile=connector"
    } else {
        "--release"
    };
    let mut child = cargo()
        .args([
            "build",
            "--lib",
            "--target",
            "wasm32-wasip2",
            profile,
            "--message-format=json-render-diagnostics",
        ])
        .args(["--manifest-path", "Cargo.toml"])
        // From the crate's folder, so rustup honours its rust-toolchain.toml.
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("failed to run cargo")?;
    let mut wasm = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("failed to read cargo's output")?;
            let Ok(message) = serde_json::from_str::<Value>(&line) else { continue };
            if message["reason"] == "compiler-artifact" {
                let files = message["filenames"].as_array().cloned().unwrap_or_default();
                if let Some(file) = files.iter().filter_map(Value::as_str).find(|f| f.ends_with(".wasm")) {
                    wasm = Some(PathBuf::from(file));
                }
            }
        }
    }
    let status = child.wait().context("failed to wait for cargo")?;
    if !status.success() {
        bail!("cargo build failed for {}", dir.display());
    }
    wasm.ok_or_else(|| anyhow::anyhow!("cargo built no .wasm component for {}", dir.display()))
}

/// Loads a component through the host and returns what it describes.
pub async fn describe(wasm: &Path, state: &Path) -> Result<ConnectorInfo> {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(state.join("cache")), ..Default::default() })?;
    let connector = runtime.load_file(wasm, ConnectorPolicy::default()).await?;
    Ok(connector.info().clone())
}

/// Packs a component: checks it is a component for a WIT version this runtime loads,
/// completes the author's manifest from `describe()`, and writes the package bytes.
pub async fn pack_component(
    wasm_path: &Path,
    author: &AuthorManifest,
    readme: Option<String>,
    state: &Path,
) -> Result<(Manifest, Vec<u8>)> {
    let wasm = std::fs::read(wasm_path).with_context(|| format!("failed to read {}", wasm_path.display()))?;
    let wit = qiao_directory::wit::component_version(&wasm)
        .with_context(|| format!("failed to read the WIT version of {}", wasm_path.display()))?;
    let host = qiao_directory::wit::host_version();
    if !qiao_directory::wit::compatible(&wit, &host) {
        bail!(
            "{} is built against qiao:connector@{wit}, which this qiao (qiao:connector@{host}) cannot load",
            wasm_path.display()
        );
    }
    let info = describe(wasm_path, state).await?;
    let manifest = author.complete(&info, &wit)?;
    let readme = readme.unwrap_or_else(|| format!("# {}\n\n{}\n", info.title, info.description));
    let bytes = package::write(&manifest, &wasm, &readme)?;
    Ok((manifest, bytes))
}

/// Arguments of `qiao connector pack`.
#[derive(Debug, clap::Args)]
pub struct PackArgs {
    /// The connector crate (holds Cargo.toml, qiao-connector.yaml, README.md).
    #[arg(long, default_value = ".")]
    path: PathBuf,
    /// Pack this component instead of building the crate.
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// The author manifest. Default: qiao-connector.yaml in the crate.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Publisher id, when there is no manifest.
    #[arg(long)]
    publisher: Option<String>,
    /// The README to include. Default: README.md in the crate.
    #[arg(long)]
    readme: Option<PathBuf>,
    /// Where to write ID-VERSION.qpkg.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

pub async fn pack(args: PackArgs, state: &Path) -> Result<()> {
    let manifest_path = args.manifest.clone().unwrap_or_else(|| args.path.join(MANIFEST_FILE));
    let mut author = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => {
            AuthorManifest::parse(&text).with_context(|| format!("in {}", manifest_path.display()))?
        }
        Err(_) if args.manifest.is_none() && args.publisher.is_some() => AuthorManifest::default(),
        Err(e) => {
            bail!("failed to read {}: {e} (or pass --publisher to pack without one)", manifest_path.display())
        }
    };
    if let Some(p) = &args.publisher {
        author.publisher = p.clone();
    }
    let wasm = match &args.wasm {
        Some(w) => w.clone(),
        None => build(&args.path)?,
    };
    let readme_path = args.readme.clone().unwrap_or_else(|| args.path.join(README_FILE));
    let readme = match std::fs::read_to_string(&readme_path) {
        Ok(text) => Some(text),
        Err(_) if args.readme.is_none() => None,
        Err(e) => bail!("failed to read {}: {e}", readme_path.display()),
    };
    let (manifest, bytes) = pack_component(&wasm, &author, readme, state).await?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("failed to create {}", args.out.display()))?;
    let out = args.out.join(package::file_name(&manifest.id, &manifest.version));
    qiao_directory::write_atomic(&out, &bytes)?;
    println!(
        "packed {} {} (WIT {}, publisher {})",
        manifest.id, manifest.version, manifest.wit, manifest.publisher
    );
    println!("  {}  {} bytes  sha256 {}", out.display(), bytes.len(), qiao_directory::sha256_hex(&bytes));
    for line in manifest.capabilities.describe_lines() {
        println!("  requests: {line}");
    }
    println!("next: qiao connector sign {} --key <publisher>.key", out.display());
    Ok(())
}

/// Signs package bytes with the publisher key; returns the `.minisig` text.
pub fn sign_package(bytes: &[u8], key: &SigningKey) -> Result<(Manifest, String)> {
    let pkg = package::read(bytes)?;
    let m = pkg.manifest;
    let comment = package::signature_comment(&m.id, &m.version, &qiao_directory::sha256_hex(bytes));
    let signature = key.sign(bytes, &comment)?;
    Ok((m, signature))
}

/// `qiao connector sign PKG --key KEY`: writes `PKG.minisig`.
pub fn sign(package_path: &Path, key_path: &Path, password: &PasswordArgs) -> Result<()> {
    let bytes =
        std::fs::read(package_path).with_context(|| format!("failed to read {}", package_path.display()))?;
    let key = SigningKey::load(key_path, password.password()?)?;
    let (m, signature) = sign_package(&bytes, &key)?;
    let sig_path = signature_path(package_path);
    qiao_directory::write_atomic(&sig_path, signature.as_bytes())?;
    println!("signed {} {} with key {}: {}", m.id, m.version, key.key_id(), sig_path.display());
    Ok(())
}

/// `PKG.minisig` next to `PKG`.
pub fn signature_path(package_path: &Path) -> PathBuf {
    let mut name = package_path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".{SIGNATURE_EXTENSION}"));
    package_path.with_file_name(name)
}
