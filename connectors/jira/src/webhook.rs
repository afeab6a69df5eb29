//! `verify-webhook`: checks Jira's `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`
//! against `webhook_secret` in constant time, then emits the event as one record.

use hmac::{Hmac, Mac};
use qiao_sdk::{Error, Result, SourceRecord, Value, WebhookRequest, WebhookResult};
use sha2::Sha256;

use crate::config::Config;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature";

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub fn signature_ok(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The record id of an event: `<webhookEvent>:<issue key or worklog id>:<timestamp>`, equal
/// for every retry of one delivery (the body is the same).
pub fn event_id(event: &Value) -> String {
    let kind = event["webhookEvent"].as_str().unwrap_or("event");
    let subject = event["issue"]["key"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| event["worklog"]["id"].as_str().map(str::to_owned))
        .or_else(|| event["comment"]["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "-".into());
    let at = event["timestamp"].as_i64().map_or_else(|| "-".to_string(), |t| t.to_string());
    format!("{kind}:{subject}:{at}")
}

pub fn verify(req: WebhookRequest<'_>) -> Result<WebhookResult> {
    let config = Config::load(req.config)?;
    let Some(secret) = config.webhook_secret.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Error::config(
            "config.webhook_secret: set the secret of the Jira webhook; unsigned deliveries are refused",
        ));
    };
    let Some(header) = req.header(SIGNATURE_HEADER) else {
        return Err(Error::unauthorized(format!("refused a Jira webhook without {SIGNATURE_HEADER}")));
    };
    if !signature_ok(secret, req.body, header) {
        return Err(Error::unauthorized(format!(
            "refused a Jira webhook: {SIGNATURE_HEADER} does not match the body under webhook_secret"
        )));
    }
    let event: Value = req.json()?;
    if !event.is_object() {
        return Err(Error::invalid_input("the webhook body is not a JSON object"));
    }
    Ok(WebhookResult { records: vec![SourceRecord { id: Some(event_id(&event)), data: event }], reply: None })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    const VECTOR_SECRET: &str = "It's a Secret to Everybody";
    const VECTOR_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    fn config(secret: Option<&str>) -> Value {
        let mut c =
            json!({"base_url": "https://acme.atlassian.net", "email": "bot@acme.cn", "api_token": "t"});
        if let Some(s) = secret {
            c["webhook_secret"] = json!(s);
        }
        c
    }

    #[test]
    fn known_vector() {
        assert!(signature_ok(VECTOR_SECRET, b"Hello, World!", VECTOR_SIG));
        assert!(!signature_ok(VECTOR_SECRET, b"Hello, World?", VECTOR_SIG));
        assert!(!signature_ok("other", b"Hello, World!", VECTOR_SIG));
        assert!(!signature_ok(VECTOR_SECRET, b"Hello, World!", &VECTOR_SIG.replace("sha256=", "sha1=")));
        assert!(!signature_ok(VECTOR_SECRET, b"Hello, World!", "sha256=zz"));
    }

    #[test]
    fn verifies_and_emits_one_record() {
        let body = json!({"timestamp": 1714615200000i64, "webhookEvent": "jira:issue_updated",
                          "issue": {"id": "10042", "key": "ERP-42", "fields": {"summary": "安装布线"}}})
        .to_string();
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(body.as_bytes());
        let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let cfg = config(Some("s3cret"));
        let headers = vec![("x-hub-signature".to_string(), sig.clone())];
        let out = verify(WebhookRequest { config: &cfg, headers: &headers, body: body.as_bytes() }).unwrap();
        assert_eq!(out.records.len(), 1);
        assert_eq!(out.records[0].id.as_deref(), Some("jira:issue_updated:ERP-42:1714615200000"));

        let tampered = body.replace("安装", "拆除");
        let e = verify(WebhookRequest { config: &cfg, headers: &headers, body: tampered.as_bytes() })
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        let e = verify(WebhookRequest { config: &cfg, headers: &[], body: body.as_bytes() }).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        let no_secret = config(None);
        let e = verify(WebhookRequest { config: &no_secret, headers: &headers, body: body.as_bytes() })
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Config);
    }
}
