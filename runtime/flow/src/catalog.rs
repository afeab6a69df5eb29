//! Finding connectors: the [`ConnectorCatalog`] trait the loader asks, connector references
//! (`jira`, `jira@^0.1`), and [`StaticCatalog`], an in-memory catalog for tests and tools.

use std::fmt;
use std::str::FromStr;

use qiao_contract::{ConnectorInfo, check_kebab_case};
use semver::{Version, VersionReq};

/// Resolves a connector name and optional version requirement to what the connector says
/// about itself. Implemented by the installed-connector directory; faked in tests.
pub trait ConnectorCatalog {
    /// The best installed version of `name` matching `req` (any version when `None`), or a
    /// message saying why there is none (lowercase, naming the connector).
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String>;
}

/// A connector reference from a flow: `name` or `name@<semver requirement>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorRef {
    /// Kebab-case connector id.
    pub name: String,
    /// Version requirement (`^0.1`), if any.
    pub req: Option<VersionReq>,
}

impl FromStr for ConnectorRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, req) = match s.split_once('@') {
            Some((name, req)) => (name, Some(req)),
            None => (s, None),
        };
        check_kebab_case(name).map_err(|e| format!("invalid connector name: {}", e.0))?;
        let req = match req {
            None => None,
            Some(r) => Some(VersionReq::parse(r).map_err(|e| {
                format!("invalid version requirement {r:?} in {s:?}: {e} (write e.g. {name}@^0.1 or {name}@=1.2.0)")
            })?),
        };
        Ok(ConnectorRef { name: name.to_string(), req })
    }
}

impl fmt::Display for ConnectorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.req {
            Some(req) => write!(f, "{}@{req}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A fixed set of connector descriptions (several versions of one id allowed).
#[derive(Debug, Clone, Default)]
pub struct StaticCatalog {
    connectors: Vec<ConnectorInfo>,
}

impl StaticCatalog {
    /// A catalog of these connectors.
    pub fn new(connectors: Vec<ConnectorInfo>) -> Self {
        StaticCatalog { connectors }
    }

    /// Adds a connector.
    pub fn with(mut self, info: ConnectorInfo) -> Self {
        self.connectors.push(info);
        self
    }
}

impl ConnectorCatalog for StaticCatalog {
    fn resolve(&self, name: &str, req: Option<&VersionReq>) -> Result<ConnectorInfo, String> {
        let versions: Vec<(&ConnectorInfo, Option<Version>)> = self
            .connectors
            .iter()
            .filter(|c| c.id == name)
            .map(|c| (c, Version::parse(&c.version).ok()))
            .collect();
        if versions.is_empty() {
            let mut installed: Vec<&str> = self.connectors.iter().map(|c| c.id.as_str()).collect();
            installed.sort_unstable();
            installed.dedup();
            return Err(format!(
                "connector {name:?} is not installed (installed: {})",
                list_or_none(&installed)
            ));
        }
        versions
            .iter()
            .filter(|(_, v)| match (req, v) {
                (None, _) => true,
                (Some(req), Some(v)) => req.matches(v),
                (Some(_), None) => false,
            })
            .max_by(|a, b| a.1.cmp(&b.1))
            .map(|(c, _)| (*c).clone())
            .ok_or_else(|| {
                let have: Vec<&str> = versions.iter().map(|(c, _)| c.version.as_str()).collect();
                format!(
                    "no installed version of connector {name:?} matches {:?} (installed: {})",
                    req.map(ToString::to_string).unwrap_or_default(),
                    have.join(", ")
                )
            })
    }
}

/// `a, b, c` or `none`.
pub(crate) fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".into() } else { items.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(id: &str, version: &str) -> ConnectorInfo {
        ConnectorInfo {
            id: id.into(),
            version: version.into(),
            title: id.into(),
            description: String::new(),
            config_schema: json!({"type": "object"}),
            operations: vec![],
            hosts: vec![],
            webhook: false,
        }
    }

    #[test]
    fn parses_references() {
        let r: Result<ConnectorRef, _> = "jira@^0.1".parse();
        assert_eq!(r.as_ref().map(|r| r.name.as_str()), Ok("jira"));
        assert_eq!(r.map(|r| r.to_string()), Ok("jira@^0.1".to_string()));
        assert_eq!("kingdee".parse::<ConnectorRef>().map(|r| r.req), Ok(None));
        let e = "jira@banana".parse::<ConnectorRef>().err().unwrap_or_default();
        assert!(e.starts_with("invalid version requirement \"banana\" in \"jira@banana\""), "{e}");
        let e = "Jira".parse::<ConnectorRef>().err().unwrap_or_default();
        assert!(e.starts_with("invalid connector name: \"Jira\""), "{e}");
    }

    #[test]
    fn resolves_highest_matching_version() {
        let c = StaticCatalog::new(vec![info("jira", "0.1.0"), info("jira", "0.1.4"), info("jira", "0.2.0")]);
        let req = VersionReq::parse("^0.1").ok();
        assert_eq!(c.resolve("jira", req.as_ref()).map(|i| i.version), Ok("0.1.4".to_string()));
        assert_eq!(c.resolve("jira", None).map(|i| i.version), Ok("0.2.0".to_string()));
        let req = VersionReq::parse("^1").ok();
        assert_eq!(
            c.resolve("jira", req.as_ref()).map(|i| i.version),
            Err("no installed version of connector \"jira\" matches \"^1\" (installed: 0.1.0, 0.1.4, 0.2.0)"
                .into())
        );
        assert_eq!(
            c.resolve("sap", None).map(|i| i.version),
            Err("connector \"sap\" is not installed (installed: jira)".into())
        );
    }
}
