//! A test guest that breaks the contract's data rules: it returns text that is not JSON where
//! JSON is required. Written against the raw WIT bindings (the SDK would not let it).
#![allow(missing_docs)]

wit_bindgen::generate!({ world: "connector", path: "../../../wit" });

use exports::qiao::connector::handler::{
    ActionOutput, Batch, Guest, Info, Operation, OperationKind, WebhookResult,
};
use qiao::connector::types::{Error, SourceRecord};

struct Malformed;

impl Guest for Malformed {
    fn describe() -> Info {
        let op = |name: &str, kind| Operation {
            name: name.into(),
            kind,
            description: String::new(),
            params_schema: None,
            input_schema: None,
            output_schema: None,
        };
        Info {
            id: "malformed".into(),
            version: "0.1.0".into(),
            title: "Malformed output test guest".into(),
            description: String::new(),
            config_schema: "{}".into(),
            operations: vec![
                op("bad-output", OperationKind::Action),
                op("bad-item", OperationKind::Action),
                op("bad-records", OperationKind::Trigger),
            ],
            hosts: vec![],
            webhook: true,
        }
    }

    fn validate_config(_config: String) -> Result<(), Error> {
        Ok(())
    }

    fn poll(_op: String, _config: String, _params: String, _cursor: Option<String>) -> Result<Batch, Error> {
        Ok(Batch {
            records: vec![
                SourceRecord { id: Some("ok".into()), data: "{\"fine\":true}".into() },
                SourceRecord { id: Some("bad".into()), data: "{\"unterminated\": ".into() },
            ],
            next_cursor: None,
            more: false,
        })
    }

    fn invoke(op: String, _config: String, _input: String, _key: String) -> Result<ActionOutput, Error> {
        match op.as_str() {
            "bad-item" => Ok(ActionOutput {
                output: "{}".into(),
                items: Some(vec![Ok("{}".into()), Ok("nope".into())]),
            }),
            _ => Ok(ActionOutput { output: "this is not json".into(), items: None }),
        }
    }

    fn verify_webhook(
        _config: String,
        _headers: Vec<(String, String)>,
        _body: Vec<u8>,
    ) -> Result<WebhookResult, Error> {
        Ok(WebhookResult { records: vec![SourceRecord { id: None, data: "\u{0}".into() }], reply: None })
    }
}

export!(Malformed);
