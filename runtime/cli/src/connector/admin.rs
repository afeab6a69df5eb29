//! The admin side: `qiao connector search|info|install|upgrade|remove|lock|rollback`.
//!
//! Everything that decides trust lives in `qiao-directory`; this module fetches, asks for
//! approval, precompiles through the host, and prints.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use qiao_directory::config::Config;
use qiao_directory::fetch::Fetcher;
use qiao_directory::install::{self, Candidate, Request};
use qiao_directory::installed;
use qiao_directory::lock::{self, LockFile, Pin};
use qiao_directory::remote::{self, VerifiedIndex};
use qiao_flow::{ConnectorCatalog, FileSecrets};
use semver::{Version, VersionReq};
use serde_json::{Value, json};

use crate::catalog::{Catalog, ConnectorDirs};

async fn indexes(state: &Path, fetcher: &Fetcher) -> Result<Vec<VerifiedIndex>> {
    let config = Config::load(state)?;
    let dirs = config.require_directories(state)?;
    Ok(remote::fetch_all(state, dirs, fetcher).await?)
}

/// `qiao connector search [QUERY]`.
pub async fn search(query: Option<String>, json: bool, state: &Path) -> Result<()> {
    let fetcher = Fetcher::new()?;
    let indexes = indexes(state, &fetcher).await?;
    let query = query.map(|q| q.to_lowercase());
    let mut rows = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for v in &indexes {
        for (id, c) in &v.index.connectors {
            if !seen.insert(id.clone()) {
                continue; // owned by an earlier directory
            }
            let text = format!("{id} {} {}", c.title, c.description).to_lowercase();
            if query.as_ref().is_some_and(|q| !text.contains(q)) {
                continue;
            }
            let newest =
                v.index.versions(id).into_iter().find(|(_, e)| !e.yanked).map(|(v, _)| v.to_string());
            rows.push(json!({
                "id": id, "version": newest, "publisher": c.publisher, "title": c.title,
                "description": c.description, "directory": v.directory,
            }));
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else if rows.is_empty() {
        println!("no connectors found");
    } else {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "newest", "publisher", "directory", "title"]);
        for r in &rows {
            let cell = |k: &str| r[k].as_str().unwrap_or("-").to_string();
            table.add_row([cell("id"), cell("version"), cell("publisher"), cell("directory"), cell("title")]);
        }
        println!("{table}");
    }
    Ok(())
}

/// `qiao connector info ID`.
pub async fn info(id: &str, json: bool, state: &Path) -> Result<()> {
    let fetcher = Fetcher::new()?;
    let indexes = indexes(state, &fetcher).await?;
    let Some(v) = indexes.iter().find(|v| v.index.connectors.contains_key(id)) else {
        bail!("connector {id} is not in any configured directory");
    };
    let c = &v.index.connectors[id];
    let keys: Vec<String> = v
        .index
        .publishers
        .get(&c.publisher)
        .map(|p| p.keys.iter().filter_map(|k| qiao_directory::keys::public_key_id(k).ok()).collect())
        .unwrap_or_default();
    let installed: Vec<String> =
        installed::versions_of(state, id)?.iter().map(|i| i.version.to_string()).collect();
    if json {
        let versions: BTreeMap<&String, Value> = c
            .versions
            .iter()
            .map(|(ver, e)| {
                (
                    ver,
                    json!({
                        "published": e.published, "size": e.size, "sha256": e.sha256, "wit": e.wit,
                        "runtime": e.runtime, "capabilities": e.capabilities, "yanked": e.yanked,
                        "yank_reason": e.yank_reason,
                    }),
                )
            })
            .collect();
        let out = json!({
            "id": id, "title": c.title, "description": c.description, "publisher": c.publisher,
            "publisher_keys": keys, "directory": v.directory, "serial": v.index.serial,
            "versions": versions, "installed": installed,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{id} — {}", c.title);
    if !c.description.is_empty() {
        println!("{}", c.description);
    }
    println!("publisher: {} (keys {})", c.publisher, keys.join(", "));
    println!("directory: {} (index serial {}, expires {})", v.directory, v.index.serial, v.index.expires);
    println!("installed: {}", if installed.is_empty() { "none".into() } else { installed.join(", ") });
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header([
        "version",
        "published",
        "wit",
        "runtime",
        "requests",
        "status",
    ]);
    for (ver, e) in v.index.versions(id) {
        let status = if e.yanked {
            format!("yanked{}", e.yank_reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())
        } else {
            String::new()
        };
        table.add_row([
            ver.to_string(),
            e.published.strftime("%Y-%m-%d").to_string(),
            e.wit.clone(),
            e.runtime.clone(),
            e.capabilities.describe_lines().join("\n"),
            status,
        ]);
    }
    println!("{table}");
    Ok(())
}

/// Shows what a version requests and asks for approval (or takes `--yes`).
fn approve(
    c: &Candidate,
    caps: &qiao_directory::manifest::Capabilities,
    key_id: &str,
    yes: bool,
) -> Result<()> {
    println!(
        "{} {} from directory {:?} (publisher {}, signed by key {key_id}) requests:",
        c.id, c.version, c.directory, c.publisher
    );
    for line in caps.describe_lines() {
        println!("  - {line}");
    }
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "installing {} {} needs approval of the capabilities above: answer in a terminal or pass --yes",
            c.id,
            c.version
        );
    }
    print!("install {} {}? [y/N] ", c.id, c.version);
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        bail!("installation of {} {} declined; nothing was installed", c.id, c.version);
    }
    Ok(())
}

/// Downloads, verifies, approves, precompiles and installs one candidate.
async fn install_candidate(c: Candidate, yes: bool, state: &Path, fetcher: &Fetcher) -> Result<PathBuf> {
    let label = format!("{} {}", c.id, c.version);
    let bar =
        indicatif::ProgressBar::with_draw_target(Some(c.entry.size), indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("downloading {label}"));
    let staged = install::stage(state, c, fetcher, &mut |done, _| bar.set_position(done)).await;
    bar.finish_and_clear();
    let staged = staged?;
    let key_id = qiao_directory::keys::signature_key_id(&staged.candidate.entry.signature)?;
    println!(
        "verified {label}: size, sha256, publisher signature (key {key_id}), directory signature, WIT {}",
        staged.manifest.wit
    );
    approve(&staged.candidate, staged.capabilities(), &key_id, yes)?;
    // Precompile into the compile cache (keyed by the component's sha256) and check what the
    // component says about itself against the manifest.
    let description = crate::connector::author::describe(&staged.wasm_path(), state)
        .await
        .with_context(|| format!("{label} does not load"))?;
    staged.check_description(&description)?;
    let dir = staged.commit(state)?;
    println!("installed {label} in {}", dir.display());
    Ok(dir)
}

/// `qiao connector install REQ...`.
pub async fn install(requests: &[String], yes: bool, state: &Path) -> Result<()> {
    let fetcher = Fetcher::new()?;
    let indexes = indexes(state, &fetcher).await?;
    for text in requests {
        let request: Request = text.parse()?;
        let c = install::choose(&indexes, &request)?;
        if installed::version_dir(state, &c.id, &c.version).exists() {
            println!("{} {} is already installed", c.id, c.version);
            continue;
        }
        install_candidate(c, yes, state, &fetcher).await?;
    }
    Ok(())
}

/// sha256 of an installed version's component.
fn installed_sha(state: &Path, id: &str, version: &Version) -> Result<String> {
    let wasm = installed::version_dir(state, id, version).join(qiao_directory::package::WASM_FILE);
    Ok(qiao_directory::sha256_hex(&qiao_directory::read(&wasm)?))
}

/// Moves the pins of `id` in every registered lock file to `to` where `pick` allows.
fn repin(state: &Path, id: &str, pick: impl Fn(&Pin) -> Option<Version>) -> Result<usize> {
    let mut moved = 0;
    for (path, mut lock) in lock::registered(state)? {
        let Some(pin) = lock.connectors.get(id) else { continue };
        let Some(to) = pick(pin) else { continue };
        if to.to_string() == pin.version {
            continue;
        }
        let from = pin.version.clone();
        let sha256 = installed_sha(state, id, &to)?;
        let requests = pin.requests.clone();
        lock.connectors.insert(id.to_string(), Pin { version: to.to_string(), sha256, requests });
        lock.save(&path, state)?;
        println!("{}: {id} {from} -> {to}", path.display());
        moved += 1;
    }
    Ok(moved)
}

fn satisfies_all(requests: &[String], v: &Version) -> bool {
    requests.iter().all(|r| VersionReq::parse(r).is_ok_and(|req| req.matches(v)))
}

/// `qiao connector upgrade [ID...]`: installs the newest version of each (default: every
/// installed connector) and moves lock files whose flows accept it.
pub async fn upgrade(ids: &[String], yes: bool, state: &Path) -> Result<()> {
    let mut targets: Vec<String> = ids.to_vec();
    if targets.is_empty() {
        targets = installed::list(state)?.into_iter().filter(|i| i.receipt.is_some()).map(|i| i.id).collect();
        targets.dedup();
        if targets.is_empty() {
            println!("nothing installed from a directory");
            return Ok(());
        }
    }
    let fetcher = Fetcher::new()?;
    let indexes = indexes(state, &fetcher).await?;
    for id in &targets {
        let current = installed::versions_of(state, id)?.into_iter().map(|i| i.version).max();
        let newest = install::choose(&indexes, &Request { id: id.clone(), req: VersionReq::STAR })?;
        match &current {
            Some(cur) if &newest.version <= cur => {
                println!("{id} {cur} is up to date");
                continue;
            }
            _ => {}
        }
        let to = newest.version.clone();
        install_candidate(newest, yes, state, &fetcher).await?;
        repin(state, id, |pin| satisfies_all(&pin.requests, &to).then(|| to.clone()))?;
    }
    Ok(())
}

/// `qiao connector rollback ID`: pins every lock file that pins `id` to the newest installed
/// version older than its current pin (that its flows accept).
pub fn rollback(id: &str, state: &Path) -> Result<()> {
    let versions: Vec<Version> = installed::versions_of(state, id)?.into_iter().map(|i| i.version).collect();
    let locks = lock::registered(state)?;
    if !locks.iter().any(|(_, l)| l.connectors.contains_key(id)) {
        bail!(
            "no lock file pins {id}; lock the flows with `qiao connector lock DIR`, or remove the newer version \
             (flows without a lock use the newest installed version)"
        );
    }
    let moved = repin(state, id, |pin| {
        let current = Version::parse(&pin.version).ok()?;
        versions.iter().filter(|v| **v < current && satisfies_all(&pin.requests, v)).max().cloned()
    })?;
    if moved == 0 {
        bail!("no older installed version of {id} fits the flows that pin it");
    }
    Ok(())
}

/// `qiao connector remove ID[@VERSION]`.
pub fn remove(target: &str, force: bool, state: &Path) -> Result<()> {
    let (id, version) = match target.split_once('@') {
        Some((id, v)) => (id, Some(qiao_directory::parse_version("version", v.trim_start_matches('='))?)),
        None => (target, None),
    };
    qiao_directory::check_id("connector id", id)?;
    let versions: Vec<Version> = match version {
        Some(v) => vec![v],
        None => installed::versions_of(state, id)?.into_iter().map(|i| i.version).collect(),
    };
    if versions.is_empty() {
        bail!("{id} is not installed");
    }
    if !force {
        for v in &versions {
            let pinned = lock::pinned_by(state, id, &v.to_string())?;
            if !pinned.is_empty() {
                return Err(qiao_directory::Error::InUse {
                    id: id.into(),
                    version: v.to_string(),
                    locks: pinned.iter().map(|p| p.display().to_string()).collect(),
                }
                .into());
            }
        }
    }
    for v in &versions {
        installed::remove(state, id, v)?;
        println!("removed {id} {v}");
    }
    Ok(())
}

/// Arguments of `qiao connector lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The folder of flows to lock (qiao.lock is written there), or one flow file.
    flows: PathBuf,
    /// Pin this version instead of the newest that fits (e.g. to roll back); repeatable.
    #[arg(long = "pin", value_name = "ID@VERSION")]
    pins: Vec<String>,
    #[command(flatten)]
    connectors: ConnectorDirs,
}

/// One connector reference of a flow: name, request, and the version it resolved to.
type Asked = (String, Option<VersionReq>, Result<String, String>);

/// Records what flows ask the catalog for.
struct Recorder<'a> {
    inner: &'a Catalog,
    asked: std::cell::RefCell<Vec<Asked>>,
}

impl ConnectorCatalog for Recorder<'_> {
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<qiao_contract::ConnectorInfo, String> {
        let r = self.inner.resolve(name, req);
        self.asked.borrow_mut().push((
            name.to_string(),
            req.cloned(),
            r.as_ref().map(|i| i.version.clone()).map_err(Clone::clone),
        ));
        r
    }
}

/// `qiao connector lock FLOWS [--pin ID@VERSION]`.
pub async fn lock(args: LockArgs, state: &Path) -> Result<()> {
    let lock_dir = if args.flows.is_dir() {
        args.flows.clone()
    } else {
        args.flows.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
    };
    let files = crate::validate::flow_files(&args.flows)?;
    let catalog = Catalog::discover(&args.connectors, state).await?;
    let secrets = FileSecrets::open(state)?;
    let recorder = Recorder { inner: &catalog, asked: Default::default() };
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("failed to read {}", file.display()))?;
        // Other problems (a missing secret, say) do not stop locking; validate reports them.
        let _ = qiao_flow::load(&file.display().to_string(), &text, &recorder, &secrets);
    }
    let mut pins: BTreeMap<String, Version> = BTreeMap::new();
    for p in &args.pins {
        let Some((id, v)) = p.split_once('@') else { bail!("--pin {p:?}: expected ID@VERSION") };
        pins.insert(
            id.to_string(),
            qiao_directory::parse_version("--pin version", v.trim_start_matches('='))?,
        );
    }
    let mut requests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, req, result) in recorder.asked.into_inner() {
        if let Err(e) = result {
            problems.push(e);
        }
        let reqs = requests.entry(name).or_default();
        let text = req.map(|r| r.to_string()).unwrap_or_else(|| "*".into());
        if !reqs.contains(&text) {
            reqs.push(text);
        }
    }
    if !problems.is_empty() {
        bail!("cannot lock {}: {}", args.flows.display(), problems.join("; "));
    }
    if requests.is_empty() {
        bail!("the flows in {} use no connectors", args.flows.display());
    }
    let mut lock = LockFile::default();
    for (id, reqs) in requests {
        let fitting: Vec<&crate::catalog::Found> = catalog
            .connectors
            .iter()
            .filter(|f| f.info().id == id)
            .filter(|f| Version::parse(&f.info().version).is_ok_and(|v| satisfies_all(&reqs, &v)))
            .collect();
        let chosen = match pins.remove(&id) {
            Some(v) => {
                fitting.iter().find(|f| f.info().version == v.to_string()).copied().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--pin {id}@{v}: that version is not installed or does not fit the flows ({})",
                        reqs.join(", ")
                    )
                })?
            }
            None => {
                fitting.iter().max_by_key(|f| Version::parse(&f.info().version).ok()).copied().ok_or_else(
                    || anyhow::anyhow!("no installed version of {id} fits every flow ({})", reqs.join(", ")),
                )?
            }
        };
        lock.connectors.insert(
            id.clone(),
            Pin {
                version: chosen.info().version.clone(),
                sha256: chosen.connector.sha256().to_string(),
                requests: reqs,
            },
        );
    }
    if let Some(id) = pins.keys().next() {
        bail!("--pin {id}: no flow in {} uses it", args.flows.display());
    }
    let path = lock::lock_path(&lock_dir);
    lock.save(&path, state)?;
    for (id, pin) in &lock.connectors {
        println!("{id} {} ({})", pin.version, pin.requests.join(", "));
    }
    println!("wrote {}", path.display());
    Ok(())
}
