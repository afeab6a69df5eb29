//! The Kingdee K/3 Cloud (金蝶云星空) connector.
//!
//! Talks to the WebAPI (`POST {base}/k3cloud/<Service>.common.kdsvc`): logs in with
//! `LoginBySign` (or `LoginByAppSecret` / `ValidateUser`), keeps the `kdservice-sessionid`
//! session in `kv` and logs in again once when the server says the session is lost. The
//! `bill-query` trigger pages `ExecuteBillQuery`; the actions save (with duplicate protection,
//! see [`actions`]), batch-save, submit, audit, view and delete bills. Built on `qiao-sdk`
//! only; see README.md for operations, config and the error table.

mod actions;
mod client;
mod config;
mod describe;
mod poll;
mod reply;
mod sign;

use qiao_sdk::{ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value};

pub use sign::{kd_hmac, login_sign};

/// The Kingdee K/3 Cloud connector.
pub struct Kingdee;

impl Connector for Kingdee {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::parse(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            "bill-query" => {
                let config = config::Config::parse(req.config)?;
                poll::bill_query(&config, &req.params()?, req.cursor)
            }
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        let config = config::Config::parse(req.config)?;
        let key = req.idempotency_key;
        match req.op {
            "save" => actions::save(&config, &req.input()?, key),
            "batch-save" => actions::batch_save(&config, &req.input()?, key),
            "save-submit-audit" => actions::save_submit_audit(&config, &req.input()?, key),
            "submit" => actions::operate(&config, "Submit", &req.input()?),
            "audit" => actions::operate(&config, "Audit", &req.input()?),
            "delete" => actions::operate(&config, "Delete", &req.input()?),
            "view" => actions::view(&config, &req.input()?),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }
}

qiao_sdk::export_connector!(Kingdee);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn describes_itself() {
        let info = Kingdee::describe();
        assert_eq!((info.id.as_str(), info.version.as_str()), ("kingdee", "0.1.0"));
        let names: Vec<&str> = info.operations.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(
            names,
            ["bill-query", "save", "batch-save", "submit", "audit", "delete", "view", "save-submit-audit"]
        );
        assert_eq!(info.config_schema["properties"]["app_secret"]["x-secret"], true);
        assert_eq!(info.config_schema["properties"]["password"]["x-secret"], true);
        assert_eq!(info.hosts, ["{config.base_url}"]);
    }
}
