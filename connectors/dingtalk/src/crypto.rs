//! DingTalk's signatures: the custom robot's `sign` and the event-callback crypto
//! (AES-256-CBC with a 32-byte PKCS#7 block, SHA-1 over the sorted parts). The same
//! algorithms as the sandbox fake's, written again here so the connector depends on `qiao-sdk`
//! only.

use aes::Aes256;
use base64::Engine;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The PKCS#7 block the callback crypto pads to (not AES's 16).
const PAD_BLOCK: usize = 32;

/// The robot signature: `base64(HMAC-SHA256(key = secret, msg = timestamp + "\n" + secret))`,
/// before URL encoding. `timestamp` is in milliseconds.
pub fn robot_sign(secret: &str, timestamp: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes keys of any length; this branch is unreachable.
        return String::new();
    };
    mac.update(format!("{timestamp}\n{secret}").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The callback signature: lowercase hex SHA-1 of the sorted `[token, timestamp, nonce,
/// encrypt]` concatenated.
pub fn callback_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// Why a callback payload did not decrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CryptoError {
    /// The EncodingAESKey is not 43 base64 characters decoding to 32 bytes.
    BadKey,
    /// The payload is not base64, not a whole number of blocks, or badly padded.
    Malformed(&'static str),
}

/// Decodes EncodingAESKeys: their 43rd character carries two bits past the 32 bytes, which
/// DingTalk's (Java) decoder ignores and a strict decoder refuses.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CryptoError::BadKey => f.write_str("aes_key is not a 43-character EncodingAESKey"),
            CryptoError::Malformed(why) => write!(f, "encrypt does not decrypt: {why}"),
        }
    }
}

/// 16 bytes for the front of an encrypted reply. DingTalk only needs them to differ between
/// messages, not to be secret (the connector has no randomness import): SHA-256 of `seed`.
pub fn pseudo_random(seed: &str) -> [u8; 16] {
    let digest = Sha256::digest(seed.as_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&digest[..16]);
    out
}

/// The AES key and IV of an EncodingAESKey: `base64decode(key + "=")`, IV = its first 16 bytes.
fn key_of(aes_key: &str) -> Result<[u8; 32], CryptoError> {
    let bytes = LENIENT.decode(format!("{aes_key}=")).map_err(|_| CryptoError::BadKey)?;
    bytes.try_into().map_err(|_| CryptoError::BadKey)
}

/// Encrypts `message` for `receiver` with 16 `random` bytes in front, as DingTalk does:
/// `base64(AES-256-CBC(random ‖ len(msg) as u32 BE ‖ msg ‖ receiver, PKCS#7 to 32 bytes))`.
pub fn encrypt(
    aes_key: &str,
    random: [u8; 16],
    message: &str,
    receiver: &str,
) -> Result<String, CryptoError> {
    let key = key_of(aes_key)?;
    let len = u32::try_from(message.len()).map_err(|_| CryptoError::Malformed("message too long"))?;
    let mut plain = Vec::with_capacity(message.len() + receiver.len() + 52);
    plain.extend_from_slice(&random);
    plain.extend_from_slice(&len.to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(receiver.as_bytes());
    let pad = PAD_BLOCK - plain.len() % PAD_BLOCK;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let n = plain.len();
    let cipher = cbc::Encryptor::<Aes256>::new((&key).into(), key[..16].into());
    let out = cipher
        .encrypt_padded_mut::<NoPadding>(&mut plain, n)
        .map_err(|_| CryptoError::Malformed("not a whole number of blocks"))?;
    Ok(STANDARD.encode(out))
}

/// Decrypts a callback payload, returning `(message, receiver id)`.
pub fn decrypt(aes_key: &str, encrypt: &str) -> Result<(String, String), CryptoError> {
    let key = key_of(aes_key)?;
    let mut data = STANDARD.decode(encrypt).map_err(|_| CryptoError::Malformed("not base64"))?;
    let cipher = cbc::Decryptor::<Aes256>::new((&key).into(), key[..16].into());
    let plain = cipher
        .decrypt_padded_mut::<NoPadding>(&mut data)
        .map_err(|_| CryptoError::Malformed("not a whole number of blocks"))?;
    let pad = usize::from(*plain.last().ok_or(CryptoError::Malformed("empty"))?);
    if pad == 0 || pad > PAD_BLOCK || pad > plain.len() {
        return Err(CryptoError::Malformed("bad padding"));
    }
    let plain = &plain[..plain.len() - pad];
    if plain.len() < 20 {
        return Err(CryptoError::Malformed("too short"));
    }
    let len = u32::from_be_bytes([plain[16], plain[17], plain[18], plain[19]]) as usize;
    let rest = &plain[20..];
    if len > rest.len() {
        return Err(CryptoError::Malformed("length past the end"));
    }
    let message = String::from_utf8(rest[..len].to_vec()).map_err(|_| CryptoError::Malformed("not UTF-8"))?;
    let receiver =
        String::from_utf8(rest[len..].to_vec()).map_err(|_| CryptoError::Malformed("receiver not UTF-8"))?;
    Ok((message, receiver))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    // The official vector of open-dingtalk/DingTalk-Callback-Crypto (see signature_vectors.py).
    const TOKEN: &str = "123456";
    const AES_KEY: &str = "4g5j64qlyl3zvetqxz5jiocdr586fn2zvjpa8zls3ij";
    const OWNER: &str = "suite4xxxxxxxxxxxxxxx";
    const TIMESTAMP: &str = "1445827045067";
    const NONCE: &str = "nEXhMP4r";
    const SIGNATURE: &str = "5a65ceeef9aab2d149439f82dc191dd6c5cbe2c0";
    const ENCRYPT: &str = "1a3NBxmCFwkCJvfoQ7WhJHB+iX3qHPsc9JbaDznE1i03peOk1LaOQoRz3+nlyGNhwmwJ3vDMG+OzrHMeiZI7gTRWVdUBmfxjZ8Ej23JVYa9VrYeJ5as7XM/ZpulX8NEQis44w53h1qAgnC3PRzM7Zc/D6Ibr0rgUathB6zRHP8PYrfgnNOS9PhSBdHlegK+AGGanfwjXuQ9+0pZcy0w9lQ==";

    #[test]
    fn official_callback_vector_signs_and_decrypts() {
        assert_eq!(callback_signature(TOKEN, TIMESTAMP, NONCE, ENCRYPT), SIGNATURE);
        let (message, receiver) = decrypt(AES_KEY, ENCRYPT).unwrap();
        assert_eq!(
            message,
            r#"{"EventType":"check_create_suite_url","Random":"LPIdSnlF","TestSuiteKey":"suite4xxxxxxxxxxxxxxx"}"#
        );
        assert_eq!(receiver, OWNER);
    }

    #[test]
    fn encryption_round_trips_with_32_byte_padding() {
        let enc = encrypt(AES_KEY, [7; 16], "success", OWNER).unwrap();
        // 16 + 4 + 7 + 21 = 48 bytes, padded to 64.
        assert_eq!(STANDARD.decode(&enc).unwrap().len(), 64);
        assert_eq!(decrypt(AES_KEY, &enc).unwrap(), ("success".to_string(), OWNER.to_string()));
        // A message filling whole blocks gets a full 32-byte pad block.
        let enc = encrypt(AES_KEY, [0; 16], "x", "0123456789a").unwrap();
        assert_eq!(STANDARD.decode(&enc).unwrap().len(), 64);
        assert_eq!(decrypt("short", &enc), Err(CryptoError::BadKey));
    }

    #[test]
    fn robot_sign_matches_the_computed_example() {
        assert_eq!(robot_sign("SECexample", "1700000000000"), "uroalHrWHORz59talE1o26b8HuX2kOp8WlAN91F9Pj0=");
    }
}
