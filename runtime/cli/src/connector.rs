//! `qiao connector …`: write, pack and sign connectors (publisher side); search, install,
//! upgrade, lock and remove them (admin side); inspect and call components.

mod admin;
pub mod author;
mod list;
mod scaffold;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use qiao_contract::{ConnectorInfo, SECRET_KEYWORD};
use qiao_host::{ConnectorPolicy, Runtime, RuntimeConfig};
use serde_json::Value;

/// Connector commands.
#[derive(Debug, Subcommand)]
pub enum ConnectorCommand {
    /// Create a connector crate on qiao-sdk that builds and passes its tests out of the box.
    New(scaffold::NewArgs),
    /// Build a connector crate to a Wasm component (wasm32-wasip2, size-optimised profile).
    Build {
        /// The connector crate.
        #[arg(long, default_value = ".")]
        path: PathBuf,
    },
    /// Pack a component into ID-VERSION.qpkg after checking its manifest against describe()
    /// and its WIT version.
    Pack(author::PackArgs),
    /// Sign a package with a publisher key (writes PKG.minisig).
    Sign {
        /// The package.
        package: PathBuf,
        /// The publisher's secret key.
        #[arg(long)]
        key: PathBuf,
        #[command(flatten)]
        password: crate::key::PasswordArgs,
    },
    /// Search the configured directories.
    Search {
        /// Only connectors whose id, title or description contains this.
        query: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a connector's versions, publisher and requested capabilities.
    Info {
        /// The connector id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Install connectors from the configured directories: `jira`, `jira@^0.2`, `jira@=0.2.1`.
    Install {
        /// What to install.
        #[arg(required = true, value_name = "ID[@REQ]")]
        requests: Vec<String>,
        /// Approve the requested capabilities without asking (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Install the newest version of installed connectors and move lock files that accept it.
    Upgrade {
        /// Connector ids. Default: every connector installed from a directory.
        ids: Vec<String>,
        /// Approve the requested capabilities without asking (scripts).
        #[arg(long)]
        yes: bool,
    },
    /// Pin lock files back to the previous installed version of a connector.
    Rollback {
        /// The connector id.
        id: String,
    },
    /// Remove an installed connector (all versions, or ID@VERSION).
    Remove {
        /// `ID` or `ID@VERSION`.
        #[arg(value_name = "ID[@VERSION]")]
        target: String,
        /// Remove even when a lock file pins it.
        #[arg(long)]
        force: bool,
    },
    /// Write qiao.lock for a folder of flows: each connector pinned to a version and component.
    Lock(admin::LockArgs),
    /// List the connectors found (installed, then the source tree's build output).
    List {
        #[command(flatten)]
        connectors: crate::catalog::ConnectorDirs,
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Load a connector component and print what it offers.
    Describe {
        /// The component (`.wasm`).
        file: PathBuf,
        /// Print the description as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one action operation and print its output as JSON.
    Invoke {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The action operation.
        op: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// The input: JSON text, or `@path` to read it from a file.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Idempotency key passed to the connector.
        #[arg(long, default_value = "cli")]
        key: String,
    },
    /// Run a trigger operation and print the records as JSON lines.
    Poll {
        /// The component (`.wasm`).
        file: PathBuf,
        /// The trigger operation.
        op: String,
        #[command(flatten)]
        connection: ConnectionArgs,
        /// Static params: JSON text, or `@path`.
        #[arg(long, default_value = "{}")]
        params: String,
        /// Cursor from an earlier poll.
        #[arg(long)]
        cursor: Option<String>,
        /// Keep polling while the connector says more pages are ready (at most 1000 pages).
        #[arg(long)]
        all: bool,
    },
}

/// How to connect a connector for a one-off call.
#[derive(Debug, clap::Args)]
pub struct ConnectionArgs {
    /// Connection config: JSON text, or `@path` to read it from a file (keeps secrets out of
    /// the process list).
    #[arg(long, default_value = "{}")]
    config: String,
    /// Grant these host patterns instead of the connector's own `hosts`.
    #[arg(long = "grant")]
    grants: Vec<String>,
    /// Allow private and loopback addresses (on-premise systems, local fakes).
    #[arg(long)]
    allow_private: bool,
}

/// A JSON argument: the text itself, or `@path` to read it from a file.
pub fn json_arg(what: &str, text: &str) -> Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("failed to read {what} from {path}"))?
        }
        None => text.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}

async fn connect(file: &Path, args: &ConnectionArgs, state: &Path) -> Result<qiao_host::Connection> {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(state.join("cache")), ..Default::default() })?;
    let policy = ConnectorPolicy {
        hosts: if args.grants.is_empty() { None } else { Some(args.grants.clone()) },
        allow_private: args.allow_private,
        ..Default::default()
    };
    let connector = runtime.load_file(file, policy).await?;
    let config = json_arg("--config", &args.config)?;
    Ok(connector.connect("cli", &config)?)
}

pub async fn run(cmd: ConnectorCommand, state: &Path) -> Result<()> {
    match cmd {
        ConnectorCommand::New(args) => scaffold::run(args),
        ConnectorCommand::Build { path } => {
            let wasm = author::build(&path)?;
            println!("{}", wasm.display());
            Ok(())
        }
        ConnectorCommand::Pack(args) => author::pack(args, state).await,
        ConnectorCommand::Sign { package, key, password } => author::sign(&package, &key, &password),
        ConnectorCommand::Search { query, json } => admin::search(query, json, state).await,
        ConnectorCommand::Info { id, json } => admin::info(&id, json, state).await,
        ConnectorCommand::Install { requests, yes } => admin::install(&requests, yes, state).await,
        ConnectorCommand::Upgrade { ids, yes } => admin::upgrade(&ids, yes, state).await,
        ConnectorCommand::Rollback { id } => admin::rollback(&id, state),
        ConnectorCommand::Remove { target, force } => admin::remove(&target, force, state),
        ConnectorCommand::Lock(args) => admin::lock(args, state).await,
        ConnectorCommand::List { connectors, json } => list::run(&connectors, json, state).await,
        ConnectorCommand::Describe { file, json } => describe(&file, json, state).await,
        ConnectorCommand::Invoke { file, op, connection, input, key } => {
            let conn = connect(&file, &connection, state).await?;
            let input = json_arg("--input", &input)?;
            let out = conn.invoke(&op, &input, &key).await?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        ConnectorCommand::Poll { file, op, connection, params, cursor, all } => {
            let conn = connect(&file, &connection, state).await?;
            let params = json_arg("--params", &params)?;
            let mut cursor = cursor;
            for _ in 0..1000 {
                let batch = conn.poll(&op, &params, cursor.as_deref()).await?;
                for record in &batch.records {
                    println!("{}", serde_json::to_string(record)?);
                }
                if batch.next_cursor.is_some() {
                    cursor = batch.next_cursor;
                }
                if !(all && batch.more) {
                    break;
                }
            }
            if let Some(c) = cursor {
                eprintln!("cursor: {c}");
            }
            Ok(())
        }
    }
}

async fn describe(file: &Path, json: bool, state: &Path) -> Result<()> {
    let runtime = Runtime::new(RuntimeConfig { cache_dir: Some(state.join("cache")), ..Default::default() })?;
    let connector = runtime.load_file(file, ConnectorPolicy::default()).await?;
    let info = connector.info();
    if json {
        println!("{}", serde_json::to_string_pretty(info)?);
    } else {
        print!("{}", render(info, connector.sha256()));
    }
    Ok(())
}

/// The human rendering: a header, the config fields and a table of operations.
fn render(info: &ConnectorInfo, sha256: &str) -> String {
    let mut out = String::new();
    out.push_str(&format!("{} {} — {}\n", info.id, info.version, info.title));
    if !info.description.is_empty() {
        out.push_str(&format!("{}\n", info.description));
    }
    out.push_str(&format!("sha256:   {sha256}\n"));
    let hosts = if info.hosts.is_empty() { "none".to_string() } else { info.hosts.join(", ") };
    out.push_str(&format!("hosts:    {hosts}\n"));
    out.push_str(&format!("webhooks: {}\n", if info.webhook { "yes" } else { "no" }));

    let required: Vec<&str> = info
        .config_schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = info.config_schema.get("properties").and_then(Value::as_object) {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header([
            "config field",
            "type",
            "required",
            "secret",
            "description",
        ]);
        for (name, schema) in props {
            let ty = schema.get("type").map(type_name).unwrap_or_else(|| "any".into());
            let secret = schema.get(SECRET_KEYWORD).and_then(Value::as_bool) == Some(true);
            table.add_row([
                name.as_str(),
                &ty,
                if required.contains(&name.as_str()) { "yes" } else { "" },
                if secret { "yes" } else { "" },
                schema.get("description").and_then(Value::as_str).unwrap_or_default(),
            ]);
        }
        out.push_str(&format!("{table}\n"));
    }

    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(["operation", "kind", "description"]);
    for op in &info.operations {
        table.add_row([op.name.as_str(), &op.kind.to_string(), op.description.as_str()]);
    }
    out.push_str(&format!("{table}\n"));
    out
}

fn type_name(t: &Value) -> String {
    match t {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | "),
        _ => "any".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_contract::{Operation, OperationKind};
    use serde_json::json;

    #[test]
    fn renders_config_fields_and_operations() {
        let info = ConnectorInfo {
            id: "jira".into(),
            version: "0.1.0".into(),
            title: "Jira Cloud".into(),
            description: "Issues and worklogs".into(),
            config_schema: json!({"type": "object", "required": ["email"], "properties": {
                "email": {"type": "string", "description": "account email"},
                "api_token": {"type": "string", "x-secret": true}
            }}),
            operations: vec![Operation {
                name: "issues-updated".into(),
                kind: OperationKind::Trigger,
                description: "issues changed since the cursor".into(),
                params_schema: None,
                input_schema: None,
                output_schema: None,
            }],
            hosts: vec!["{config.base_url}".into()],
            webhook: true,
        };
        let text = render(&info, "abc");
        assert!(text.starts_with("jira 0.1.0 — Jira Cloud\n"), "{text}");
        assert!(text.contains("hosts:    {config.base_url}"));
        let token_row = text.lines().find(|l| l.contains("api_token")).unwrap_or_default();
        assert!(token_row.contains("yes"), "secret marked: {token_row}");
        assert!(text.lines().any(|l| l.contains("issues-updated") && l.contains("trigger")));
    }
}
