//! `ID-VERSION.qpkg`: a gzip-compressed tar of `qiao-connector.yaml`, `connector.wasm` and
//! `README.md`, with a detached minisign signature `ID-VERSION.qpkg.minisig`.
//!
//! Packages are written deterministically (sorted entries, zero times, fixed modes), so the
//! same inputs give the same bytes and digest. They are read in memory, never extracted to
//! paths: only the three regular files are accepted, each under a size limit, so a crafted
//! archive can neither escape a folder nor exhaust memory.

use std::io::Read;

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

use crate::manifest::{MANIFEST_FILE, Manifest};
use crate::{Error, Result, keys};

/// The component's file name, in a package and in the installed layout.
pub const WASM_FILE: &str = "connector.wasm";
/// The README's file name.
pub const README_FILE: &str = "README.md";
/// The extension of package files.
pub const EXTENSION: &str = "qpkg";
/// The extension of detached signatures.
pub const SIGNATURE_EXTENSION: &str = "minisig";

/// Largest component accepted.
pub const MAX_WASM_BYTES: u64 = 64 << 20;
/// Largest manifest or README accepted.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;
/// Largest package file accepted.
pub const MAX_PACKAGE_BYTES: u64 = MAX_WASM_BYTES + 4 * MAX_TEXT_BYTES;

/// `ID-VERSION.qpkg`.
pub fn file_name(id: &str, version: &str) -> String {
    format!("{id}-{version}.{EXTENSION}")
}

/// A package's contents.
#[derive(Debug, Clone)]
pub struct Package {
    /// The parsed manifest.
    pub manifest: Manifest,
    /// The manifest as written.
    pub manifest_text: String,
    /// The component.
    pub wasm: Vec<u8>,
    /// The README.
    pub readme: String,
}

/// The trusted comment a publisher signature carries: it binds the signature to this
/// connector, version and package digest.
pub fn signature_comment(id: &str, version: &str, package_sha256: &str) -> String {
    format!("qiao-package id={id} version={version} sha256={package_sha256}")
}

/// Writes a package. Does not check the manifest against the component: `qiao connector
/// pack` does that first.
pub fn write(manifest: &Manifest, wasm: &[u8], readme: &str) -> Result<Vec<u8>> {
    let manifest_text = manifest.to_yaml()?;
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::best()));
    builder.mode(tar::HeaderMode::Deterministic);
    let files: [(&str, &[u8]); 3] =
        [(WASM_FILE, wasm), (MANIFEST_FILE, manifest_text.as_bytes()), (README_FILE, readme.as_bytes())];
    for (name, bytes) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, bytes)
            .map_err(|e| Error::io(format!("write {name} into the package"), e))?;
    }
    let gz = builder.into_inner().map_err(|e| Error::io("finish the package", e))?;
    gz.finish().map_err(|e| Error::io("compress the package", e))
}

/// Reads a package from its bytes.
pub fn read(bytes: &[u8]) -> Result<Package> {
    if bytes.len() as u64 > MAX_PACKAGE_BYTES {
        return Err(Error::Invalid(format!("package is larger than {MAX_PACKAGE_BYTES} bytes")));
    }
    let bad = |what: String| Error::Invalid(format!("malformed package: {what}"));
    let mut archive = tar::Archive::new(GzDecoder::new(bytes));
    let mut manifest_text = None;
    let mut wasm = None;
    let mut readme = None;
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        if !entry.header().entry_type().is_file() {
            return Err(bad(format!("entry {path:?} is not a regular file")));
        }
        let (slot, limit) = match path.as_str() {
            MANIFEST_FILE => (&mut manifest_text, MAX_TEXT_BYTES),
            README_FILE => (&mut readme, MAX_TEXT_BYTES),
            WASM_FILE => (&mut wasm, MAX_WASM_BYTES),
            other => return Err(bad(format!("unexpected entry {other:?}"))),
        };
        if slot.is_some() {
            return Err(bad(format!("entry {path:?} appears twice")));
        }
        let mut data = Vec::new();
        (&mut entry).take(limit + 1).read_to_end(&mut data).map_err(|e| bad(e.to_string()))?;
        if data.len() as u64 > limit {
            return Err(bad(format!("entry {path:?} is larger than {limit} bytes")));
        }
        *slot = Some(data);
    }
    let text = |name: &str, data: Option<Vec<u8>>| -> Result<String> {
        let data = data.ok_or_else(|| bad(format!("{name} is missing")))?;
        String::from_utf8(data).map_err(|_| bad(format!("{name} is not UTF-8")))
    };
    let manifest_text = text(MANIFEST_FILE, manifest_text)?;
    let readme = text(README_FILE, readme)?;
    let wasm = wasm.ok_or_else(|| bad(format!("{WASM_FILE} is missing")))?;
    let manifest = Manifest::parse(&manifest_text)?;
    Ok(Package { manifest, manifest_text, wasm, readme })
}

/// Checks a publisher signature of package bytes: made by `public_key`, over these bytes,
/// and naming this connector, version and digest in its trusted comment.
pub fn verify_signature(
    id: &str,
    version: &str,
    bytes: &[u8],
    signature: &str,
    public_key: &str,
) -> Result<()> {
    let failed = |message: String| Error::Signature { id: id.into(), version: version.into(), message };
    let comment = keys::verify(public_key, bytes, signature).map_err(failed)?;
    let sha = crate::sha256_hex(bytes);
    let expected = signature_comment(id, version, &sha);
    if comment != expected {
        return Err(failed(format!(
            "the signature was made for another package (its trusted comment is {comment:?})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::manifest::tests::manifest;

    #[test]
    fn writes_deterministically_and_reads_back() {
        let m = manifest();
        let a = write(&m, b"\0asm-fake", "# Acme\n").unwrap();
        let b = write(&m, b"\0asm-fake", "# Acme\n").unwrap();
        assert_eq!(a, b, "same inputs, same bytes");
        let p = read(&a).unwrap();
        assert_eq!(p.manifest, m);
        assert_eq!(p.wasm, b"\0asm-fake");
        assert_eq!(p.readme, "# Acme\n");
        assert_eq!(file_name("acme-echo", "0.1.0"), "acme-echo-0.1.0.qpkg");
    }

    #[test]
    fn refuses_unexpected_entries_and_garbage() {
        let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
        let mut header = tar::Header::new_gnu();
        header.set_size(2);
        header.set_mode(0o644);
        header.set_cksum();
        builder.append_data(&mut header, "evil.sh", &b"hi"[..]).unwrap();
        let bytes = builder.into_inner().unwrap().finish().unwrap();
        let err = read(&bytes).unwrap_err().to_string();
        assert!(err.contains("unexpected entry \"evil.sh\""), "{err}");
        let err = read(b"not gzip at all").unwrap_err().to_string();
        assert!(err.starts_with("malformed package"), "{err}");
    }

    #[test]
    fn signatures_bind_id_version_and_digest() {
        let dir = tempfile::tempdir().unwrap();
        let key = keys::generate(&dir.path().join("k"), keys::Password::None, false).unwrap();
        let signer = keys::SigningKey::load(&key.secret_path, keys::Password::None).unwrap();
        let bytes = write(&manifest(), b"\0asm", "").unwrap();
        let sig = signer
            .sign(&bytes, &signature_comment("acme-echo", "0.1.0", &crate::sha256_hex(&bytes)))
            .unwrap();
        verify_signature("acme-echo", "0.1.0", &bytes, &sig, &key.public_key).unwrap();
        let err = verify_signature("acme-echo", "0.2.0", &bytes, &sig, &key.public_key).unwrap_err();
        assert!(err.to_string().contains("made for another package"), "{err}");
        let mut tampered = bytes.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let err = verify_signature("acme-echo", "0.1.0", &tampered, &sig, &key.public_key).unwrap_err();
        assert!(err.to_string().contains("does not verify"), "{err}");
    }
}
