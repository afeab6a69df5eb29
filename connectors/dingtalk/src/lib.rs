//! The DingTalk connector (being written).

use qiao_sdk::{Connector, Info};

/// The DingTalk connector.
pub struct Placeholder;

impl Connector for Placeholder {
    fn describe() -> Info {
        Info {
            id: "dingtalk".into(),
            version: "0.0.0".into(),
            title: "DingTalk".into(),
            description: "Being written.".into(),
            config_schema: qiao_sdk::json!({"type": "object"}),
            operations: vec![],
            hosts: vec![],
            webhook: false,
        }
    }
}

qiao_sdk::export_connector!(Placeholder);
