//! The Jira Cloud connector (being written).

use qiao_sdk::{Connector, Info};

/// The Jira Cloud connector.
pub struct Placeholder;

impl Connector for Placeholder {
    fn describe() -> Info {
        Info {
            id: "jira".into(),
            version: "0.0.0".into(),
            title: "Jira Cloud".into(),
            description: "Being written.".into(),
            config_schema: qiao_sdk::json!({"type": "object"}),
            operations: vec![],
            hosts: vec![],
            webhook: false,
        }
    }
}

qiao_sdk::export_connector!(Placeholder);
