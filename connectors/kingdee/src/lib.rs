//! The Kingdee K/3 Cloud connector (being written).

use qiao_sdk::{Connector, Info};

/// The Kingdee K/3 Cloud connector.
pub struct Placeholder;

impl Connector for Placeholder {
    fn describe() -> Info {
        Info {
            id: "kingdee".into(),
            version: "0.0.0".into(),
            title: "Kingdee K/3 Cloud".into(),
            description: "Being written.".into(),
            config_schema: qiao_sdk::json!({"type": "object"}),
            operations: vec![],
            hosts: vec![],
            webhook: false,
        }
    }
}

qiao_sdk::export_connector!(Placeholder);
