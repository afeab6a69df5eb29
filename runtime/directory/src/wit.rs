//! The WIT version of a component, read from the component itself.
//!
//! A component built against `qiao:connector@X` names that version in every import and export
//! of the package (`qiao:connector/handler@0.1.0`). Reading the top-level import and export
//! names with `wasmparser` is enough, needs no Wasm runtime, and cannot be fooled by a
//! manifest: the names are what the host links against.

use semver::Version;
use wasmparser::{Chunk, Encoding, Parser, Payload};

use crate::{Error, Result};

/// The WIT package connectors implement.
pub const WIT_PACKAGE: &str = "qiao:connector";

/// The WIT version this runtime implements.
pub fn host_version() -> Version {
    Version::parse(qiao_contract::WIT_VERSION).unwrap_or_else(|_| Version::new(0, 0, 0))
}

/// Whether a component built against `wit` loads in a host implementing `host`: the same
/// semver-compatible line (same major, and same minor below 1.0) and not newer than the host.
pub fn compatible(wit: &Version, host: &Version) -> bool {
    let same_line = wit.major == host.major && (wit.major > 0 || wit.minor == host.minor);
    same_line && wit <= host
}

/// The `qiao:connector` version a component's top-level imports and exports name. Fails when
/// the bytes are not a component, name no or several versions, or do not export the handler.
pub fn component_version(wasm: &[u8]) -> Result<Version> {
    let names = top_level_names(wasm)?;
    let prefix = format!("{WIT_PACKAGE}/");
    let mut versions: Vec<&str> = Vec::new();
    let mut exports_handler = false;
    for (name, is_export) in &names {
        let Some(rest) = name.strip_prefix(&prefix) else { continue };
        let Some((interface, version)) = rest.split_once('@') else {
            return Err(Error::Invalid(format!("component names {name:?} without a WIT version")));
        };
        if *is_export && interface == "handler" {
            exports_handler = true;
        }
        if !versions.contains(&version) {
            versions.push(version);
        }
    }
    if !exports_handler {
        return Err(Error::Invalid(format!("the component does not export {WIT_PACKAGE}/handler")));
    }
    match versions.as_slice() {
        [one] => Version::parse(one).map_err(|e| {
            Error::Invalid(format!("component WIT version {one:?} is not a semantic version: {e}"))
        }),
        many => Err(Error::Invalid(format!(
            "the component names several {WIT_PACKAGE} versions: {}",
            many.join(", ")
        ))),
    }
}

/// Top-level import (false) and export (true) names of a component.
fn top_level_names(wasm: &[u8]) -> Result<Vec<(String, bool)>> {
    let bad = |e: wasmparser::BinaryReaderError| Error::Invalid(format!("not a valid Wasm component: {e}"));
    let mut parser = Parser::new(0);
    let mut rest = wasm;
    let mut names = Vec::new();
    loop {
        let (payload, consumed) = match parser.parse(rest, true).map_err(bad)? {
            Chunk::NeedMoreData(_) => {
                return Err(Error::Invalid("not a valid Wasm component: truncated".into()));
            }
            Chunk::Parsed { consumed, payload } => (payload, consumed),
        };
        rest = rest.get(consumed..).unwrap_or_default();
        match payload {
            Payload::Version { encoding, .. } if encoding != Encoding::Component => {
                return Err(Error::Invalid(
                    "a core Wasm module, not a component: build for wasm32-wasip2".into(),
                ));
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader {
                    names.push((import.map_err(bad)?.name.name.to_string(), false));
                }
            }
            Payload::ComponentExportSection(reader) => {
                for export in reader {
                    names.push((export.map_err(bad)?.name.name.to_string(), true));
                }
            }
            Payload::ModuleSection { unchecked_range, .. }
            | Payload::ComponentSection { unchecked_range, .. } => {
                // The outer parser already moved past the nested section; skip its bytes.
                rest = rest.get(unchecked_range.len()..).unwrap_or_default();
            }
            Payload::End(_) => return Ok(names),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_constant_matches_the_wit_file() {
        let wit = include_str!("../../../wit/connector.wit");
        let line = wit.lines().find(|l| l.starts_with("package ")).unwrap_or_default();
        assert_eq!(line, format!("package {WIT_PACKAGE}@{};", host_version()));
    }

    #[test]
    fn compatibility_follows_semver_lines() {
        let host = Version::new(0, 1, 2);
        assert!(compatible(&Version::new(0, 1, 0), &host));
        assert!(compatible(&Version::new(0, 1, 2), &host));
        assert!(!compatible(&Version::new(0, 1, 3), &host), "newer than the host");
        assert!(!compatible(&Version::new(0, 2, 0), &host));
        assert!(!compatible(&Version::new(1, 0, 0), &host));
        assert!(compatible(&Version::new(1, 0, 0), &Version::new(1, 3, 0)));
    }

    #[test]
    fn refuses_what_is_not_a_component() {
        let core = b"\0asm\x01\0\0\0";
        let err = component_version(core).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("core Wasm module"), "{err}");
        let err = component_version(b"garbage").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.starts_with("not a valid Wasm component"), "{err}");
    }
}
