//! The SAP S/4HANA connector (being written).

use qiao_sdk::{Connector, Info};

/// The SAP S/4HANA connector.
pub struct Placeholder;

impl Connector for Placeholder {
    fn describe() -> Info {
        Info {
            id: "sap".into(),
            version: "0.0.0".into(),
            title: "SAP S/4HANA".into(),
            description: "Being written.".into(),
            config_schema: qiao_sdk::json!({"type": "object"}),
            operations: vec![],
            hosts: vec![],
            webhook: false,
        }
    }
}

qiao_sdk::export_connector!(Placeholder);
