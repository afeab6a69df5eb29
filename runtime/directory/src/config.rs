//! `$QIAO_HOME/config.yaml`: the directories an admin trusts.
//!
//! ```yaml
//! directories:
//!   - name: first-party
//!     url: https://connectors.example.com/qiao/     # or a folder: /srv/qiao-directory
//!     key: RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3   # the directory's public key
//! ```
//!
//! Other top-level sections are left to other parts of qiao.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The config file's name in `$QIAO_HOME`.
pub const CONFIG_FILE: &str = "config.yaml";

/// The part of `config.yaml` this crate reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Config {
    /// Trusted directories, searched in order.
    #[serde(default)]
    pub directories: Vec<DirectoryConfig>,
}

/// One trusted directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectoryConfig {
    /// A local name (kebab-case): names the directory in messages and in the rollback record.
    pub name: String,
    /// Where `index.json` is: a folder path, `file://` URL, or `http(s)://` URL of the folder.
    pub url: String,
    /// The directory's minisign public key (base64, the second line of its `.pub` file).
    pub key: String,
}

impl Config {
    /// Reads `$QIAO_HOME/config.yaml`; a missing file is an empty config.
    pub fn load(home: &Path) -> Result<Config> {
        let path = home.join(CONFIG_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => return Err(Error::io(format!("read {}", path.display()), e)),
        };
        let config: Config = serde_saphyr::from_str(&text)
            .map_err(|e| Error::Invalid(format!("invalid {}: {e}", path.display())))?;
        config.validate().map_err(|e| Error::Invalid(format!("invalid {}: {e}", path.display())))?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for d in &self.directories {
            crate::check_id("directory name", &d.name)?;
            crate::keys::public_key_id(&d.key)
                .map_err(|e| Error::Invalid(format!("directory {:?}: key: {e}", d.name)))?;
            if !seen.insert(d.name.as_str()) {
                return Err(Error::Invalid(format!("directory {:?} is configured twice", d.name)));
            }
        }
        Ok(())
    }

    /// The trusted directories, or an error saying how to configure one.
    pub fn require_directories(&self, home: &Path) -> Result<&[DirectoryConfig]> {
        if self.directories.is_empty() {
            return Err(Error::Invalid(format!(
                "no directories configured: add one under `directories:` in {} (name, url, key)",
                home.join(CONFIG_FILE).display()
            )));
        }
        Ok(&self.directories)
    }
}
