//! `qiao-connector.yaml`: what a package says about its connector.
//!
//! The author keeps a short [`AuthorManifest`] in the connector crate (publisher, the
//! capabilities to request, the runtime range). `qiao connector pack` completes it from the
//! component itself — `describe()` and the WIT version read from the binary — into the
//! [`Manifest`] that goes into the package, refusing a manifest that disagrees with the
//! component or requests more than it declares.

use std::collections::BTreeSet;

use qiao_contract::{ConnectorInfo, OperationKind};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// The manifest's file name, in a crate and in a package.
pub const MANIFEST_FILE: &str = "qiao-connector.yaml";

/// What a package may ask the admin for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Outbound host patterns (templated from the connection config, e.g.
    /// `{config.base_url}`); a subset of what the component's `describe()` declares.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Whether the connector needs private and loopback addresses (on-premise systems).
    #[serde(default)]
    pub private_network: bool,
    /// Linear memory the connector needs, MiB, when more than the runtime default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

impl Capabilities {
    /// One line per capability, for the approval prompt.
    pub fn describe_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.hosts.is_empty() {
            lines.push("outbound HTTP: none".into());
        }
        for host in &self.hosts {
            lines.push(format!("outbound HTTP to {host}"));
        }
        if self.private_network {
            lines.push("private and loopback network addresses (on-premise systems)".into());
        }
        if let Some(m) = self.memory_mib {
            lines.push(format!("up to {m} MiB of memory"));
        }
        lines
    }
}

/// An operation as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestOperation {
    /// Kebab-case name.
    pub name: String,
    /// Trigger or action.
    pub kind: OperationKind,
}

/// The manifest inside a package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Connector id (kebab-case), as `describe()` says.
    pub id: String,
    /// Semantic version, as `describe()` says.
    pub version: String,
    /// Publisher id (kebab-case): whose key signs the package.
    pub publisher: String,
    /// Human title.
    #[serde(default)]
    pub title: String,
    /// A paragraph for humans.
    #[serde(default)]
    pub description: String,
    /// WIT version of `qiao:connector` the component is built against.
    pub wit: String,
    /// qiao versions the connector runs on (semver requirement, e.g. `>=0.1.0, <0.2.0`).
    pub runtime: String,
    /// What the connector asks the admin for.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// The operations, as `describe()` lists them.
    #[serde(default)]
    pub operations: Vec<ManifestOperation>,
    /// JSON Schema of the connection config, as `describe()` says.
    #[serde(default)]
    pub config_schema: Value,
    /// Whether the connector verifies webhooks.
    #[serde(default)]
    pub webhook: bool,
}

/// The manifest an author keeps in the connector crate; `pack` completes it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorManifest {
    /// Publisher id (kebab-case).
    pub publisher: String,
    /// When given, must equal `describe().id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When given, must equal `describe().version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// qiao versions the connector runs on; default: compatible with this runtime (`^0.1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Capabilities to request. `hosts` defaults to everything `describe()` declares.
    #[serde(default)]
    pub capabilities: AuthorCapabilities,
}

/// Capabilities as the author writes them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorCapabilities {
    /// Host patterns; default: all of `describe().hosts`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    /// Whether private and loopback addresses are needed.
    #[serde(default)]
    pub private_network: bool,
    /// Memory needed, MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u64>,
}

/// The default runtime range: versions compatible with this runtime.
pub fn default_runtime_range() -> String {
    let v = crate::runtime_version();
    if v.major > 0 { format!("^{}", v.major) } else { format!("^{}.{}", v.major, v.minor) }
}

impl AuthorManifest {
    /// Parses an author manifest.
    pub fn parse(text: &str) -> Result<AuthorManifest> {
        serde_saphyr::from_str(text).map_err(|e| Error::Invalid(format!("invalid {MANIFEST_FILE}: {e}")))
    }

    /// The package manifest for a component that describes itself as `info` and is built
    /// against WIT `wit`. Every disagreement is reported at once.
    pub fn complete(&self, info: &ConnectorInfo, wit: &Version) -> Result<Manifest> {
        let mut problems = Vec::new();
        if let Some(id) = &self.id
            && id != &info.id
        {
            problems.push(format!("id {id:?} differs from the component's id {:?}", info.id));
        }
        if let Some(version) = &self.version
            && version != &info.version
        {
            problems.push(format!("version {version} differs from the component's version {}", info.version));
        }
        let hosts = self.capabilities.hosts.clone().unwrap_or_else(|| info.hosts.clone());
        let manifest = Manifest {
            id: info.id.clone(),
            version: info.version.clone(),
            publisher: self.publisher.clone(),
            title: info.title.clone(),
            description: info.description.clone(),
            wit: wit.to_string(),
            runtime: self.runtime.clone().unwrap_or_else(default_runtime_range),
            capabilities: Capabilities {
                hosts,
                private_network: self.capabilities.private_network,
                memory_mib: self.capabilities.memory_mib,
            },
            operations: info
                .operations
                .iter()
                .map(|o| ManifestOperation { name: o.name.clone(), kind: o.kind })
                .collect(),
            config_schema: info.config_schema.clone(),
            webhook: info.webhook,
        };
        if let Err(e) = manifest.validate() {
            problems.push(e.to_string());
        }
        if let Err(e) = manifest.check_against(info) {
            problems.push(e.to_string());
        }
        if problems.is_empty() {
            Ok(manifest)
        } else {
            Err(Error::Invalid(format!(
                "{MANIFEST_FILE} does not fit the component: {}",
                problems.join("; ")
            )))
        }
    }
}

impl Manifest {
    /// Parses and validates a package manifest.
    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest = serde_saphyr::from_str(text)
            .map_err(|e| Error::Invalid(format!("invalid {MANIFEST_FILE} in package: {e}")))?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The YAML text.
    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self)
            .map_err(|e| Error::Invalid(format!("failed to write {MANIFEST_FILE}: {e}")))
    }

    /// The parsed version.
    pub fn semver(&self) -> Result<Version> {
        crate::parse_version("manifest version", &self.version)
    }

    /// The parsed WIT version.
    pub fn wit_version(&self) -> Result<Version> {
        crate::parse_version("manifest WIT version", &self.wit)
    }

    /// The parsed runtime range.
    pub fn runtime_range(&self) -> Result<VersionReq> {
        VersionReq::parse(&self.runtime)
            .map_err(|e| Error::Invalid(format!("manifest runtime range {:?} is invalid: {e}", self.runtime)))
    }

    /// Checks ids, versions and ranges are well-formed (ids become path components).
    pub fn validate(&self) -> Result<()> {
        crate::check_id("connector id", &self.id)?;
        crate::check_id("publisher id", &self.publisher)?;
        let v = self.semver()?;
        if v.to_string() != self.version {
            return Err(Error::Invalid(format!(
                "manifest version {:?} is not in canonical form",
                self.version
            )));
        }
        self.wit_version()?;
        self.runtime_range()?;
        Ok(())
    }

    /// Checks the manifest against the component's own description: same id, version,
    /// operations and config schema, and no host the component does not declare.
    pub fn check_against(&self, info: &ConnectorInfo) -> Result<()> {
        let mismatch =
            |message: String| Error::Mismatch { id: self.id.clone(), version: self.version.clone(), message };
        if info.id != self.id || info.version != self.version {
            return Err(mismatch(format!(
                "the component describes itself as {} {}, not as the manifest says",
                info.id, info.version
            )));
        }
        let declared: BTreeSet<&str> = info.hosts.iter().map(String::as_str).collect();
        let extra: Vec<String> = self
            .capabilities
            .hosts
            .iter()
            .filter(|h| !declared.contains(h.as_str()))
            .map(|h| format!("{h:?}"))
            .collect();
        if !extra.is_empty() {
            return Err(Error::Capabilities {
                id: self.id.clone(),
                version: self.version.clone(),
                what: format!("host{} {}", if extra.len() == 1 { "" } else { "s" }, extra.join(", ")),
            });
        }
        let ops: Vec<ManifestOperation> = info
            .operations
            .iter()
            .map(|o| ManifestOperation { name: o.name.clone(), kind: o.kind })
            .collect();
        if ops != self.operations {
            return Err(mismatch("the manifest's operations differ from the component's".into()));
        }
        if info.config_schema != self.config_schema {
            return Err(mismatch("the manifest's config schema differs from the component's".into()));
        }
        if info.webhook != self.webhook {
            return Err(mismatch("the manifest's webhook flag differs from the component's".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use qiao_contract::Operation;
    use serde_json::json;

    pub fn info() -> ConnectorInfo {
        ConnectorInfo {
            id: "acme-echo".into(),
            version: "0.1.0".into(),
            title: "Acme Echo".into(),
            description: "Echoes".into(),
            config_schema: json!({"type": "object", "properties": {"token": {"type": "string", "x-secret": true}}}),
            operations: vec![Operation {
                name: "greet".into(),
                kind: OperationKind::Action,
                description: "".into(),
                params_schema: None,
                input_schema: None,
                output_schema: None,
            }],
            hosts: vec!["{config.base_url}".into()],
            webhook: false,
        }
    }

    pub fn manifest() -> Manifest {
        let author = AuthorManifest { publisher: "acme".into(), ..Default::default() };
        author.complete(&info(), &Version::new(0, 1, 0)).unwrap()
    }

    #[test]
    fn completes_from_the_component_and_round_trips() {
        let m = manifest();
        assert_eq!(m.capabilities.hosts, ["{config.base_url}"]);
        assert_eq!(m.runtime, default_runtime_range());
        assert_eq!(m.wit, "0.1.0");
        let text = m.to_yaml().unwrap();
        assert_eq!(Manifest::parse(&text).unwrap(), m, "{text}");
    }

    #[test]
    fn refuses_hosts_the_component_does_not_declare() {
        let author = AuthorManifest {
            publisher: "acme".into(),
            version: Some("0.2.0".into()),
            capabilities: AuthorCapabilities {
                hosts: Some(vec!["{config.base_url}".into(), "evil.example.com".into()]),
                ..Default::default()
            },
            ..Default::default()
        };
        let err = author.complete(&info(), &Version::new(0, 1, 0)).unwrap_err().to_string();
        assert!(err.contains("version 0.2.0 differs from the component's version 0.1.0"), "{err}");
        assert!(
            err.contains("requests host \"evil.example.com\" that the component does not declare"),
            "{err}"
        );
    }

    #[test]
    fn ids_must_be_safe_path_components() {
        let mut m = manifest();
        m.id = "../etc".into();
        assert!(m.validate().is_err());
        let mut m = manifest();
        m.version = "01.0.0".into();
        assert!(m.validate().is_err());
    }
}
