//! `verify-webhook`: DingTalk's encrypted HTTP event callbacks.
//!
//! DingTalk POSTs `?msg_signature=&timestamp=&nonce=` with `{"encrypt": "..."}`. The
//! signature is checked (SHA-1 over the sorted token, timestamp, nonce and encrypt), the
//! payload decrypted (AES-256-CBC), the receiver id checked against `owner_key`, and the
//! reply DingTalk requires is built: the encrypted, signed `success`.
//!
//! The contract hands a webhook only headers and body, so the query parameters must reach
//! the connector as headers: the raw query string in `x-qiao-query`, or each parameter as a
//! header of its own name (`msg_signature`, `timestamp`, `nonce`).

use qiao_sdk::{
    Error, Result, SourceRecord, Value, WebhookReply, WebhookRequest, WebhookResult, clock, json,
};
use serde::Deserialize;
use sha1::{Digest, Sha1};

use crate::config::Config;
use crate::crypto::{callback_signature, decrypt, encrypt, pseudo_random};

/// The header carrying the request's raw query string.
pub const QUERY_HEADER: &str = "x-qiao-query";

/// Handshake events: answered with `success`, no record.
const HANDSHAKES: &[&str] = &["check_url", "check_create_suite_url", "check_update_suite_url"];

#[derive(Deserialize)]
struct Body {
    encrypt: String,
}

/// One query parameter, from `x-qiao-query` or from a header of the same name.
fn param(req: &WebhookRequest<'_>, names: &[&str]) -> Option<String> {
    if let Some(query) = req.header(QUERY_HEADER) {
        for pair in query.trim_start_matches('?').split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if names.contains(&k) {
                return Some(qiao_sdk::encode::url_decode(v));
            }
        }
    }
    names.iter().find_map(|n| req.header(n).map(str::to_string))
}

/// Verifies, decrypts and answers one callback.
pub fn verify(req: WebhookRequest<'_>) -> Result<WebhookResult> {
    let config = Config::load(req.config)?;
    let (Some(token), Some(aes_key)) = (config.token.as_deref(), config.aes_key.as_deref()) else {
        return Err(Error::config("config.token and config.aes_key are needed to accept DingTalk callbacks"));
    };
    let missing = |what: &str| {
        Error::invalid_input(format!(
            "dingtalk callback without {what} (pass the query string in the {QUERY_HEADER} header)"
        ))
    };
    let signature = param(&req, &["msg_signature", "signature"]).ok_or_else(|| missing("msg_signature"))?;
    let timestamp = param(&req, &["timestamp", "timeStamp"]).ok_or_else(|| missing("timestamp"))?;
    let nonce = param(&req, &["nonce"]).ok_or_else(|| missing("nonce"))?;
    let body: Body = req.json()?;
    if callback_signature(token, &timestamp, &nonce, &body.encrypt) != signature.to_ascii_lowercase() {
        return Err(Error::unauthorized(
            "dingtalk callback refused: msg_signature does not match (check config.token)",
        ));
    }
    let (message, receiver) = decrypt(aes_key, &body.encrypt)
        .map_err(|e| Error::invalid_input(format!("dingtalk callback refused: {e}")))?;
    if receiver != config.owner() {
        return Err(Error::unauthorized(format!(
            "dingtalk callback refused: sealed for receiver {receiver:?}, not this connection's owner_key"
        )));
    }
    let event: Value = serde_json::from_str(&message)
        .map_err(|e| Error::invalid_input(format!("dingtalk callback is not JSON: {e}")))?;
    let event_type = event["EventType"].as_str().unwrap_or("unknown").to_string();
    let records = if HANDSHAKES.contains(&event_type.as_str()) {
        Vec::new()
    } else {
        vec![SourceRecord { id: Some(format!("{event_type}:{}", event_id(&event, &message))), data: event }]
    };
    Ok(WebhookResult { records, reply: Some(reply(token, aes_key, config.owner(), &nonce, &body.encrypt)?) })
}

/// A stable id of one event: DingTalk's own event id when present, the approval instance and
/// change type for approval events, else a digest of the plaintext (DingTalk re-sends the
/// same plaintext when it retries).
pub fn event_id(event: &Value, plaintext: &str) -> String {
    for key in ["eventId", "EventId", "event_id"] {
        if let Some(id) = event[key].as_str().filter(|s| !s.is_empty()) {
            return id.to_string();
        }
    }
    if let Some(instance) = event["processInstanceId"].as_str() {
        let kind = event["type"].as_str().unwrap_or("");
        let task = event["taskId"].as_i64().map(|t| format!(":{t}")).unwrap_or_default();
        return format!("{instance}:{kind}{task}");
    }
    hex::encode(&Sha1::digest(plaintext.as_bytes())[..10])
}

/// The answer DingTalk expects: `{"msg_signature", "timeStamp", "nonce", "encrypt"}` with
/// `success` encrypted for `owner`.
fn reply(
    token: &str,
    aes_key: &str,
    owner: &str,
    their_nonce: &str,
    their_encrypt: &str,
) -> Result<WebhookReply> {
    let now = clock::now_ms().to_string();
    let seed = format!("{now}:{their_nonce}:{their_encrypt}");
    let random = pseudo_random(&seed);
    let nonce: String = pseudo_random(&format!("nonce:{seed}"))
        .iter()
        .take(8)
        .map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*b) % 36]))
        .collect();
    let encrypted = encrypt(aes_key, random, "success", owner).map_err(|e| Error::config(e.to_string()))?;
    let signature = callback_signature(token, &now, &nonce, &encrypted);
    let body = json!({"msg_signature": signature, "timeStamp": now, "nonce": nonce, "encrypt": encrypted});
    Ok(WebhookReply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;
    use qiao_sdk::testing::MockHost;

    // The official vector of open-dingtalk/DingTalk-Callback-Crypto (see signature_vectors.py).
    const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
    const OWNER: &str = "suite4xxxxxxxxxxxxxxx";
    const ENCRYPT: &str = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";

    fn config(owner: &str) -> Value {
        json!({"app_key": "k", "app_secret": "s", "token": "123456", "aes_key": AES_KEY, "owner_key": owner})
    }

    fn headers(signature: &str) -> Vec<(String, String)> {
        vec![(
            QUERY_HEADER.into(),
            format!("msg_signature={signature}&timestamp=1445827045067&nonce=nEXhMP4r"),
        )]
    }

    fn body() -> Vec<u8> {
        json!({"encrypt": ENCRYPT}).to_string().into_bytes()
    }

    #[test]
    fn the_official_vector_verifies_and_gets_an_encrypted_success() {
        let _host = MockHost::new().install();
        let config = config(OWNER);
        let (headers, body) = (headers("5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0"), body());
        let result = verify(WebhookRequest { config: &config, headers: &headers, body: &body }).unwrap();
        assert!(result.records.is_empty(), "check_create_suite_url is a handshake");
        let reply = result.reply.unwrap();
        assert_eq!(reply.status, 200);
        let reply: Value = serde_json::from_slice(&reply.body).unwrap();
        let enc = reply["encrypt"].as_str().unwrap();
        let ts = reply["timeStamp"].as_str().unwrap();
        let nonce = reply["nonce"].as_str().unwrap();
        assert_eq!(nonce.len(), 8);
        assert_eq!(reply["msg_signature"], callback_signature("123456", ts, nonce, enc));
        assert_eq!(decrypt(AES_KEY, enc).unwrap(), ("success".to_string(), OWNER.to_string()));
    }

    #[test]
    fn a_bad_signature_or_another_receiver_is_refused() {
        let _host = MockHost::new().install();
        let config_ok = config(OWNER);
        let (bad, body) = (headers("0000000000000000000000000000000000000000"), body());
        let e = verify(WebhookRequest { config: &config_ok, headers: &bad, body: &body }).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Unauthorized);
        assert!(e.message().contains("msg_signature does not match"), "{e}");
        let other = config("dingcorp");
        let good = headers("5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0");
        let e = verify(WebhookRequest { config: &other, headers: &good, body: &body }).unwrap_err();
        assert!(e.message().contains("suite4xxxxxxxxxxxxxxx"), "{e}");
        let e = verify(WebhookRequest { config: &config_ok, headers: &[], body: &body }).unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
    }

    #[test]
    fn business_events_become_records_with_stable_ids() {
        let _host = MockHost::new().install();
        let event = json!({"EventType": "bpms_instance_change", "processInstanceId": "a171de6c", "type": "finish",
                           "result": "agree"});
        let enc = encrypt(AES_KEY, [3; 16], &event.to_string(), OWNER).unwrap();
        let sig = callback_signature("123456", "1700000000000", "abcdefgh", &enc);
        let headers = vec![
            ("msg_signature".to_string(), sig),
            ("timestamp".to_string(), "1700000000000".to_string()),
            ("nonce".to_string(), "abcdefgh".to_string()),
        ];
        let body = json!({"encrypt": enc}).to_string().into_bytes();
        let config = config(OWNER);
        let result = verify(WebhookRequest { config: &config, headers: &headers, body: &body }).unwrap();
        assert_eq!(result.records.len(), 1);
        assert_eq!(result.records[0].id.as_deref(), Some("bpms_instance_change:a171de6c:finish"));
        assert_eq!(result.records[0].data, event);
        let plain = json!({"EventType": "user_add_org", "UserId": ["u1"]});
        assert_eq!(event_id(&plain, &plain.to_string()).len(), 20);
    }
}
