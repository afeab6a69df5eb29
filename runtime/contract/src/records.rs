//! Data that flows through triggers, actions and webhooks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ConnectorError;

/// One record produced by a trigger or a webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// The source system's identity for the record, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The record.
    pub data: Value,
}

/// One page of a trigger's records.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Batch {
    /// The records.
    pub records: Vec<SourceRecord>,
    /// The cursor for the next poll; `None` keeps the current one.
    pub next_cursor: Option<String>,
    /// Whether another page is ready now.
    pub more: bool,
}

/// The result of an action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionOutput {
    /// The output for later steps.
    pub output: Value,
    /// Per-item outcomes of a bulk action, in input order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<Result<Value, ConnectorError>>>,
}

impl ActionOutput {
    /// A single-record output.
    pub fn new(output: Value) -> Self {
        ActionOutput { output, items: None }
    }
}

/// A verified webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookResult {
    /// The records the delivery carried.
    pub records: Vec<SourceRecord>,
    /// The answer the sender expects, if not a plain `200`.
    pub reply: Option<WebhookReply>,
}

/// The HTTP answer to a webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookReply {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}
