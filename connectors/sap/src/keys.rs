//! Key predicates (`('10000012')`, `(ControllingArea='A000',CostCenter='10101101',…)`) and
//! the default keys of the standard entity sets.

use qiao_sdk::{Error, Result, Value};

use crate::values::{iso, parse_iso};

/// Keys of the standard entity sets, used when an operation names none.
pub const KNOWN_KEYS: &[(&str, &[&str])] = &[
    ("A_EnterpriseProject", &["ProjectUUID"]),
    ("A_EnterpriseProjectElement", &["ProjectElementUUID"]),
    ("A_EnterpriseProjectTeamMember", &["TeamMemberUUID"]),
    ("A_CostCenter", &["ControllingArea", "CostCenter", "ValidityEndDate"]),
    ("A_PurchaseRequisitionHeader", &["PurchaseRequisition"]),
    ("A_PurchaseRequisitionItem", &["PurchaseRequisition", "PurchaseRequisitionItem"]),
    ("A_PurchaseOrder", &["PurchaseOrder"]),
    ("A_PurchaseOrderItem", &["PurchaseOrder", "PurchaseOrderItem"]),
    ("A_MaterialStock", &["Material"]),
    (
        "A_MatlStkInAcctMod",
        &[
            "Material",
            "Plant",
            "StorageLocation",
            "Batch",
            "Supplier",
            "Customer",
            "WBSElementInternalID",
            "SDDocument",
            "SDDocumentItem",
            "InventorySpecialStockType",
            "InventoryStockType",
        ],
    ),
    ("A_Product", &["Product"]),
];

/// The key properties of `entity_set`: `given`, else the known ones.
pub fn key_fields(entity_set: &str, given: &[String]) -> Option<Vec<String>> {
    if !given.is_empty() {
        return Some(given.to_vec());
    }
    KNOWN_KEYS.iter().find(|(s, _)| *s == entity_set).map(|(_, k)| k.iter().map(|s| s.to_string()).collect())
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter()
            .enumerate()
            .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// One key value as a literal: strings quoted (`'` doubled), GUIDs as `guid'…'` (v2) or bare
/// (v4), ISO dates of `…Date` properties as `datetime'…'` (v2) or a bare date (v4), v2
/// `/Date(ms)/` likewise, numbers and booleans bare.
pub fn literal(name: &str, value: &Value, v4: bool) -> Result<String> {
    match value {
        Value::String(s) if is_uuid(s) => Ok(if v4 { s.clone() } else { format!("guid'{s}'") }),
        Value::String(s) if name.ends_with("Date") || name.ends_with("DateTime") => {
            let ms = crate::values::parse_v2_date(s).or_else(|| parse_iso(s));
            match ms {
                Some(ms) if name.ends_with("DateTime") => {
                    Ok(if v4 { iso(ms) } else { format!("datetimeoffset'{}'", iso(ms)) })
                }
                Some(ms) if v4 => Ok(iso(ms)[..10].to_string()),
                Some(ms) => Ok(format!("datetime'{}'", &iso(ms)[..19])),
                None => Ok(format!("'{}'", s.replace('\'', "''"))),
            }
        }
        Value::String(s) => Ok(format!("'{}'", s.replace('\'', "''"))),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(Error::invalid_input(format!("key property {name:?} has no usable value: {other}"))),
    }
}

/// The key predicate, parentheses included: a raw string is taken as written (`'100'` or
/// `(…)`); an object gives `('v')` for one property and `(A='x',B='y')` for several.
pub fn predicate(key: &Value, v4: bool) -> Result<String> {
    match key {
        Value::String(s) if s.starts_with('(') => Ok(s.clone()),
        Value::String(s) => Ok(format!("({s})")),
        Value::Object(m) if m.len() == 1 => {
            let (name, value) = m.iter().next().ok_or_else(|| Error::invalid_input("key: empty"))?;
            Ok(format!("({})", literal(name, value, v4)?))
        }
        Value::Object(m) if !m.is_empty() => {
            let parts = m
                .iter()
                .map(|(k, v)| Ok(format!("{k}={}", literal(k, v, v4)?)))
                .collect::<Result<Vec<_>>>()?;
            Ok(format!("({})", parts.join(",")))
        }
        other => Err(Error::invalid_input(format!(
            "key: expected an object of key properties or a key predicate, got {other}"
        ))),
    }
}

/// A key for record ids and cursors: `A000,10101101,9999-12-31T00:00:00Z` (dates normalized).
pub fn key_text(entity: &Value, fields: &[String]) -> String {
    fields
        .iter()
        .map(|f| match entity.get(f) {
            Some(Value::String(s)) => crate::values::parse_v2_date(s).map_or_else(|| s.clone(), iso),
            Some(Value::Null) | None => String::new(),
            Some(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Percent-encodes what may not appear raw in a URL path (space, `%`, `#`, `?`, `/`, `"`,
/// non-ASCII); quotes, commas, `=`, `:` and parentheses stay as OData writes them.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~'(),=:;*+!$@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    #[test]
    fn predicates_follow_the_version() {
        let cc =
            json!({"ControllingArea": "A000", "CostCenter": "10101101", "ValidityEndDate": "9999-12-31"});
        assert_eq!(
            predicate(&cc, false).unwrap(),
            "(ControllingArea='A000',CostCenter='10101101',ValidityEndDate=datetime'9999-12-31T00:00:00')"
        );
        assert_eq!(
            predicate(&cc, true).unwrap(),
            "(ControllingArea='A000',CostCenter='10101101',ValidityEndDate=9999-12-31)"
        );
        let g = json!({"ProjectElementUUID": "fa163e9c-1d2e-1eda-b0b0-020000000001"});
        assert_eq!(predicate(&g, false).unwrap(), "(guid'fa163e9c-1d2e-1eda-b0b0-020000000001')");
        assert_eq!(predicate(&g, true).unwrap(), "(fa163e9c-1d2e-1eda-b0b0-020000000001)");
        assert_eq!(predicate(&json!({"PurchaseRequisition": "O'Neil"}), false).unwrap(), "('O''Neil')");
        assert_eq!(predicate(&json!("'10000012'"), false).unwrap(), "('10000012')");
        assert_eq!(
            predicate(&json!({"CostCenter": "x", "ValidityEndDate": "/Date(253402214400000)/"}), false)
                .unwrap(),
            "(CostCenter='x',ValidityEndDate=datetime'9999-12-31T00:00:00')"
        );
        assert!(predicate(&json!([1]), false).is_err());
        assert!(predicate(&json!({"A": null}), false).is_err());
    }

    #[test]
    fn keys_for_records_and_paths() {
        let e = json!({"ControllingArea": "A000", "CostCenter": "1", "ValidityEndDate": "/Date(253402214400000)/"});
        let f = key_fields("A_CostCenter", &[]).unwrap();
        assert_eq!(key_text(&e, &f), "A000,1,9999-12-31T00:00:00Z");
        assert_eq!(key_fields("Z_Custom", &[]), None);
        assert_eq!(path_escape("A_X('数 据')"), "A_X('%E6%95%B0%20%E6%8D%AE')");
    }
}
