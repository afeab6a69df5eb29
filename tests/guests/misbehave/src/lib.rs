//! A test guest that misbehaves on request, written against the raw WIT bindings (no SDK).
//!
//! Actions: `echo` (parses and re-serialises its input), `kv-count` (a counter in `kv`),
//! `log` (one line per level), `clock`, `fetch` (GET `input.url`), and the misbehaviours the
//! sandbox tests contain: `spin` (loops forever), `alloc` (allocates without bound), `trap`
//! (panics), `forbidden` (calls a host it was not granted).
#![allow(missing_docs, clippy::panic)]

wit_bindgen::generate!({ world: "connector", path: "../../../wit" });

use exports::qiao::connector::handler::{
    ActionOutput, Batch, Guest, Info, Operation, OperationKind, WebhookResult,
};
use qiao::connector::types::Error;
use qiao::connector::{clock, http, kv, log};

struct Misbehave;

const ACTIONS: &[&str] = &["echo", "kv-count", "log", "clock", "fetch", "spin", "alloc", "trap", "forbidden"];

fn output(json: String) -> Result<ActionOutput, Error> {
    Ok(ActionOutput { output: json, items: None })
}

impl Guest for Misbehave {
    fn describe() -> Info {
        Info {
            id: "misbehave".into(),
            version: "0.1.0".into(),
            title: "Misbehaving test guest".into(),
            description: "Loops, allocates, traps and calls forbidden hosts on request.".into(),
            config_schema: r#"{"type":"object"}"#.into(),
            operations: ACTIONS
                .iter()
                .map(|name| Operation {
                    name: (*name).into(),
                    kind: OperationKind::Action,
                    description: format!("test operation {name}"),
                    params_schema: None,
                    input_schema: Some(r#"{"type":"object"}"#.into()),
                    output_schema: None,
                })
                .chain(std::iter::once(Operation {
                    name: "count-up".into(),
                    kind: OperationKind::Trigger,
                    description: "emits three records per page, two pages".into(),
                    params_schema: Some(r#"{"type":"object"}"#.into()),
                    input_schema: None,
                    output_schema: None,
                }))
                .collect(),
            hosts: vec!["{config.allowed}".into()],
            webhook: false,
        }
    }

    fn validate_config(config: String) -> Result<(), Error> {
        let v: serde_json::Value = serde_json::from_str(&config).map_err(|e| Error::Config(e.to_string()))?;
        match v.get("reject") {
            Some(serde_json::Value::String(why)) => Err(Error::Config(why.clone())),
            _ => Ok(()),
        }
    }

    fn poll(_op: String, _config: String, _params: String, cursor: Option<String>) -> Result<Batch, Error> {
        let page: u64 = cursor.as_deref().and_then(|c| c.parse().ok()).unwrap_or(0);
        let records = (0..3)
            .map(|i| {
                let n = page * 3 + i;
                qiao::connector::types::SourceRecord {
                    id: Some(format!("r{n}")),
                    data: format!(r#"{{"n":{n}}}"#),
                }
            })
            .collect();
        Ok(Batch { records, next_cursor: Some((page + 1).to_string()), more: page == 0 })
    }

    fn invoke(
        op: String,
        _config: String,
        input: String,
        idempotency_key: String,
    ) -> Result<ActionOutput, Error> {
        let input: serde_json::Value =
            serde_json::from_str(&input).map_err(|e| Error::InvalidInput(e.to_string()))?;
        match op.as_str() {
            "echo" => output(input.to_string()),
            "kv-count" => {
                let n = kv::get("count")
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                kv::set("count", n.to_string().as_bytes()).map_err(Error::Permanent)?;
                output(format!(r#"{{"count":{n},"key":{}}}"#, serde_json::Value::String(idempotency_key)))
            }
            "log" => {
                for (level, name) in [
                    (log::Level::Trace, "trace"),
                    (log::Level::Debug, "debug"),
                    (log::Level::Info, "info"),
                    (log::Level::Warn, "warn"),
                    (log::Level::Error, "error"),
                ] {
                    log::log(level, &format!("{name} line from the guest"));
                }
                output("{}".into())
            }
            "clock" => output(format!(r#"{{"now_ms":{}}}"#, clock::now_ms())),
            "fetch" => {
                let url = input.get("url").and_then(|u| u.as_str()).unwrap_or_default().to_string();
                let req = http::Request {
                    method: "GET".into(),
                    url,
                    headers: vec![],
                    body: None,
                    timeout_ms: None,
                };
                match http::send(&req) {
                    Ok(resp) => output(
                        serde_json::json!({"status": resp.status, "body": String::from_utf8_lossy(&resp.body)}).to_string(),
                    ),
                    Err(e) => Err(Error::Transient(format!("{e:?}"))),
                }
            }
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
                }
            }
            "trap" => panic!("boom from the trap guest"),
            "forbidden" => {
                let req = http::Request {
                    method: "GET".into(),
                    url: "https://forbidden.example.com/steal".into(),
                    headers: vec![],
                    body: None,
                    timeout_ms: None,
                };
                let _ = http::send(&req);
                Err(Error::Permanent("the host let a forbidden request through".into()))
            }
            other => Err(Error::Permanent(format!("unknown operation {other:?}"))),
        }
    }

    fn verify_webhook(
        _config: String,
        _headers: Vec<(String, String)>,
        _body: Vec<u8>,
    ) -> Result<WebhookResult, Error> {
        Err(Error::Permanent("no webhooks".into()))
    }
}

export!(Misbehave);
