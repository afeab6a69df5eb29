//! Event callbacks (HTTP push mode): the fake encrypts an event with the app's callback
//! token and EncodingAESKey, POSTs it and checks the encrypted `success` it must get back.

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::{Value, json};

use crate::crypto::{callback_signature, decrypt, encrypt};
use crate::{APP_KEY, CALLBACK_AES_KEY, CALLBACK_TOKEN, DingTalkFake};

/// What happened to one pushed callback.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct CallbackOutcome {
    /// The HTTP status the receiver answered.
    pub status: u16,
    /// The body it answered.
    pub body: String,
    /// Whether the answer was the correctly signed, encrypted `success` for this app.
    pub acknowledged: bool,
    /// Why the answer was not accepted, when it was not.
    pub problem: Option<String>,
    /// Whether the fake signed this delivery wrongly on purpose (`bad_signature` fault).
    pub signed_wrongly: bool,
}

impl DingTalkFake {
    /// Pushes `event` (a JSON object with `EventType`) to `url` the way DingTalk does: `POST
    /// url?msg_signature=&timestamp=&nonce=` with `{"encrypt": ...}`, encrypted for receiver
    /// [`APP_KEY`] with [`CALLBACK_AES_KEY`] and signed with [`CALLBACK_TOKEN`]. An armed
    /// `bad_signature` fault signs it wrongly. The reply is checked: it must be the encrypted
    /// `success` with a valid signature, or the delivery counts as failed (DingTalk retries
    /// those).
    pub async fn push_callback(&self, url: &str, event: &Value) -> Result<CallbackOutcome> {
        let timestamp = self.ctx.clock.now_ms().to_string();
        let nonce: String = (0..8).map(|_| fastrand::alphanumeric()).collect();
        let random: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        let encrypted = encrypt(CALLBACK_AES_KEY, random, &event.to_string(), APP_KEY)
            .map_err(|e| anyhow::anyhow!("encrypting the callback: {e:?}"))?;
        let signed_wrongly = self.ctx.faults.take_bad_signature();
        let token = if signed_wrongly { "not-the-callback-token" } else { CALLBACK_TOKEN };
        let signature = callback_signature(token, &timestamp, &nonce, &encrypted);
        let sep = if url.contains('?') { '&' } else { '?' };
        let target = format!("{url}{sep}msg_signature={signature}&timestamp={timestamp}&nonce={nonce}");
        let body = json!({"encrypt": encrypted}).to_string();
        let (status, reply) = qiao_sandbox_kit::push_json(&target, &[], &body)
            .await
            .with_context(|| format!("pushing a {} callback", event["EventType"]))?;
        let problem = if status == 200 { check_reply(&reply).err() } else { Some(format!("HTTP {status}")) };
        let outcome =
            CallbackOutcome { status, body: reply, acknowledged: problem.is_none(), problem, signed_wrongly };
        self.state().callbacks.push(json!({
            "event": event, "status": outcome.status, "acknowledged": outcome.acknowledged,
            "signed_wrongly": signed_wrongly,
        }));
        Ok(outcome)
    }
}

/// Checks a callback reply: `{"msg_signature", "timeStamp", "nonce", "encrypt"}` whose
/// signature verifies and whose `encrypt` decrypts to `success` for [`APP_KEY`].
pub fn check_reply(reply: &str) -> Result<(), String> {
    let reply: Value = serde_json::from_str(reply).map_err(|e| format!("reply is not JSON: {e}"))?;
    let field = |name: &str| reply[name].as_str().map(str::to_string).ok_or(format!("reply lacks {name}"));
    let (signature, timestamp, nonce, encrypted) =
        (field("msg_signature")?, field("timeStamp")?, field("nonce")?, field("encrypt")?);
    if callback_signature(CALLBACK_TOKEN, &timestamp, &nonce, &encrypted) != signature {
        return Err("reply signature does not verify".into());
    }
    let (message, receiver) = decrypt(CALLBACK_AES_KEY, &encrypted).map_err(|e| format!("reply: {e:?}"))?;
    if message != "success" {
        return Err(format!("reply decrypts to {message:?}, not \"success\""));
    }
    if receiver != APP_KEY {
        return Err(format!("reply is for receiver {receiver:?}"));
    }
    Ok(())
}
