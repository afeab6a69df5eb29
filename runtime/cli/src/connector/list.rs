//! `qiao connector list`: every connector the catalog finds, as a table or JSON.

use std::path::Path;

use anyhow::{Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use qiao_contract::OperationKind;
use serde_json::{Value, json};

use crate::catalog::{Catalog, ConnectorDirs, Found};

/// Characters of the sha256 shown in the table.
const SHA_PREFIX: usize = 12;

/// Runs `qiao connector list`. Fails (after listing the others) when a component does not
/// load.
pub async fn run(dirs: &ConnectorDirs, json: bool, state: &Path) -> Result<()> {
    let catalog = Catalog::discover(dirs, state).await?;
    if json {
        let out: Vec<Value> = catalog.connectors.iter().map(to_json).collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if catalog.connectors.is_empty() {
        let searched: Vec<String> = catalog.searched.iter().map(|d| d.display().to_string()).collect();
        let searched =
            if searched.is_empty() { "no connectors directory".into() } else { searched.join(", ") };
        eprintln!("no connectors found (searched: {searched})");
    } else {
        println!("{}", table(&catalog));
    }
    let failed = catalog.failed.len();
    if failed > 0 {
        bail!("{failed} connector component{} failed to load", if failed == 1 { "" } else { "s" });
    }
    Ok(())
}

fn counts(found: &Found) -> (usize, usize) {
    let ops = &found.info().operations;
    let triggers = ops.iter().filter(|o| o.kind == OperationKind::Trigger).count();
    (triggers, ops.len() - triggers)
}

fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn table(catalog: &Catalog) -> Table {
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(["id", "version", "operations", "source", "sha256"]);
    for found in &catalog.connectors {
        let info = found.info();
        let (triggers, actions) = counts(found);
        let sha = found.connector.sha256();
        table.add_row([
            info.id.clone(),
            info.version.clone(),
            format!("{} / {}", plural(triggers, "trigger"), plural(actions, "action")),
            found.path.display().to_string(),
            sha.get(..SHA_PREFIX).unwrap_or(sha).to_string(),
        ]);
    }
    table
}

fn to_json(found: &Found) -> Value {
    let info = found.info();
    let (triggers, actions) = counts(found);
    json!({
        "id": info.id,
        "version": info.version,
        "title": info.title,
        "triggers": triggers,
        "actions": actions,
        "operations": info.operations.iter().map(|o| json!({"name": o.name, "kind": o.kind})).collect::<Vec<_>>(),
        "source": found.path.display().to_string(),
        "sha256": found.connector.sha256(),
    })
}
