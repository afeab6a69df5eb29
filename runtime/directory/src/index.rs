//! `index.json`: a directory's signed list of publishers and connector versions.
//!
//! ```json
//! {
//!   "schema": 1,
//!   "name": "first-party",
//!   "serial": 7,
//!   "expires": "2026-12-25T00:00:00Z",
//!   "publishers": { "qiao": { "keys": ["RWQ…"] } },
//!   "connectors": {
//!     "http": {
//!       "publisher": "qiao", "title": "HTTP", "description": "…",
//!       "versions": {
//!         "0.1.0": {
//!           "url": "packages/http-0.1.0.qpkg", "size": 170233, "sha256": "…",
//!           "signature": "untrusted comment: …\n…", "wit": "0.1.0", "runtime": "^0.1",
//!           "capabilities": { "hosts": ["{config.base_url}"], "private_network": true },
//!           "yanked": false, "published": "2026-11-25T10:00:00Z"
//!         }
//!       }
//!     }
//!   }
//! }
//! ```
//!
//! The file is signed as a whole by the directory key (`index.json.minisig`, trusted comment
//! `qiao-index name=… serial=…`). `serial` grows with every build, so a client refuses an
//! index older than one it saw; `expires` bounds how long a frozen copy stays acceptable.

use std::collections::BTreeMap;

use jiff::Timestamp;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::manifest::Capabilities;
use crate::{Error, Result};

/// The index format version.
pub const SCHEMA: u32 = 1;
/// The index file name.
pub const INDEX_FILE: &str = "index.json";
/// The index signature file name.
pub const SIGNATURE_FILE: &str = "index.json.minisig";
/// Largest index accepted.
pub const MAX_INDEX_BYTES: u64 = 16 << 20;

/// A directory index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// Format version ([`SCHEMA`]).
    pub schema: u32,
    /// The directory's name (kebab-case).
    pub name: String,
    /// Grows with every signed build.
    pub serial: u64,
    /// After this time clients refuse the index.
    pub expires: Timestamp,
    /// Publishers by id.
    #[serde(default)]
    pub publishers: BTreeMap<String, Publisher>,
    /// Connectors by id.
    #[serde(default)]
    pub connectors: BTreeMap<String, ConnectorEntry>,
}

/// A publisher and the keys its packages may be signed with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Publisher {
    /// minisign public keys, base64.
    pub keys: Vec<String>,
}

/// A connector and its versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorEntry {
    /// The publisher id.
    pub publisher: String,
    /// Title of the newest version.
    #[serde(default)]
    pub title: String,
    /// Description of the newest version.
    #[serde(default)]
    pub description: String,
    /// Versions by version text.
    pub versions: BTreeMap<String, VersionEntry>,
}

/// One published version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionEntry {
    /// Where the package is: relative to the index, or an absolute http(s) URL.
    pub url: String,
    /// Package size in bytes.
    pub size: u64,
    /// Package sha256, hex.
    pub sha256: String,
    /// The publisher's minisign signature of the package.
    pub signature: String,
    /// WIT version of `qiao:connector` the component is built against.
    pub wit: String,
    /// qiao versions it runs on.
    pub runtime: String,
    /// What it asks the admin for.
    pub capabilities: Capabilities,
    /// Withdrawn by the publisher: not installed by ranges, refused by exact requests.
    #[serde(default)]
    pub yanked: bool,
    /// Why it was yanked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub yank_reason: Option<String>,
    /// When it was added.
    pub published: Timestamp,
}

/// The trusted comment of an index signature.
pub fn signature_comment(name: &str, serial: u64) -> String {
    format!("qiao-index name={name} serial={serial}")
}

impl Index {
    /// A new, empty index.
    pub fn new(name: &str) -> Index {
        Index {
            schema: SCHEMA,
            name: name.to_string(),
            serial: 0,
            expires: Timestamp::UNIX_EPOCH,
            publishers: BTreeMap::new(),
            connectors: BTreeMap::new(),
        }
    }

    /// Parses and validates an index.
    pub fn parse(bytes: &[u8]) -> Result<Index> {
        let index: Index = serde_json::from_slice(bytes)
            .map_err(|e| Error::Invalid(format!("malformed directory index: {e}")))?;
        index.validate()?;
        Ok(index)
    }

    /// The JSON text, pretty-printed.
    pub fn to_json(&self) -> Result<Vec<u8>> {
        let mut text = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Invalid(format!("failed to write the index: {e}")))?;
        text.push(b'\n');
        Ok(text)
    }

    /// Checks the schema, that ids and versions are well-formed (they become paths), that
    /// every connector's publisher exists and every URL is acceptable.
    pub fn validate(&self) -> Result<()> {
        if self.schema != SCHEMA {
            return Err(Error::Invalid(format!(
                "directory index has schema {}, this qiao reads schema {SCHEMA}",
                self.schema
            )));
        }
        crate::check_id("directory name", &self.name)?;
        for (name, publisher) in &self.publishers {
            crate::check_id("publisher id", name)?;
            for key in &publisher.keys {
                crate::keys::public_key_id(key)?;
            }
        }
        for (id, entry) in &self.connectors {
            crate::check_id("connector id", id)?;
            if !self.publishers.contains_key(&entry.publisher) {
                return Err(Error::Invalid(format!(
                    "connector {id} names publisher {:?}, which the index does not list",
                    entry.publisher
                )));
            }
            for (version, v) in &entry.versions {
                let parsed = crate::parse_version(&format!("{id} version"), version)?;
                if parsed.to_string() != *version {
                    return Err(Error::Invalid(format!("{id} version {version:?} is not in canonical form")));
                }
                if v.sha256.len() != 64 || !v.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Error::Invalid(format!("{id} {version}: sha256 is not 64 hex digits")));
                }
                check_url(&v.url).map_err(|m| Error::Invalid(format!("{id} {version}: {m}")))?;
            }
        }
        Ok(())
    }

    /// The versions of a connector, newest first.
    pub fn versions(&self, id: &str) -> Vec<(Version, &VersionEntry)> {
        let mut out: Vec<(Version, &VersionEntry)> = self
            .connectors
            .get(id)
            .map(|c| c.versions.iter().filter_map(|(v, e)| Version::parse(v).ok().map(|v| (v, e))).collect())
            .unwrap_or_default();
        out.sort_by(|a, b| b.0.cmp(&a.0));
        out
    }
}

/// A package URL: relative without `..` or absolute http(s).
fn check_url(url: &str) -> std::result::Result<(), String> {
    if url.starts_with("http://") || url.starts_with("https://") {
        return url::Url::parse(url).map(|_| ()).map_err(|e| format!("url {url:?} is invalid: {e}"));
    }
    if url.contains("://")
        || url.starts_with('/')
        || url.contains('\\')
        || url.split('/').any(|p| p == ".." || p.is_empty())
    {
        return Err(format!("url {url:?} must be relative to the index (no '..') or absolute http(s)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refuses_unsafe_ids_and_urls() {
        let mut index = Index::new("first-party");
        assert!(index.validate().is_ok());
        let text = String::from_utf8(index.to_json().unwrap()).unwrap();
        assert_eq!(Index::parse(text.as_bytes()).unwrap(), index);
        index.name = "../x".into();
        assert!(index.validate().is_err());
        for bad in ["../a.qpkg", "/etc/passwd", "file:///etc/passwd", "a//b"] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        for good in ["packages/a-0.1.0.qpkg", "https://cdn.example.com/a.qpkg"] {
            assert!(check_url(good).is_ok(), "{good}");
        }
    }
}
