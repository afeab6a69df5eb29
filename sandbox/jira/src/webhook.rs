//! Outgoing webhooks, delivered the way Jira delivers admin-registered webhooks with a secret:
//! JSON body, `X-Atlassian-Webhook-Identifier` (stable across retries),
//! `X-Atlassian-Webhook-Retry`, `X-Atlassian-Webhook-Flow` and
//! `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>`.

use anyhow::Result;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::JiraFake;
use crate::model::{FieldSelection, User};

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// `X-Atlassian-Webhook-Identifier`, the same for every retry of one event.
    pub identifier: String,
    /// The retry count sent (`0` for the first attempt).
    pub retry: u32,
    /// The exact body sent.
    pub payload: String,
    /// Headers sent (besides `content-type`).
    pub headers: Vec<(String, String)>,
    /// The receiver's status.
    pub status: u16,
    /// The receiver's body.
    pub body: String,
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `X-Hub-Signature` value.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl JiraFake {
    /// An issue event (`jira:issue_created`, `jira:issue_updated`, ...) for issue `key` as it
    /// is now, timestamped with the sandbox clock.
    pub fn issue_event(&self, key: &str, webhook_event: &str) -> Option<Value> {
        let s = self.state();
        let issue = s.issue(key)?;
        let select = FieldSelection::Named(
            ["summary", "status", "updated", "created", "project", "issuetype", "assignee", "labels"]
                .map(String::from)
                .to_vec(),
        );
        let rendered = issue.json("http://jira.sandbox", &s.worklogs_of(issue.id), &select);
        Some(json!({
            "timestamp": self.now_ms(),
            "webhookEvent": webhook_event,
            "issue_event_type_name": "issue_generic",
            "user": User::ApiUser.json(),
            "issue": rendered,
            "matchedWebhookIds": [1],
        }))
    }

    /// A worklog event (`worklog_created`, `worklog_updated`, `worklog_deleted`) for worklog `id`.
    pub fn worklog_event(&self, id: u64, webhook_event: &str) -> Option<Value> {
        let s = self.state();
        let w = s.worklogs.iter().find(|w| w.id == id)?;
        Some(
            json!({"timestamp": self.now_ms(), "webhookEvent": webhook_event, "worklog": w.json("http://jira.sandbox")}),
        )
    }

    /// Delivers `event` to `url` as a first attempt, signed with `secret` when given. An armed
    /// bad signature ([`qiao_sandbox_kit::Faults::take_bad_signature`]) signs with a wrong key.
    pub async fn push_webhook(&self, url: &str, secret: Option<&str>, event: &Value) -> Result<Delivery> {
        let identifier =
            format!("{:08x}-1e5b-4c1d-9a3f-{:012x}", 0x7c3a_0000 + self.next_webhook_seq(), self.now_ms());
        self.deliver(url, secret, event.to_string(), identifier, 0).await
    }

    /// Delivers `previous` again as Jira's retry: same identifier and body, retry count + 1.
    pub async fn redeliver(&self, url: &str, secret: Option<&str>, previous: &Delivery) -> Result<Delivery> {
        self.deliver(url, secret, previous.payload.clone(), previous.identifier.clone(), previous.retry + 1)
            .await
    }

    async fn deliver(
        &self,
        url: &str,
        secret: Option<&str>,
        payload: String,
        identifier: String,
        retry: u32,
    ) -> Result<Delivery> {
        let mut headers = vec![
            ("user-agent".to_string(), "Atlassian Webhook HTTP Client".to_string()),
            ("x-atlassian-webhook-identifier".to_string(), identifier.clone()),
            ("x-atlassian-webhook-retry".to_string(), retry.to_string()),
            (
                "x-atlassian-webhook-flow".to_string(),
                if retry == 0 { "Primary" } else { "Secondary" }.to_string(),
            ),
        ];
        let bad = self.ctx.faults.take_bad_signature();
        if let Some(secret) = secret.filter(|s| !s.is_empty()) {
            let key = if bad { format!("{secret}-wrong") } else { secret.to_string() };
            headers.push(("x-hub-signature".to_string(), sign(&key, payload.as_bytes())));
        }
        let (status, body) = qiao_sandbox_kit::push_json(url, &headers, &payload).await?;
        let event: Value = serde_json::from_str(&payload).unwrap_or(Value::Null);
        self.state().writes.webhooks.push(json!({
            "identifier": identifier, "retry": retry, "url": url, "event": event["webhookEvent"],
            "signed": secret.is_some_and(|s| !s.is_empty()), "bad_signature": bad, "status": status,
        }));
        Ok(Delivery { identifier, retry, payload, headers, status, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_the_known_vector() {
        // The WebSub-style sha256 example GitHub publishes for its `X-Hub-Signature-256`.
        assert_eq!(
            sign("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
