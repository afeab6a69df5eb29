//! Record identities and idempotency keys.

use qiao_contract::SourceRecord;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A record's identity: the flow's `key` expression result when given (evaluated by the
/// caller), else the connector's record id, else a content hash (`sha256:` + 16 hex digits).
pub fn record_key(from_expr: Option<&Value>, record: &SourceRecord) -> String {
    if let Some(v) = from_expr {
        match v {
            Value::String(s) if !s.is_empty() => return s.clone(),
            Value::Number(n) => return n.to_string(),
            Value::Null => {}
            other => return other.to_string(),
        }
    }
    if let Some(id) = record.id.as_deref().filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    content_key(record.data.to_string().as_bytes())
}

/// The identity of a record known only by its content: `sha256:` + 16 hex digits of its JSON.
pub fn content_key(json: &[u8]) -> String {
    let digest = Sha256::digest(json);
    format!("sha256:{}", hex::encode(&digest[..8]))
}

/// The key passed to an action: stable for one record and step across retries, restarts and
/// replays, so a target that deduplicates on it books the record once. Readable when short;
/// long record keys are hashed.
pub fn idempotency_key(flow: &str, record: &str, step: &str) -> String {
    let key = format!("{flow}:{record}:{step}");
    if key.len() <= 200 && !key.contains(|c: char| c.is_control()) {
        key
    } else {
        format!("{flow}:{step}:sha256-{}", hex::encode(Sha256::digest(key.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_prefers_expression_then_id_then_hash() {
        let r = SourceRecord { id: Some("WL-1".into()), data: json!({"a": 1}) };
        assert_eq!(record_key(Some(&json!("PM-1")), &r), "PM-1");
        assert_eq!(record_key(Some(&json!(42)), &r), "42");
        assert_eq!(record_key(None, &r), "WL-1");
        let anon = SourceRecord { id: None, data: json!({"a": 1}) };
        let k = record_key(None, &anon);
        assert!(k.starts_with("sha256:") && k.len() == 23, "{k}");
        assert_eq!(k, record_key(Some(&Value::Null), &anon), "stable");
    }

    #[test]
    fn idempotency_keys_are_stable_and_bounded() {
        assert_eq!(idempotency_key("f", "PM-1", "book"), "f:PM-1:book");
        let long = "x".repeat(500);
        let k = idempotency_key("f", &long, "book");
        assert!(k.len() < 100 && k == idempotency_key("f", &long, "book"), "{k}");
        assert_ne!(k, idempotency_key("f", &long, "notify"));
    }
}
