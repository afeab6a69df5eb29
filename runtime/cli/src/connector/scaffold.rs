//! `qiao connector new <name>`: a connector crate on `qiao-sdk` that builds and passes its own
//! tests out of the box, offline.
//!
//! The crate depends on the SDK by path (the repository's `sdk/`, found from where this binary
//! was built, or `--sdk-path`) and starts from a copy of the repository's `Cargo.lock` and
//! `rust-toolchain.toml`, so it resolves to crates already in the local cargo cache and builds
//! with the same toolchain.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Arguments of `qiao connector new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The connector id (kebab-case); also the crate name.
    name: String,
    /// Where to create the crate. Default: ./<name>.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// The qiao SDK (`sdk/` of a qiao checkout). Default: the one this qiao was built from.
    #[arg(long)]
    sdk_path: Option<PathBuf>,
    /// Publisher id written into qiao-connector.yaml.
    #[arg(long, default_value = "my-company")]
    publisher: String,
}

/// The repository this binary was built from.
fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn title_of(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn run(args: NewArgs) -> Result<()> {
    qiao_directory::check_id("connector name", &args.name)?;
    qiao_directory::check_id("publisher id", &args.publisher)?;
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from(&args.name));
    if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        bail!("{} already exists and is not empty", dir.display());
    }
    let sdk = args.sdk_path.clone().unwrap_or_else(|| source_root().join("sdk"));
    let sdk_manifest = std::fs::read_to_string(sdk.join("Cargo.toml")).with_context(|| {
        format!("no qiao SDK at {}: pass --sdk-path to the sdk/ folder of a qiao checkout", sdk.display())
    })?;
    if !sdk_manifest.lines().any(|l| l.trim() == "name = \"qiao-sdk\"") {
        bail!("{} is not the qiao SDK (its Cargo.toml does not name qiao-sdk)", sdk.display());
    }
    let sdk = std::path::absolute(&sdk)?
        .canonicalize()
        .with_context(|| format!("failed to resolve {}", sdk.display()))?;
    let repo = sdk.parent().map(Path::to_path_buf).unwrap_or_default();

    let type_name: String = title_of(&args.name).replace(' ', "");
    let title = title_of(&args.name);
    let fill = |t: &str| {
        t.replace("{{name}}", &args.name)
            .replace("{{type}}", &type_name)
            .replace("{{title}}", &title)
            .replace("{{publisher}}", &args.publisher)
            .replace("{{sdk}}", &sdk.display().to_string().replace('\\', "/"))
    };
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("failed to create {}", dir.display()))?;
    let files = [
        ("Cargo.toml", CARGO_TOML),
        ("src/lib.rs", LIB_RS),
        ("qiao-connector.yaml", MANIFEST),
        ("README.md", README),
        (".gitignore", "/target\n*.qpkg\n*.minisig\n"),
    ];
    for (name, template) in files {
        let path = dir.join(name);
        std::fs::write(&path, fill(template))
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    // Same dependency versions and toolchain as the SDK's workspace: builds offline.
    for name in ["Cargo.lock", "rust-toolchain.toml"] {
        let from = repo.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("failed to copy {}", from.display()))?;
        }
    }
    println!("created connector {} in {}", args.name, dir.display());
    println!("  cargo test                      # its unit tests, natively");
    println!("  qiao connector build            # the Wasm component (wasm32-wasip2, size-optimised)");
    println!("  qiao connector pack --out dist  # dist/{}-0.1.0.qpkg", args.name);
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
# cdylib: the Wasm component; rlib: native unit tests.
crate-type = ["cdylib", "rlib"]

[dependencies]
qiao-sdk = { path = "{{sdk}}" }
serde = { version = "1", features = ["derive"] }
serde_json = "1"

# `qiao connector build`: a small component (the host compiles it once and caches it).
[profile.connector]
inherits = "release"
opt-level = "s"
lto = true
codegen-units = 1
strip = true
panic = "abort"

# A crate of its own, even when created inside another workspace.
[workspace]
"#;

const MANIFEST: &str = r#"# What the package asks the admin for. `qiao connector pack` completes this file from the
# component's describe() (id, version, operations, config schema) and its WIT version.
publisher: {{publisher}}
capabilities:
  # Outbound hosts; default: all hosts describe() declares. Never more than it declares.
  # hosts: ["{config.base_url}"]
  # Private and loopback addresses (on-premise systems).
  private_network: false
  # memory_mib: 64
"#;

const README: &str = r#"# {{title}}

A qiao connector.

## Operations

| operation | kind | input | output |
| --- | --- | --- | --- |
| `greet` | action | `{"name": "世界"}` | `{"message": "Hello, 世界!", "version": "0.1.0"}` |

## Config

| field | required | secret | description |
| --- | --- | --- | --- |
| `greeting` | no | no | How to greet (default `Hello`) |

## Granted hosts

None: the connector makes no outbound calls.

## Build and publish

```sh
cargo test
qiao connector build
qiao connector pack --out dist
qiao connector sign dist/{{name}}-0.1.0.qpkg --key {{publisher}}.key
```
"#;

const LIB_RS: &str = r#"//! {{title}}: a qiao connector.

use qiao_sdk::{
    ActionOutput, Connector, Error, Info, InvokeRequest, Operation, OperationKind, Result, Value, json,
};
use serde::Deserialize;

/// The connection config.
#[derive(Deserialize)]
struct Config {
    #[serde(default = "default_greeting")]
    greeting: String,
}

fn default_greeting() -> String {
    "Hello".into()
}

/// Input of the `greet` action.
#[derive(Deserialize)]
struct GreetInput {
    name: String,
}

/// The connector.
pub struct {{type}};

impl Connector for {{type}} {
    fn describe() -> Info {
        Info {
            id: "{{name}}".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            title: "{{title}}".into(),
            description: "Greets whoever it is given.".into(),
            config_schema: json!({
                "type": "object",
                "properties": {
                    "greeting": {"type": "string", "description": "How to greet (default: Hello)"}
                }
            }),
            operations: vec![Operation {
                name: "greet".into(),
                kind: OperationKind::Action,
                description: "Returns a greeting for `name`.".into(),
                params_schema: None,
                input_schema: Some(json!({
                    "type": "object",
                    "required": ["name"],
                    "properties": {"name": {"type": "string"}}
                })),
                output_schema: Some(json!({
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "version": {"type": "string"}}
                })),
            }],
            // Outbound hosts, templated from the config, e.g. "{config.base_url}".
            hosts: vec![],
            webhook: false,
        }
    }

    fn validate_config(config: &Value) -> Result<()> {
        let config: Config = qiao_sdk::parse_config(config)?;
        if config.greeting.trim().is_empty() {
            return Err(Error::config("greeting must not be empty"));
        }
        Ok(())
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            "greet" => greet(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }
}

qiao_sdk::export_connector!({{type}});

fn greet(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config: Config = req.config()?;
    let input: GreetInput = req.input()?;
    if input.name.trim().is_empty() {
        return Err(Error::invalid_input("name must not be empty"));
    }
    Ok(ActionOutput::new(json!({
        "message": format!("{}, {}!", config.greeting, input.name),
        "version": env!("CARGO_PKG_VERSION"),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;

    fn greet_with(config: Value, input: Value) -> Result<ActionOutput> {
        {{type}}::invoke(InvokeRequest { op: "greet", config: &config, input: &input, idempotency_key: "k" })
    }

    #[test]
    fn describes_itself() {
        let info = {{type}}::describe();
        assert_eq!(info.id, "{{name}}");
        assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
        assert_eq!(info.operations[0].name, "greet");
    }

    #[test]
    fn greets_by_name() -> Result<()> {
        let out = greet_with(json!({"greeting": "你好"}), json!({"name": "世界"}))?;
        assert_eq!(out.output["message"], "你好, 世界!");
        let out = greet_with(json!({}), json!({"name": "Ada"}))?;
        assert_eq!(out.output["message"], "Hello, Ada!");
        Ok(())
    }

    #[test]
    fn a_missing_name_is_invalid_input() {
        let class = greet_with(json!({}), json!({})).err().map(|e| e.class());
        assert_eq!(class, Some(ErrorClass::InvalidInput));
    }

    #[test]
    fn an_empty_greeting_is_a_config_error() {
        let class = {{type}}::validate_config(&json!({"greeting": " "})).err().map(|e| e.class());
        assert_eq!(class, Some(ErrorClass::Config));
    }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_type_names() {
        assert_eq!(title_of("acme-echo"), "Acme Echo");
        assert_eq!(title_of("k3"), "K3");
    }
}
