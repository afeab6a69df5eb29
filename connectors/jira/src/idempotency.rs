//! Making retries of writes safe on an API without idempotency keys.
//!
//! Each write carries a tag derived from the engine's idempotency key (an issue label, or an
//! entity property on comments and worklogs). Before writing, an action looks for its tag:
//! first in `kv` (set after every success), then in Jira itself. What is left is documented
//! in the README.

use qiao_sdk::{Result, Value, json, kv};
use sha2::{Digest, Sha256};

/// The entity property that carries the idempotency key on comments and worklogs.
pub const PROPERTY_KEY: &str = "qiao.idempotency";

/// `qiao-<16 hex>`: a label-safe tag of `idempotency_key`.
pub fn tag(idempotency_key: &str) -> String {
    format!("qiao-{}", hex::encode(&Sha256::digest(idempotency_key.as_bytes())[..8]))
}

/// The entity property to write with the entity.
pub fn property(idempotency_key: &str) -> Value {
    json!({"key": PROPERTY_KEY, "value": {"key": idempotency_key}})
}

/// Whether an entity's `properties` (as read with `expand=properties`) carry `idempotency_key`.
pub fn carries(entity: &Value, idempotency_key: &str) -> bool {
    entity["properties"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| p["key"] == PROPERTY_KEY && p["value"]["key"] == idempotency_key)
}

/// What a previous success of `op` with `idempotency_key` returned.
pub fn remembered(op: &str, idempotency_key: &str) -> Option<Value> {
    kv::get_json(&format!("{op}/{}", tag(idempotency_key)))
}

/// Remembers the output of a success.
pub fn remember(op: &str, idempotency_key: &str, output: &Value) -> Result<()> {
    kv::set_json(&format!("{op}/{}", tag(idempotency_key)), output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_label_safe() {
        let t = tag("flow:ERP-1@2024:comment");
        assert_eq!(t, tag("flow:ERP-1@2024:comment"));
        assert_ne!(t, tag("flow:ERP-2@2024:comment"));
        assert_eq!(t.len(), 21);
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        let e = json!({"properties": [{"key": PROPERTY_KEY, "value": {"key": "k"}}]});
        assert!(carries(&e, "k"));
        assert!(!carries(&e, "j"));
    }
}
