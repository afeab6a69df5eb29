//! The token request signature: HMAC-SHA256 over `appKey<key>timestamp<ts>` keyed with the app
//! secret, standard Base64. The SDK's query builder URL-encodes it exactly once.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The Base64 signature of a token request.
pub fn sign(app_key: &str, app_secret: &str, timestamp: &str) -> String {
    // HMAC takes keys of any length: `new_from_slice` cannot fail.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("appKey{app_key}timestamp{timestamp}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// A 32-character key (the gateway's `resubmitCheckKey` limit) derived from the engine's
/// idempotency key and, for batch items, the item's position.
pub fn check_key(idempotency_key: &str, item: Option<usize>) -> String {
    let mut h = Sha256::new();
    h.update(idempotency_key.as_bytes());
    if let Some(i) = item {
        h.update(format!("#{i}").as_bytes());
    }
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_good_vector() {
        // signature_vectors.py: appKey demo, secret top-secret, ts 1547192727928.
        assert_eq!(
            sign("demo", "top-secret", "1547192727928"),
            "lnFTU9B9EcwhEOksJG5pIYtCUNrdotrzJxulNzy+a/Q="
        );
        let url = qiao_sdk::http::Request::get("https://t.test/x")
            .query("signature", sign("demo", "top-secret", "1547192727928"));
        assert_eq!(
            url.url(),
            "https://t.test/x?signature=lnFTU9B9EcwhEOksJG5pIYtCUNrdotrzJxulNzy%2Ba%2FQ%3D"
        );
    }

    #[test]
    fn check_keys_are_short_and_distinct() {
        let k = check_key("flow:FKSQ-1:book", None);
        assert_eq!(k.len(), 32);
        assert_eq!(k, check_key("flow:FKSQ-1:book", None));
        assert_ne!(k, check_key("flow:FKSQ-1:book", Some(0)));
        assert_ne!(check_key("k", Some(1)), check_key("k", Some(2)));
    }
}
