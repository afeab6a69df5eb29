//! Validated identifiers: flow, step and connection ids are kebab-case.

use std::fmt;

use qiao_contract::check_kebab_case;

macro_rules! kebab_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` (kebab-case: lowercase words separated with single `-`, starting with
            /// a letter, at most 64 bytes) and wraps it.
            pub fn new(s: impl Into<String>) -> Result<Self, String> {
                let s = s.into();
                match check_kebab_case(&s) {
                    Ok(()) => Ok($name(s)),
                    Err(e) => Err(format!(concat!("invalid ", $what, ": {}"), e.0)),
                }
            }

            /// The id as written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

kebab_id!(
    /// The id of a flow (`jira-worklogs-to-kingdee`).
    FlowId,
    "flow id"
);
kebab_id!(
    /// The id of a step, unique within its flow (`to-cost`).
    StepId,
    "step id"
);
kebab_id!(
    /// The id of a connection, unique within its flow (`kingdee`).
    ConnectionId,
    "connection id"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kebab_case_and_explains_rejections() {
        assert_eq!(StepId::new("to-cost").map(|s| s.to_string()), Ok("to-cost".to_string()));
        assert_eq!(
            StepId::new("to_cost"),
            Err("invalid step id: \"to_cost\" contains '_': words must be lowercase and separated with '-'"
                .to_string())
        );
        assert!(FlowId::new("Flow").is_err());
        assert!(ConnectionId::new("").is_err());
        assert!("k3-cloud".parse::<ConnectionId>().is_ok());
    }
}
