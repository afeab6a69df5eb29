//! Conversions between generated bindings and `qiao-contract` types. Everything the guest
//! returns is checked here: JSON must parse, schemas must be objects.

use qiao_contract::{
    ActionOutput, Batch, ConnectorError, ConnectorInfo, Operation, OperationKind, SourceRecord, WebhookReply,
    WebhookResult,
};
use serde_json::Value;

use crate::bindings::{handler, types};

/// A guest value that breaks the contract; the caller wraps it into `CallError::MalformedOutput`.
#[derive(Debug)]
pub(crate) struct Malformed(pub String);

fn parse_json(what: &str, text: &str) -> Result<Value, Malformed> {
    serde_json::from_str(text).map_err(|e| {
        let snippet: String = text.chars().take(80).collect();
        Malformed(format!("{what} is not valid JSON ({e}): {snippet:?}"))
    })
}

fn parse_schema(what: &str, text: Option<String>) -> Result<Option<Value>, Malformed> {
    text.map(|t| parse_json(what, &t)).transpose()
}

pub(crate) fn info(raw: handler::Info) -> Result<ConnectorInfo, Malformed> {
    let mut operations = Vec::with_capacity(raw.operations.len());
    for (i, op) in raw.operations.into_iter().enumerate() {
        operations.push(Operation {
            kind: match op.kind {
                handler::OperationKind::Trigger => OperationKind::Trigger,
                handler::OperationKind::Action => OperationKind::Action,
            },
            params_schema: parse_schema(&format!("operations[{i}].params-schema"), op.params_schema)?,
            input_schema: parse_schema(&format!("operations[{i}].input-schema"), op.input_schema)?,
            output_schema: parse_schema(&format!("operations[{i}].output-schema"), op.output_schema)?,
            name: op.name,
            description: op.description,
        });
    }
    Ok(ConnectorInfo {
        config_schema: parse_json("config-schema", &raw.config_schema)?,
        id: raw.id,
        version: raw.version,
        title: raw.title,
        description: raw.description,
        operations,
        hosts: raw.hosts,
        webhook: raw.webhook,
    })
}

pub(crate) fn error(e: types::Error) -> ConnectorError {
    match e {
        types::Error::Config(m) => ConnectorError::config(m),
        types::Error::Unauthorized(m) => ConnectorError::unauthorized(m),
        types::Error::RateLimited(r) => ConnectorError::rate_limited(r.message, r.retry_after_ms),
        types::Error::InvalidInput(m) => ConnectorError::invalid_input(m),
        types::Error::Transient(m) => ConnectorError::transient(m),
        types::Error::Permanent(m) => ConnectorError::permanent(m),
    }
}

fn records(raw: Vec<types::SourceRecord>) -> Result<Vec<SourceRecord>, Malformed> {
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| {
            Ok(SourceRecord { data: parse_json(&format!("records[{i}].data"), &r.data)?, id: r.id })
        })
        .collect()
}

pub(crate) fn batch(raw: handler::Batch) -> Result<Batch, Malformed> {
    Ok(Batch { records: records(raw.records)?, next_cursor: raw.next_cursor, more: raw.more })
}

pub(crate) fn action_output(raw: handler::ActionOutput) -> Result<ActionOutput, Malformed> {
    let items = match raw.items {
        None => None,
        Some(items) => Some(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Ok(json) => parse_json(&format!("items[{i}]"), &json).map(Ok),
                    Err(e) => Ok(Err(error(e))),
                })
                .collect::<Result<Vec<_>, Malformed>>()?,
        ),
    };
    Ok(ActionOutput { output: parse_json("output", &raw.output)?, items })
}

pub(crate) fn webhook(raw: handler::WebhookResult) -> Result<WebhookResult, Malformed> {
    Ok(WebhookResult {
        records: records(raw.records)?,
        reply: raw.reply.map(|r| WebhookReply { status: r.status, headers: r.headers, body: r.body }),
    })
}
