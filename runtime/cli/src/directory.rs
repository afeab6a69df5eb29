//! `qiao directory …`: maintain a directory — a static folder of signed packages and a signed
//! index that any HTTP server (or a file path) can serve.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use jiff::{Timestamp, ToSpan};
use qiao_directory::directory::{Added, Directory};
use qiao_directory::keys::{self, SigningKey};
use qiao_directory::manifest::{AuthorCapabilities, AuthorManifest};

use crate::connector::author;
use crate::key::PasswordArgs;

/// The publisher id of first-party connectors.
pub const FIRST_PARTY_PUBLISHER: &str = "qiao";

/// Directory commands.
#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Create a directory in DIR and sign its first (empty) index.
    Init {
        /// The folder to serve.
        dir: PathBuf,
        /// The directory's name (kebab-case).
        #[arg(long)]
        name: String,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Add signed packages (each with PKG.minisig next to it) to the draft index.
    Add {
        /// The directory.
        dir: PathBuf,
        /// Packages (ID-VERSION.qpkg).
        #[arg(required = true)]
        packages: Vec<PathBuf>,
        /// Register this public key (.pub) for the packages' publisher first.
        #[arg(long, value_name = "PUB")]
        publisher_key: Option<PathBuf>,
    },
    /// Yank a version (ranges skip it, exact requests are refused), or restore it with --undo.
    Yank {
        /// The directory.
        dir: PathBuf,
        /// `ID@VERSION`.
        target: String,
        /// Why, shown to admins.
        #[arg(long)]
        reason: Option<String>,
        /// Restore a yanked version.
        #[arg(long)]
        undo: bool,
    },
    /// Sign the draft: bump the serial, set the expiry, write index.json and its signature.
    Build {
        /// The directory.
        dir: PathBuf,
        #[command(flatten)]
        signing: SigningArgs,
    },
    /// Build, pack and sign the first-party connectors (connectors/*) into a directory and
    /// sign its index; creates the directory if needed.
    FirstParty(FirstPartyArgs),
}

/// The directory key and the index's lifetime.
#[derive(Debug, clap::Args)]
pub struct SigningArgs {
    /// The directory's secret key.
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    password: PasswordArgs,
    /// Days until the index expires and clients refuse it.
    #[arg(long, default_value_t = 30)]
    valid_days: i64,
    /// Expiry as an RFC 3339 time instead of --valid-days.
    #[arg(long, conflicts_with = "valid_days")]
    expires: Option<Timestamp>,
}

impl SigningArgs {
    fn expires(&self) -> Result<Timestamp> {
        match self.expires {
            Some(t) => Ok(t),
            None => Ok(Timestamp::now().checked_add(self.valid_days.saturating_mul(24).hours())?),
        }
    }

    fn key(&self) -> Result<SigningKey> {
        Ok(SigningKey::load(&self.key, self.password.password()?)?)
    }
}

/// Arguments of `qiao directory first-party`.
#[derive(Debug, clap::Args)]
pub struct FirstPartyArgs {
    /// The directory folder.
    dir: PathBuf,
    #[command(flatten)]
    signing: SigningArgs,
    /// The first-party publisher's secret key (signs the packages; publisher "qiao").
    #[arg(long, value_name = "KEY")]
    publisher_key: PathBuf,
    /// The qiao source tree. Default: the one this qiao was built from.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Built components (`NAME.wasm`). Default: $CARGO_TARGET_DIR/connectors (or target/connectors).
    #[arg(long)]
    wasm_dir: Option<PathBuf>,
    /// Only these connectors (names under connectors/); repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Skip connectors that are not built instead of building them with cargo.
    #[arg(long)]
    no_build: bool,
    /// The directory's name, when it is created.
    #[arg(long, default_value = "first-party")]
    name: String,
}

pub async fn run(cmd: DirectoryCommand, state: &Path) -> Result<()> {
    match cmd {
        DirectoryCommand::Init { dir, name, signing } => {
            let key = signing.key()?;
            let mut d = Directory::init(&dir, &name)?;
            let serial = d.build(&key, signing.expires()?)?;
            println!("created directory {name} in {} (serial {serial})", dir.display());
            println!("directory key {} — admins trust it with, in $QIAO_HOME/config.yaml:", key.key_id());
            println!(
                "directories:\n  - name: {name}\n    url: <where DIR is served, or its path>\n    key: {}",
                key.public_key()
            );
            Ok(())
        }
        DirectoryCommand::Add { dir, packages, publisher_key } => {
            let mut d = Directory::open(&dir)?;
            for path in &packages {
                let bytes =
                    std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
                let sig_path = author::signature_path(path);
                let signature = std::fs::read_to_string(&sig_path).with_context(|| {
                    format!(
                        "failed to read the signature {} (sign with `qiao connector sign`)",
                        sig_path.display()
                    )
                })?;
                if let Some(pk) = &publisher_key {
                    let pkg = qiao_directory::package::read(&bytes)?;
                    d.add_publisher_key(&pkg.manifest.publisher, &keys::read_public_key(pk)?)?;
                }
                let (m, added) = d.add(&bytes, &signature)?;
                match added {
                    Added::New => println!("added {} {} (publisher {})", m.id, m.version, m.publisher),
                    Added::Unchanged => println!("{} {} is already in the directory", m.id, m.version),
                }
            }
            d.save()?;
            println!("run `qiao directory build {} --key <directory key>` to publish", dir.display());
            Ok(())
        }
        DirectoryCommand::Yank { dir, target, reason, undo } => {
            let Some((id, version)) = target.split_once('@') else {
                bail!("expected ID@VERSION, got {target:?}")
            };
            let mut d = Directory::open(&dir)?;
            d.yank(id, version.trim_start_matches('='), !undo, reason)?;
            d.save()?;
            println!(
                "{} {id} {version}; run `qiao directory build` to publish",
                if undo { "restored" } else { "yanked" }
            );
            Ok(())
        }
        DirectoryCommand::Build { dir, signing } => {
            let key = signing.key()?;
            let mut d = Directory::open(&dir)?;
            let serial = d.build(&key, signing.expires()?)?;
            println!(
                "signed index of {} with key {}: serial {serial}, expires {}",
                d.draft.name,
                key.key_id(),
                d.draft.expires
            );
            Ok(())
        }
        DirectoryCommand::FirstParty(args) => first_party(args, state).await,
    }
}

/// The component of first-party connector `name`: built already, or built now.
fn first_party_wasm(name: &str, root: &Path, wasm_dir: &Path, no_build: bool) -> Result<Option<PathBuf>> {
    let built = wasm_dir.join(format!("{name}.wasm"));
    if built.is_file() {
        return Ok(Some(built));
    }
    if no_build {
        eprintln!("warning: skipping {name}: {} is missing", built.display());
        return Ok(None);
    }
    let crate_name = format!("qiao-connector-{name}");
    let status = author::cargo()
        .current_dir(root)
        .args(["build", "-p", &crate_name, "--target", "wasm32-wasip2", "--profile", "connector"])
        .status()
        .context("failed to run cargo")?;
    if !status.success() {
        bail!("cargo build -p {crate_name} failed");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(|d| root.join(d)).unwrap_or_else(|| root.join("target"));
    let wasm = target
        .join("wasm32-wasip2/connector")
        .join(format!("qiao_connector_{}.wasm", name.replace('-', "_")));
    if !wasm.is_file() {
        bail!("cargo built no component at {}", wasm.display());
    }
    Ok(Some(wasm))
}

async fn first_party(args: FirstPartyArgs, state: &Path) -> Result<()> {
    let root = args.source.clone().unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let wasm_dir = args.wasm_dir.clone().unwrap_or_else(|| {
        std::env::var_os("CARGO_TARGET_DIR")
            .map(|d| root.join(d))
            .unwrap_or_else(|| root.join("target"))
            .join("connectors")
    });
    let dir_key = args.signing.key()?;
    let publisher = SigningKey::load(&args.publisher_key, args.signing.password.password()?)?;
    let mut d = if args.dir.join(qiao_directory::directory::DRAFT_FILE).is_file() {
        Directory::open(&args.dir)?
    } else {
        Directory::init(&args.dir, &args.name)?
    };
    d.add_publisher_key(FIRST_PARTY_PUBLISHER, &publisher.public_key())?;

    let connectors_dir = root.join("connectors");
    let mut names: Vec<String> = std::fs::read_dir(&connectors_dir)
        .with_context(|| format!("failed to read {}", connectors_dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for only in &args.only {
        if !names.contains(only) {
            bail!("--only {only}: there is no connectors/{only} in {}", root.display());
        }
    }
    if !args.only.is_empty() {
        names.retain(|n| args.only.contains(n));
    }
    let author = AuthorManifest {
        publisher: FIRST_PARTY_PUBLISHER.into(),
        // First-party connectors talk to on-premise systems (and the local sandbox).
        capabilities: AuthorCapabilities { private_network: true, ..Default::default() },
        ..Default::default()
    };
    let mut added = 0;
    for name in &names {
        let Some(wasm) = first_party_wasm(name, &root, &wasm_dir, args.no_build)? else { continue };
        let readme = std::fs::read_to_string(connectors_dir.join(name).join("README.md")).ok();
        let (m, bytes) = author::pack_component(&wasm, &author, readme, state)
            .await
            .with_context(|| format!("failed to pack connector {name}"))?;
        let (_, signature) = author::sign_package(&bytes, &publisher)?;
        match d.add(&bytes, &signature)? {
            (_, Added::New) => println!("added {} {}", m.id, m.version),
            (_, Added::Unchanged) => println!("{} {} is already in the directory", m.id, m.version),
        }
        added += 1;
    }
    if added == 0 {
        bail!("no first-party connector was packed");
    }
    let serial = d.build(&dir_key, args.signing.expires()?)?;
    println!(
        "signed index of {} (serial {serial}); directory key {}: {}",
        d.draft.name,
        dir_key.key_id(),
        dir_key.public_key()
    );
    Ok(())
}
