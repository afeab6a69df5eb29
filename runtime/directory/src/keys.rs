//! minisign keys and signatures.
//!
//! Files follow minisign's conventions, so the `minisign` tool can read them: `NAME.pub` is
//! the public key (an untrusted comment line, then the base64 key), `NAME.key` the secret key,
//! encrypted with a password through scrypt unless the publisher opts out, and written with
//! mode 0600 either way. A signature is a `.minisig` text whose *trusted comment* is signed
//! too: it names what was signed (`qiao-package id=jira version=0.2.0 sha256=…`), so a valid
//! signature cannot be replayed on another package or index.
//!
//! Secret key material is never printed, logged or put in an error message.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;

use crate::{Error, Result};

/// A key pair written to disk.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The public key file (`NAME.pub`).
    pub public_path: PathBuf,
    /// The secret key file (`NAME.key`, mode 0600).
    pub secret_path: PathBuf,
    /// The public key, base64 (the second line of the `.pub` file).
    pub public_key: String,
    /// The key id, 16 hex digits as minisign prints it.
    pub key_id: String,
    /// Whether the secret key is password-protected.
    pub encrypted: bool,
}

/// Where a secret key's password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Password {
    /// No password: the secret key is (or is written) unencrypted.
    None,
    /// This password.
    Given(String),
    /// Ask on the terminal (minisign's prompt).
    Prompt,
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Password::None => "None",
            Password::Given(_) => "Given(***)",
            Password::Prompt => "Prompt",
        })
    }
}

/// Generates a key pair and writes `BASE.pub` and `BASE.key` (0600). `Password::None` writes
/// an unencrypted secret key. Refuses to overwrite existing files unless `force`.
pub fn generate(base: &Path, password: Password, force: bool) -> Result<GeneratedKey> {
    let public_path = base.with_extension("pub");
    let secret_path = base.with_extension("key");
    if !force {
        for path in [&public_path, &secret_path] {
            if path.exists() {
                return Err(Error::Invalid(format!(
                    "{} already exists; pass --force to replace it",
                    path.display()
                )));
            }
        }
    }
    let encrypted = password != Password::None;
    let pair = match password {
        Password::Given(p) => minisign::KeyPair::generate_encrypted_keypair(Some(p)),
        Password::Prompt => minisign::KeyPair::generate_encrypted_keypair(None),
        Password::None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(|e| Error::Key(format!("failed to generate a key pair: {e}")))?;
    let key_id = key_id_hex(pair.pk.keynum());
    let comment = format!("qiao secret key {key_id}");
    let secret_box = pair
        .sk
        .to_box(Some(&comment))
        .map_err(|e| Error::Key(format!("failed to encode the secret key: {e}")))?;
    let public_box =
        pair.pk.to_box().map_err(|e| Error::Key(format!("failed to encode the public key: {e}")))?;
    let public_text = public_box.into_string();
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(format!("create {}", parent.display()), e))?;
    }
    write_private(&secret_path, secret_box.into_string().as_bytes())?;
    crate::write_atomic(&public_path, public_text.as_bytes())?;
    Ok(GeneratedKey { public_path, secret_path, public_key: pk_base64(&public_text)?, key_id, encrypted })
}

/// Writes a file only its owner can read (0600 on Unix), replacing it.
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let _ = std::fs::remove_file(path);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    file.write_all(bytes).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    file.sync_all().map_err(|e| Error::io(format!("write {}", path.display()), e))
}

/// minisign's key id display: the 8 key-number bytes as a little-endian u64 in hex.
fn key_id_hex(keynum: &[u8]) -> String {
    let mut b = [0u8; 8];
    let n = keynum.len().min(8);
    b[..n].copy_from_slice(&keynum[..n]);
    format!("{:016X}", u64::from_le_bytes(b))
}

/// The base64 key line of a `.pub` file's text (or the text itself when it is just the key).
pub fn pk_base64(text: &str) -> Result<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or_else(|| Error::Invalid("public key is empty".into()))?;
    public_key_id(line)?;
    Ok(line.to_string())
}

/// Reads a `.pub` file and returns its base64 key.
pub fn read_public_key(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    pk_base64(&text).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
}

/// The key id of a base64 public key.
pub fn public_key_id(b64: &str) -> Result<String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| Error::Invalid(format!("{b64:?} is not a minisign public key (bad base64)")))?;
    if bytes.len() != 42 || &bytes[..2] != b"Ed" {
        return Err(Error::Invalid(format!("{b64:?} is not a minisign Ed25519 public key")));
    }
    Ok(key_id_hex(&bytes[2..10]))
}

/// The key id a minisign signature names.
pub fn signature_key_id(signature: &str) -> Result<String> {
    let line = signature
        .lines()
        .nth(1)
        .ok_or_else(|| Error::Invalid("signature is not in minisign format (too short)".into()))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line.trim())
        .map_err(|_| Error::Invalid("signature is not in minisign format (bad base64)".into()))?;
    if bytes.len() != 74 {
        return Err(Error::Invalid("signature is not in minisign format (wrong length)".into()));
    }
    Ok(key_id_hex(&bytes[2..10]))
}

/// A secret key ready to sign, with its public half.
pub struct SigningKey {
    sk: minisign::SecretKey,
    pk: minisign::PublicKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Whether a secret key file is password-protected.
pub fn is_encrypted(path: &Path) -> Result<bool> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    match minisign::SecretKeyBox::from_string(&text).and_then(|b| b.into_unencrypted_secret_key()) {
        Ok(_) => Ok(false),
        Err(e) if e.to_string().contains("encrypted") => Ok(true),
        Err(_) => Err(Error::Key(format!("{} is not a minisign secret key", path.display()))),
    }
}

impl SigningKey {
    /// Loads a secret key. `password` is used when the key is encrypted; an encrypted key
    /// without a password is an error naming how to pass one.
    pub fn load(path: &Path, password: Password) -> Result<SigningKey> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        let sk_box = minisign::SecretKeyBox::from_string(&text)
            .map_err(|_| Error::Key(format!("{} is not a minisign secret key", path.display())))?;
        let sk = if is_encrypted(path)? {
            let password = match password {
                Password::Given(p) => Some(p),
                Password::Prompt => None,
                Password::None => {
                    return Err(Error::Key(format!(
                        "secret key {} is password-protected: give the password with --password-file or QIAO_KEY_PASSWORD",
                        path.display()
                    )));
                }
            };
            sk_box.into_secret_key(password).map_err(|e| {
                if e.to_string().contains("Wrong password") {
                    Error::Key(format!("wrong password for secret key {}", path.display()))
                } else {
                    Error::Key(format!("failed to decrypt secret key {}", path.display()))
                }
            })?
        } else {
            sk_box
                .into_unencrypted_secret_key()
                .map_err(|_| Error::Key(format!("{} is not a usable minisign secret key", path.display())))?
        };
        let pk = minisign::PublicKey::from_secret_key(&sk)
            .map_err(|_| Error::Key(format!("failed to derive the public key of {}", path.display())))?;
        let key_id = key_id_hex(pk.keynum());
        Ok(SigningKey { sk, pk, key_id })
    }

    /// The key id (16 hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The public key, base64.
    pub fn public_key(&self) -> String {
        self.pk.to_base64()
    }

    /// Signs `bytes`; the trusted comment is signed too. Returns the `.minisig` text.
    pub fn sign(&self, bytes: &[u8], trusted_comment: &str) -> Result<String> {
        let untrusted = format!("signature from qiao key {}", self.key_id);
        let sig = minisign::sign(Some(&self.pk), &self.sk, bytes, Some(trusted_comment), Some(&untrusted))
            .map_err(|e| Error::Key(format!("failed to sign: {e}")))?;
        Ok(sig.into_string())
    }
}

/// Verifies a `.minisig` signature of `bytes` by the base64 public key and returns its
/// trusted comment. Legacy (non-prehashed) signatures are refused.
pub fn verify(public_key: &str, bytes: &[u8], signature: &str) -> std::result::Result<String, String> {
    let pk = minisign_verify::PublicKey::from_base64(public_key.trim())
        .map_err(|e| format!("the public key is unusable: {e}"))?;
    let sig = minisign_verify::Signature::decode(signature)
        .map_err(|e| format!("the signature is malformed: {e}"))?;
    pk.verify(bytes, &sig, false).map_err(|e| match e {
        minisign_verify::Error::UnexpectedKeyId => "it was made with another key".to_string(),
        minisign_verify::Error::InvalidSignature => {
            "the signed content differs from what was received (altered after signing, or a signature of something else)".to_string()
        }
        other => other.to_string(),
    })?;
    Ok(sig.trusted_comment().to_string())
}

/// `key=value` fields of a trusted comment (`qiao-package id=jira version=0.2.0 sha256=…`).
pub fn comment_fields(comment: &str) -> Vec<(&str, &str)> {
    comment.split_whitespace().filter_map(|w| w.split_once('=')).collect()
}

/// The value of `key` in a trusted comment.
pub fn comment_field<'a>(comment: &'a str, key: &str) -> Option<&'a str> {
    comment_fields(comment).into_iter().find(|(k, _)| *k == key).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn generates_signs_and_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(&dir.path().join("acme"), Password::None, false).unwrap();
        assert!(!key.encrypted);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key.secret_path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let pub_text = std::fs::read_to_string(&key.public_path).unwrap();
        assert!(pub_text.starts_with("untrusted comment: "), "{pub_text}");
        assert_eq!(read_public_key(&key.public_path).unwrap(), key.public_key);
        assert_eq!(public_key_id(&key.public_key).unwrap(), key.key_id);

        let signer = SigningKey::load(&key.secret_path, Password::None).unwrap();
        assert_eq!(signer.key_id(), key.key_id);
        let sig = signer.sign(b"hello", "qiao-package id=x version=0.1.0").unwrap();
        assert_eq!(signature_key_id(&sig).unwrap(), key.key_id);
        let comment = verify(&key.public_key, b"hello", &sig).unwrap();
        assert_eq!(comment_field(&comment, "version"), Some("0.1.0"));
        let err = verify(&key.public_key, b"hellO", &sig).unwrap_err();
        assert!(err.contains("differs"), "{err}");

        let other = generate(&dir.path().join("other"), Password::None, false).unwrap();
        assert_eq!(verify(&other.public_key, b"hello", &sig).unwrap_err(), "it was made with another key");
        assert!(generate(&dir.path().join("acme"), Password::None, false).is_err(), "no silent overwrite");
        assert!(!format!("{signer:?}").contains(&key.public_key));
    }

    #[test]
    fn password_protected_keys_need_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate(&dir.path().join("pw"), Password::Given("s3cret pass".into()), false).unwrap();
        assert!(key.encrypted);
        assert!(is_encrypted(&key.secret_path).unwrap());
        let missing = SigningKey::load(&key.secret_path, Password::None).unwrap_err().to_string();
        assert!(missing.contains("password-protected"), "{missing}");
        let wrong =
            SigningKey::load(&key.secret_path, Password::Given("nope".into())).unwrap_err().to_string();
        assert!(wrong.contains("wrong password"), "{wrong}");
        let signer = SigningKey::load(&key.secret_path, Password::Given("s3cret pass".into())).unwrap();
        let sig = signer.sign(b"data", "c").unwrap();
        assert!(verify(&key.public_key, b"data", &sig).is_ok());
    }
}
