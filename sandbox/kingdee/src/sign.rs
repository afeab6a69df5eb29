//! The two signatures of K/3 Cloud WebAPI: the `LoginBySign` login signature and the
//! per-request `kd_hmac` header signatures of the SDK's third-party-app mode.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The key `apiSecret` is derived with: byte *i* of the decoded app code is XORed with byte *i*
/// of this ASCII text.
const APP_CODE_XOR: &[u8] = b"0054f397c6234378b09ca7d3e5debce7";

/// `LoginBySign`'s signature: the five strings sorted ordinally, concatenated, SHA-256,
/// lowercase hex.
pub fn login_sign(acct_id: &str, user: &str, app_id: &str, app_secret: &str, timestamp: &str) -> String {
    let mut parts = [acct_id, user, app_id, app_secret, timestamp];
    parts.sort_unstable();
    hex::encode(Sha256::digest(parts.concat().as_bytes()))
}

/// `kd_hmac(msg, key)`: base64 of the lowercase hex text of HMAC-SHA256(key, msg).
pub fn kd_hmac(msg: &str, key: &str) -> String {
    // HMAC-SHA256 takes keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(msg.as_bytes());
    B64.encode(hex::encode(mac.finalize().into_bytes()))
}

/// The `apiSecret` of an app id `<clientId>_<32-char code>`: the code base64-decoded, XORed
/// with [`APP_CODE_XOR`], base64-encoded. `None` when the app id has no decodable code.
pub fn api_secret(app_id: &str) -> Option<String> {
    let (_, code) = app_id.split_once('_')?;
    let bytes = B64.decode(code).ok()?;
    let xored: Vec<u8> = bytes.iter().zip(APP_CODE_XOR).map(|(b, k)| b ^ k).collect();
    Some(B64.encode(xored))
}

/// The client id part of an app id (`123456` of `123456_abcd...`).
pub fn client_id(app_id: &str) -> &str {
    app_id.split_once('_').map_or(app_id, |(id, _)| id)
}

/// The text `X-Api-Signature` signs for a POST to `path`.
pub fn api_string_to_sign(path: &str, nonce: &str, timestamp: &str) -> String {
    let encoded = path_encode(path);
    format!("POST\n{encoded}\n\nx-api-nonce:{nonce}\nx-api-timestamp:{timestamp}\n")
}

/// The URL path percent-encoded the way the SDKs do it (`/` → `%2F`, unreserved kept).
fn path_encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len() * 3);
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `X-Kd-Appdata`'s plain text: `acctId,username,lcid,orgNum`.
pub fn app_data(acct_id: &str, user: &str, lcid: &str, org_num: &str) -> String {
    format!("{acct_id},{user},{lcid},{org_num}")
}

/// `X-Kd-Signature` over the app data text.
pub fn kd_signature(app_id: &str, app_data: &str, app_secret: &str) -> String {
    kd_hmac(&format!("{app_id}{app_data}"), app_secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From `signature_vectors.py`.
    #[test]
    fn login_sign_matches_the_known_vector() {
        let sign = login_sign(
            "62f0a1b2c3d4e5",
            "demo",
            "123456_abcdEFGHijklMNOPqrstUVWXyz012345",
            "0123456789abcdef0123456789abcdef",
            "1700000000",
        );
        assert_eq!(sign, "e631348dc92aaf016e2f886a5bf884cf6b94c5aef2f62f8800fcf0321aa1576c");
    }

    /// From `signature_vectors.py` (the published API-gateway test case).
    #[test]
    fn kd_hmac_matches_the_known_vector() {
        assert_eq!(
            kd_hmac("abc", "abc123"),
            "ZDljMTI3NGIyNTE1MTRkYzlkNjc1MDNhYjUzMzgzNWMyY2M4YTdjMzdmNmM3YTVlNDkxMTkzNjdiOTFjNzUyZQ=="
        );
    }

    #[test]
    fn api_secret_xors_the_app_code() {
        let secret = api_secret("123456_abcdEFGHijklMNOPqrstUVWXyz012345").unwrap_or_default();
        let decoded = B64.decode(&secret).unwrap_or_default();
        let code = B64.decode("abcdEFGHijklMNOPqrstUVWXyz012345").unwrap_or_default();
        assert_eq!(decoded.len(), 24);
        assert_eq!(decoded[0], code[0] ^ b'0');
        assert_eq!(decoded[23], code[23] ^ APP_CODE_XOR[23]);
        assert_eq!(api_secret("no-code"), None);
        assert_eq!(client_id("123456_abc"), "123456");
    }

    #[test]
    fn api_string_to_sign_encodes_slashes() {
        let s = api_string_to_sign("/k3cloud/A.B.Save.common.kdsvc", "1700000000", "1700000000");
        assert_eq!(
            s,
            "POST\n%2Fk3cloud%2FA.B.Save.common.kdsvc\n\nx-api-nonce:1700000000\nx-api-timestamp:1700000000\n"
        );
    }
}
