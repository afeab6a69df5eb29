//! Secrets and environment values for the static parts of a flow (`${env.NAME}`,
//! `${secret.NAME}`), behind [`SecretSource`].
//!
//! [`FileSecrets`] is the real source: environment variables, and secrets from
//! `QIAO_SECRET_<NAME>` variables or else from `secrets.yaml` in the state directory, a flat
//! YAML mapping of names to strings that must not be readable by group or others (mode 0600).
//! [`MemorySecrets`] is the fake for tests.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// A value that must not be shown: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret<T = String>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself. Only for handing it to the place that needs it, never for logs.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}

/// Where `${env.NAME}` and `${secret.NAME}` come from.
pub trait SecretSource {
    /// The environment value `NAME`, if set.
    fn env(&self, name: &str) -> Option<String>;
    /// The secret `NAME`, if defined.
    fn secret(&self, name: &str) -> Option<Secret>;
    /// How to define a missing secret, for the error message (e.g. which variable or file).
    fn missing_secret_hint(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// In-memory env and secrets, for tests.
#[derive(Debug, Clone, Default)]
pub struct MemorySecrets {
    env: BTreeMap<String, String>,
    secrets: BTreeMap<String, Secret>,
}

impl MemorySecrets {
    /// An empty source.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an environment value.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }

    /// Adds a secret.
    pub fn with_secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.insert(name.into(), Secret::from(value));
        self
    }
}

impl SecretSource for MemorySecrets {
    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        self.secrets.get(name).cloned()
    }
}

/// Why the secrets file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The file exists but could not be read.
    #[error("failed to read secrets file {path:?}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is readable by group or others.
    #[error(
        "refusing to read secrets file {path:?}: its permissions {mode:04o} are broader than 0600 (run `chmod 600 {}`)",
        path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is not a YAML mapping of names to strings.
    #[error("invalid secrets file {path:?}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The name of the secrets file in the state directory.
pub const SECRETS_FILE: &str = "secrets.yaml";
/// The prefix of environment variables that define secrets (`QIAO_SECRET_JIRA_TOKEN`).
pub const SECRET_ENV_PREFIX: &str = "QIAO_SECRET_";

/// The real source: process environment, `QIAO_SECRET_<NAME>` variables, then
/// `<state dir>/secrets.yaml`.
#[derive(Debug, Clone)]
pub struct FileSecrets {
    file: PathBuf,
    secrets: BTreeMap<String, Secret>,
}

impl FileSecrets {
    /// Reads `<state_dir>/secrets.yaml` if it exists. Fails if it is readable by group or
    /// others (Unix), unreadable, or not a mapping of names to strings.
    pub fn open(state_dir: &Path) -> Result<Self, SecretsError> {
        let file = state_dir.join(SECRETS_FILE);
        let meta = match std::fs::metadata(&file) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FileSecrets { file, secrets: BTreeMap::new() });
            }
            Err(source) => return Err(SecretsError::Io { path: file, source }),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(SecretsError::Permissions { path: file, mode });
            }
        }
        #[cfg(not(unix))]
        let _ = meta;
        let text = std::fs::read_to_string(&file)
            .map_err(|source| SecretsError::Io { path: file.clone(), source })?;
        let options = serde_saphyr::options! { with_snippet: false };
        let raw: Option<BTreeMap<String, String>> = serde_saphyr::from_str_with_options(&text, options)
            .map_err(|e| SecretsError::Parse { path: file.clone(), message: e.to_string() })?;
        let secrets = raw.unwrap_or_default().into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
        Ok(FileSecrets { file, secrets })
    }

    /// The environment variable that defines secret `name`: `jira_token` → `QIAO_SECRET_JIRA_TOKEN`.
    pub fn env_var_for(name: &str) -> String {
        let upper: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' })
            .collect();
        format!("{SECRET_ENV_PREFIX}{upper}")
    }
}

impl SecretSource for FileSecrets {
    /// The variable `name`, except `QIAO_SECRET_*` ones: those are secrets and only reachable
    /// as `${secret.NAME}`, so they stay redacted.
    fn env(&self, name: &str) -> Option<String> {
        if name.starts_with(SECRET_ENV_PREFIX) {
            return None;
        }
        std::env::var(name).ok()
    }

    fn secret(&self, name: &str) -> Option<Secret> {
        std::env::var(Self::env_var_for(name))
            .ok()
            .map(Secret::new)
            .or_else(|| self.secrets.get(name).cloned())
    }

    fn missing_secret_hint(&self, name: &str) -> Option<String> {
        Some(format!("set {} or add {name:?} to {}", Self::env_var_for(name), self.file.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        assert_eq!(format!("{:?}", Holder { token: s }), "Holder { token: *** }");
    }

    #[test]
    fn env_var_names() {
        assert_eq!(FileSecrets::env_var_for("jira_token"), "QIAO_SECRET_JIRA_TOKEN");
        assert_eq!(FileSecrets::env_var_for("k3.app-secret"), "QIAO_SECRET_K3_APP_SECRET");
    }

    #[test]
    fn missing_file_is_empty() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = FileSecrets::open(dir.path())?;
        assert!(s.secret("nothing-here-xyz").is_none());
        assert!(s.env("PATH").is_some());
        assert!(s.env("QIAO_SECRET_ANYTHING").is_none());
        let hint = s.missing_secret_hint("jira_token").unwrap_or_default();
        assert!(hint.starts_with("set QIAO_SECRET_JIRA_TOKEN or add \"jira_token\" to "), "{hint}");
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn reads_private_file_and_refuses_broad_permissions() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(SECRETS_FILE);
        std::fs::write(&file, "k3_secret: s3cr3t\npem: |\n  -----BEGIN-----\n  abc\n")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))?;
        let err = FileSecrets::open(dir.path()).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("refusing to read secrets file"), "{err}");
        assert!(err.contains("0644 are broader than 0600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        let s = FileSecrets::open(dir.path())?;
        assert_eq!(s.secret("k3_secret").map(|s| s.expose().clone()), Some("s3cr3t".to_string()));
        assert_eq!(s.secret("pem").map(|s| s.expose().clone()), Some("-----BEGIN-----\nabc\n".to_string()));
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn rejects_malformed_file() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir()?;
        let file = dir.path().join(SECRETS_FILE);
        std::fs::write(&file, "- a\n- b\n")?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
        let err = FileSecrets::open(dir.path()).map(|_| ()).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("invalid secrets file"), "{err}");
        Ok(())
    }
}
