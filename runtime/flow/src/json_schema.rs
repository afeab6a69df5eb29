//! The JSON Schema of the flow format, derived from the [`crate::spec`] types with schemars
//! (`qiao schema`; `flows/schema/flow.schema.json` is a copy kept in sync by a test).

use crate::spec::FlowSpec;

/// The JSON Schema (draft 2020-12) of flow files.
pub fn flow_json_schema() -> serde_json::Value {
    let mut schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<FlowSpec>();
    schema.insert("$id".into(), "https://qiao.invalid/schema/flow.schema.json".into());
    schema.to_value()
}
