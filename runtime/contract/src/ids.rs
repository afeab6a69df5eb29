//! Identifier rules shared by connectors and flows.

/// Why a string is not a valid kebab-case identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidId(pub String);

/// Checks that `s` is a kebab-case identifier: lowercase ASCII letters and digits in words
/// separated by single `-`, starting with a letter, at most 64 bytes.
pub fn check_kebab_case(s: &str) -> Result<(), InvalidId> {
    if s.is_empty() {
        return Err(InvalidId("must not be empty".into()));
    }
    if s.len() > 64 {
        return Err(InvalidId(format!("{s:?} is longer than 64 bytes")));
    }
    if !s.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(InvalidId(format!("{s:?} must start with a lowercase letter")));
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        let hint = if c == '_' || c == ' ' || c.is_ascii_uppercase() {
            ": words must be lowercase and separated with '-'"
        } else {
            ""
        };
        return Err(InvalidId(format!("{s:?} contains {c:?}{hint}")));
    }
    if s.ends_with('-') || s.contains("--") {
        return Err(InvalidId(format!("{s:?} has an empty word: words must be separated with a single '-'")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kebab_case() {
        for ok in ["jira", "issues-updated", "k3-cloud", "a1"] {
            assert!(check_kebab_case(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_with_reason() {
        let e = check_kebab_case("create_issue").err().map(|e| e.0);
        assert_eq!(
            e.as_deref(),
            Some("\"create_issue\" contains '_': words must be lowercase and separated with '-'")
        );
        for bad in ["", "-a", "a-", "a--b", "1a", "Jira", "a b", "é"] {
            assert!(check_kebab_case(bad).is_err(), "{bad}");
        }
    }
}
