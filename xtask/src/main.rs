//! Project tasks, run as `cargo xtask <task>`:
//!
//! - `build-connectors`: adds the `wasm32-wasip2` target when missing, builds every crate under
//!   `connectors/` and `tests/guests/` to a component with the size-optimised `connector`
//!   profile, and copies each to `target/connectors/<name>.wasm` (the crate name without its
//!   `qiao-connector-` / `qiao-guest-` prefix).
//! - `demo`: `build-connectors`, builds `qiao`, then `qiao demo`: the sandbox fakes of Jira,
//!   DingTalk, SAP, Kingdee and Yonyou in-process, every flow of `flows/` run once against them,
//!   and what moved where.
//! - `test`: `build-connectors`, then `cargo test --workspace` (extra arguments are passed on).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

const WASM_TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "connector";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let root = workspace_root()?;
    match task.as_str() {
        "build-connectors" => build_connectors(&root).map(|_| ()),
        "demo" => demo(&root),
        "test" => {
            build_connectors(&root)?;
            let mut cmd = cargo();
            cmd.current_dir(&root).args(["test", "--workspace"]).args(&rest);
            run(&mut cmd, "cargo test")
        }
        _ => {
            eprintln!("usage: cargo xtask <build-connectors | demo | test [cargo test args...]>");
            std::process::exit(2);
        }
    }
}

fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("failed to start {what}"))?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    Ok(())
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).context("xtask has no parent directory")
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"))
}

/// Adds the wasm target through rustup when the active toolchain lacks it.
fn ensure_wasm_target(root: &Path) -> Result<()> {
    let out = Command::new("rustup")
        .current_dir(root)
        .args(["target", "list", "--installed"])
        .output()
        .context("failed to run rustup (needed to add the wasm32-wasip2 target)")?;
    if String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == WASM_TARGET) {
        return Ok(());
    }
    eprintln!("xtask: adding the {WASM_TARGET} target");
    run(Command::new("rustup").current_dir(root).args(["target", "add", WASM_TARGET]), "rustup target add")
}

/// The package name in a crate's Cargo.toml.
fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("failed to read {}", manifest.display()))?;
    let mut in_package = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package && let Some(v) = line.strip_prefix("name") {
            let v = v.trim_start().trim_start_matches('=').trim().trim_matches('"');
            return Ok(v.to_string());
        }
    }
    bail!("no [package] name in {}", manifest.display())
}

/// Crates to build: every directory with a Cargo.toml under `connectors/` and `tests/guests/`.
fn wasm_crates(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for dir in ["connectors", "tests/guests"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            let manifest = p.join("Cargo.toml");
            if manifest.is_file() {
                names.push(package_name(&manifest)?);
            }
        }
    }
    Ok(names)
}

fn short_name(package: &str) -> &str {
    package.strip_prefix("qiao-connector-").or_else(|| package.strip_prefix("qiao-guest-")).unwrap_or(package)
}

fn build_connectors(root: &Path) -> Result<Vec<PathBuf>> {
    ensure_wasm_target(root)?;
    let crates = wasm_crates(root)?;
    if crates.is_empty() {
        bail!("no connector crates found under connectors/ or tests/guests/");
    }
    let mut cmd = cargo();
    cmd.current_dir(root).args(["build", "--profile", PROFILE, "--target", WASM_TARGET]);
    for c in &crates {
        cmd.args(["-p", c]);
    }
    run(&mut cmd, "cargo build (connectors)")?;
    let target = target_dir(root);
    let built = target.join(WASM_TARGET).join(PROFILE);
    let out_dir = target.join("connectors");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("failed to create {}", out_dir.display()))?;
    let mut outputs = Vec::new();
    for c in &crates {
        let from = built.join(format!("{}.wasm", c.replace('-', "_")));
        let to = out_dir.join(format!("{}.wasm", short_name(c)));
        std::fs::copy(&from, &to)
            .with_context(|| format!("failed to copy {} to {}", from.display(), to.display()))?;
        let size = std::fs::metadata(&to).map(|m| m.len()).unwrap_or(0);
        eprintln!("xtask: {} ({} KiB)", to.display(), size / 1024);
        outputs.push(to);
    }
    Ok(outputs)
}

fn demo(root: &Path) -> Result<()> {
    build_connectors(root)?;
    let mut cmd = cargo();
    cmd.current_dir(root).args(["build", "--quiet", "-p", "qiao"]);
    run(&mut cmd, "cargo build -p qiao")?;
    let qiao = target_dir(root).join("debug").join("qiao");
    let state = target_dir(root).join("demo-state");
    let connectors = target_dir(root).join("connectors");
    let flows = root.join("flows");
    let step = |args: &[&str]| -> Result<()> {
        println!("\n$ qiao {}", args.join(" "));
        let mut cmd = Command::new(&qiao);
        cmd.arg("--state").arg(&state).args(args);
        run(&mut cmd, "qiao")
    };
    let connectors_arg = connectors.display().to_string();
    let flows_arg = flows.display().to_string();
    step(&["demo", "--flows", &flows_arg, "--connectors", &connectors_arg])?;
    let demo_state = state.join("demo").display().to_string();
    println!("\n$ qiao --state {demo_state} runs list");
    run(Command::new(&qiao).args(["--state", &demo_state, "runs", "list"]), "qiao runs list")?;
    Ok(())
}
