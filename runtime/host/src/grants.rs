//! Outbound host grants: which `scheme://host:port` a connection may reach.
//!
//! Pattern syntax (compatible in spirit with Spin's `allowed_outbound_hosts`):
//! `[scheme://]host[:port]` where `host` is a name, an IP literal (`[::1]` for IPv6), `*.suffix`
//! (any subdomain, not the bare suffix) or `*` (any host), and `port` is a number or `*`.
//! Without a port, only the scheme's default port matches (80 for http, 443 for https).
//! `{config.path.to.field}` is replaced by that string field of the connection config before
//! parsing; a URL value (`https://erp.local:8443/api`) contributes its scheme, host and port.
//!
//! Private, loopback and link-local addresses are refused unless the grant allows them, both
//! for IP literals here and for names at DNS resolution (see `io.rs`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde_json::Value;
use url::{Host, Url};

/// A pattern that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid host pattern {pattern:?}: {reason}")]
pub struct InvalidPattern {
    /// The pattern as written (after templating).
    pub pattern: String,
    /// Why it is invalid.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// Matches names ending in this suffix, which starts with a dot.
    Suffix(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortMatch {
    Default,
    Any,
    Exact(u16),
}

/// One granted outbound host pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    scheme: Option<String>,
    host: HostMatch,
    port: PortMatch,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl FromStr for HostPattern {
    type Err = InvalidPattern;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| InvalidPattern { pattern: pattern.to_string(), reason: reason.into() };
        let p = pattern.trim();
        let (scheme, rest) = match p.split_once("://") {
            Some((s, rest)) => {
                let s = s.to_ascii_lowercase();
                if default_port(&s).is_none() {
                    return Err(invalid("scheme must be http or https"));
                }
                (Some(s), rest)
            }
            None => (None, p),
        };
        let rest = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if rest.contains('@') {
            return Err(invalid("user info is not allowed"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(|| invalid("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| invalid("expected ':' after ']'"))?),
            };
            let ip: Ipv6Addr = addr.parse().map_err(|_| invalid("bad IPv6 address"))?;
            (ip.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, port)) => (h.to_ascii_lowercase(), Some(port)),
                None => (rest.to_ascii_lowercase(), None),
            }
        };
        let port = match port {
            None => PortMatch::Default,
            Some("*") => PortMatch::Any,
            Some(p) => PortMatch::Exact(p.parse().map_err(|_| invalid("port must be a number or '*'"))?),
        };
        // A trailing dot (fully qualified name) is dropped, but not from a bare "*.".
        let host = if host == "*." { host } else { host.trim_end_matches('.').to_string() };
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(invalid("a wildcard must be followed by a domain"));
            }
            HostMatch::Suffix(format!(".{suffix}"))
        } else if host.is_empty() {
            return Err(invalid("missing host"));
        } else if host.contains('*') {
            return Err(invalid("'*' is only allowed as the whole host or as a leading '*.'"));
        } else if host.chars().any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'))) {
            return Err(invalid("host contains characters not allowed in a host name"));
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern { scheme, host, port })
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        match &self.host {
            HostMatch::Any => f.write_str("*")?,
            HostMatch::Suffix(s) => write!(f, "*{s}")?,
            HostMatch::Exact(h) if h.contains(':') => write!(f, "[{h}]")?,
            HostMatch::Exact(h) => f.write_str(h)?,
        }
        match self.port {
            PortMatch::Default => Ok(()),
            PortMatch::Any => f.write_str(":*"),
            PortMatch::Exact(p) => write!(f, ":{p}"),
        }
    }
}

impl HostPattern {
    /// Whether a request to `scheme://host:port` matches. `host` is lowercase, without brackets.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let port_ok = match self.port {
            PortMatch::Any => true,
            PortMatch::Exact(p) => p == port,
            PortMatch::Default => default_port(scheme) == Some(port),
        };
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => h == host,
            HostMatch::Suffix(s) => host.ends_with(s.as_str()),
        };
        port_ok && host_ok
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request to {url} denied: {reason}")]
pub struct Denial {
    /// The URL without query string.
    pub url: String,
    /// Why.
    pub reason: String,
}

/// The hosts one connection may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    patterns: Vec<HostPattern>,
    allow_private: bool,
}

impl Grants {
    /// No host at all (used for `describe` and `validate-config`).
    pub fn none() -> Self {
        Grants::default()
    }

    /// Grants from already parsed patterns.
    pub fn new(patterns: Vec<HostPattern>, allow_private: bool) -> Self {
        Grants { patterns, allow_private }
    }

    /// Resolves `templates` against a connection `config` and parses them. A template whose
    /// config field is absent or not a string grants nothing (so an unset optional `base_url`
    /// opens no host); it is returned in the second list for the caller to report.
    pub fn resolve(
        templates: &[String],
        config: &Value,
        allow_private: bool,
    ) -> Result<(Grants, Vec<String>), InvalidPattern> {
        let mut patterns = Vec::new();
        let mut unresolved = Vec::new();
        for t in templates {
            match substitute(t, config) {
                Some(p) => patterns.push(p.parse()?),
                None => unresolved.push(t.clone()),
            }
        }
        Ok((Grants { patterns, allow_private }, unresolved))
    }

    /// Whether private, loopback and link-local addresses may be reached.
    pub fn allow_private(&self) -> bool {
        self.allow_private
    }

    /// The granted patterns.
    pub fn patterns(&self) -> &[HostPattern] {
        &self.patterns
    }

    /// Checks a request URL against the grants.
    pub fn check(&self, url: &Url) -> Result<(), Denial> {
        let shown = without_query(url);
        let deny = |reason: String| Err(Denial { url: shown.clone(), reason });
        let scheme = url.scheme();
        if default_port(scheme).is_none() {
            return deny(format!("scheme {scheme:?} is not http or https"));
        }
        let Some(port) = url.port_or_known_default() else {
            return deny("no port".into());
        };
        let host = match url.host() {
            Some(Host::Domain(d)) => d.trim_end_matches('.').to_ascii_lowercase(),
            Some(Host::Ipv4(ip)) => {
                if !self.allow_private && is_private(IpAddr::V4(ip)) {
                    return deny(format!(
                        "{ip} is a private or loopback address and private network access is not granted"
                    ));
                }
                ip.to_string()
            }
            Some(Host::Ipv6(ip)) => {
                if !self.allow_private && is_private(IpAddr::V6(ip)) {
                    return deny(format!(
                        "{ip} is a private or loopback address and private network access is not granted"
                    ));
                }
                ip.to_string()
            }
            None => return deny("no host".into()),
        };
        if self.patterns.iter().any(|p| p.matches(scheme, &host, port)) {
            Ok(())
        } else {
            let granted: Vec<String> = self.patterns.iter().map(ToString::to_string).collect();
            deny(format!(
                "{scheme}://{host}:{port} is not granted (granted: {})",
                if granted.is_empty() { "none".to_string() } else { granted.join(", ") }
            ))
        }
    }
}

/// Replaces every `{config.a.b}` in `template`. `None` when a field is missing or not a
/// non-empty string/number.
fn substitute(template: &str, config: &Value) -> Option<String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{config.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + "{config.".len()..];
        let end = after.find('}')?;
        let mut v = config;
        for part in after[..end].split('.') {
            v = v.get(part)?;
        }
        let s = match v {
            Value::String(s) if !s.trim().is_empty() => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        // A URL contributes scheme://host:port only.
        let s = match Url::parse(&s) {
            Ok(u) if s.contains("://") => {
                let host = match u.host()? {
                    Host::Ipv6(ip) => format!("[{ip}]"),
                    h => h.to_string(),
                };
                format!("{}://{}:{}", u.scheme(), host, u.port_or_known_default()?)
            }
            _ => s,
        };
        out.push_str(&s);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

fn without_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    let _ = u.set_password(None);
    u.to_string()
}

/// Whether `ip` is loopback, private, link-local, unspecified, CGNAT, broadcast or otherwise
/// not a public unicast address.
pub(crate) fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || v6.is_multicast()
        }
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64.0.0/10
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn patterns_parse_and_display() {
        for p in ["api.example.com", "*.atlassian.net", "https://erp.local:8443", "*:*", "[::1]:8080", "h:*"]
        {
            let parsed: HostPattern = p.parse().unwrap();
            assert_eq!(parsed.to_string(), p);
        }
        for bad in ["", "ftp://x", "a*.b", "*.", "x:port", "user@host", "[::1"] {
            assert!(bad.parse::<HostPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_wildcard_and_ports() {
        let g = Grants::new(
            vec![
                "api.example.com".parse().unwrap(),
                "*.atlassian.net".parse().unwrap(),
                "erp.local:8443".parse().unwrap(),
            ],
            false,
        );
        assert!(g.check(&url("https://api.example.com/v1?q=1")).is_ok());
        assert!(g.check(&url("http://api.example.com/")).is_ok());
        assert!(g.check(&url("https://api.example.com:8443/")).is_err(), "non-default port");
        assert!(g.check(&url("https://acme.atlassian.net/rest")).is_ok());
        assert!(g.check(&url("https://atlassian.net/")).is_err(), "wildcard needs a subdomain");
        assert!(g.check(&url("https://evil-atlassian.net/")).is_err());
        assert!(g.check(&url("https://erp.local:8443/x")).is_ok());
        assert!(g.check(&url("https://other.com/")).is_err());
    }

    #[test]
    fn private_addresses_need_a_grant() {
        let open = Grants::new(vec!["*:*".parse().unwrap()], false);
        for u in [
            "http://127.0.0.1:8080/",
            "http://10.1.2.3/",
            "http://192.168.1.1/",
            "http://[::1]/",
            "http://169.254.169.254/",
            "http://[fd00::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            let e = open.check(&url(u)).unwrap_err();
            assert!(e.reason.contains("private"), "{u}: {e}");
        }
        assert!(open.check(&url("http://93.184.216.34/")).is_ok());
        let private = Grants::new(vec!["127.0.0.1:*".parse().unwrap()], true);
        assert!(private.check(&url("http://127.0.0.1:9999/x")).is_ok());
    }

    #[test]
    fn denial_hides_query_and_password() {
        let g = Grants::none();
        let e = g.check(&url("https://user:pw@x.com/a?token=secret")).unwrap_err();
        assert!(!e.to_string().contains("secret") && !e.to_string().contains("pw"), "{e}");
        assert!(e.reason.contains("granted: none"));
    }

    #[test]
    fn templates_resolve_from_config() {
        let config = json!({"base_url": "https://acme.atlassian.net/rest/api/3", "tenant": "t1", "erp": {"url": "http://10.0.0.5:8000"}});
        let (g, unresolved) = Grants::resolve(
            &[
                "{config.base_url}".into(),
                "{config.tenant}.example.com".into(),
                "{config.erp.url}".into(),
                "{config.missing}".into(),
            ],
            &config,
            true,
        )
        .unwrap();
        assert_eq!(unresolved, vec!["{config.missing}".to_string()]);
        let shown: Vec<String> = g.patterns().iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["https://acme.atlassian.net:443", "t1.example.com", "http://10.0.0.5:8000"]);
        assert!(g.check(&url("https://acme.atlassian.net/rest/api/3/search")).is_ok());
        assert!(g.check(&url("http://acme.atlassian.net/")).is_err(), "scheme pinned by the template");
        assert!(g.check(&url("http://10.0.0.5:8000/x")).is_ok());
    }
}
