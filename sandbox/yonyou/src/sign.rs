//! The self-built app token signature: HMAC-SHA256 over `appKey<key>timestamp<ts>` keyed with
//! the app secret, standard Base64 (the caller URL-encodes it once when it puts it in a query).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The string the signature covers: every query parameter except `signature`, sorted by name,
/// as `name + value` with no separators. For the token call that is `appKey…timestamp…`.
pub fn string_to_sign(app_key: &str, timestamp: &str) -> String {
    format!("appKey{app_key}timestamp{timestamp}")
}

/// The Base64 signature of a token request (before URL encoding).
pub fn sign(app_key: &str, app_secret: &str, timestamp: &str) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()) else {
        return String::new();
    };
    mac.update(string_to_sign(app_key, timestamp).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Compares two signatures without an early exit on the first differing byte.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector of `signature_vectors.py` (appKey `demo`, secret `top-secret`).
    #[test]
    fn known_good_vector() {
        assert_eq!(string_to_sign("demo", "1547192727928"), "appKeydemotimestamp1547192727928");
        assert_eq!(
            sign("demo", "top-secret", "1547192727928"),
            "lnFTU9B9EcwhEOksJG5pIYtCUNrdotrzJxulNzy+a/Q="
        );
        let encoded: String =
            url::form_urlencoded::byte_serialize(sign("demo", "top-secret", "1547192727928").as_bytes())
                .collect();
        assert_eq!(encoded, "lnFTU9B9EcwhEOksJG5pIYtCUNrdotrzJxulNzy%2Ba%2FQ%3D");
    }

    #[test]
    fn comparison() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
