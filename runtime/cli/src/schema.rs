//! `qiao schema`: the JSON Schema of flow files, for editors (`# yaml-language-server:
//! $schema=...`). `flows/schema/flow.schema.json` is this output, checked by the CLI tests.

use anyhow::Result;

/// The schema as pretty JSON with a trailing newline, exactly as committed.
pub fn render() -> Result<String> {
    Ok(serde_json::to_string_pretty(&qiao_flow::flow_json_schema())? + "\n")
}

/// Runs `qiao schema`.
pub fn run() -> Result<()> {
    print!("{}", render()?);
    Ok(())
}
