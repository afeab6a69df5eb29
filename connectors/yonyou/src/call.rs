//! The `call` action: any gateway API with the token attached; returns the answer's `data`.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value};
use serde::Deserialize;

use crate::api;
use crate::config::Config;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CallInput {
    #[serde(default)]
    method: Option<String>,
    path: String,
    #[serde(default)]
    query: serde_json::Map<String, Value>,
    #[serde(default)]
    body: Option<Value>,
}

/// Runs `call`.
pub fn run(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: CallInput = req.input()?;
    let method = input.method.as_deref().unwrap_or("POST").to_ascii_uppercase();
    if !["GET", "POST", "PUT", "DELETE"].contains(&method.as_str()) {
        return Err(Error::invalid_input(format!(
            "input.method: must be GET, POST, PUT or DELETE, got {method:?}"
        )));
    }
    if input.path.contains("://") {
        return Err(Error::invalid_input("input.path: a path under base_url, not a URL"));
    }
    let mut query = Vec::new();
    for (k, v) in &input.query {
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => continue,
            _ => {
                return Err(Error::invalid_input(format!(
                    "input.query.{k}: must be a string, number or boolean"
                )));
            }
        };
        if k == "access_token" {
            return Err(Error::invalid_input("input.query.access_token: the connector sets it"));
        }
        query.push((k.clone(), value));
    }
    let body = if method == "GET" { None } else { input.body.as_ref() };
    let answer = api::call(&config, &method, &input.path, &query, body)?;
    Ok(ActionOutput::new(answer.get("data").cloned().unwrap_or(answer)))
}
