//! A webhook body checked as JSON without building its tree: [`JsonBody`].

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A request body that is one JSON value, kept as its text. Checked like a parse into
/// `serde_json::Value` would check it, nesting limit included — `RawValue` alone does not
/// apply that limit, and a body the consumer cannot decode from the store would stop the
/// flow — but without allocating the tree.
#[derive(Clone, Copy)]
pub struct JsonBody<'a>(&'a RawValue);

impl<'a> JsonBody<'a> {
    /// Checks `bytes`; the error is the parser's (what is wrong, line and column).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice::<Checked>(bytes)?;
        serde_json::from_slice(bytes).map(JsonBody)
    }

    /// The value's text.
    pub fn raw(&self) -> &'a RawValue {
        self.0
    }
}

/// Any JSON value, visited and dropped. Unlike `IgnoredAny` it goes through
/// `deserialize_any` at every level, where serde_json counts the nesting depth.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<IgnoredAny, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Vec<u8> {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes()
    }

    #[test]
    fn accepts_what_a_value_parse_accepts() -> Result<(), serde_json::Error> {
        for text in [r#"{"a": [1, -2, 3.5e3, true, null, "现场\n"], "b": {}}"#, "[]", "\"x\"", "0", "null"]
        {
            assert_eq!(JsonBody::parse(text.as_bytes())?.raw().get(), text);
            serde_json::from_str::<serde_json::Value>(text)?;
        }
        Ok(())
    }

    #[test]
    fn refuses_what_a_value_parse_refuses() {
        for depth in [1, 100, 127, 128, 5000] {
            let bytes = nested(depth);
            let value = serde_json::from_slice::<serde_json::Value>(&bytes);
            let body = JsonBody::parse(&bytes);
            assert_eq!(body.is_ok(), value.is_ok(), "depth {depth}");
        }
        let deep = JsonBody::parse(&nested(200)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(deep.contains("recursion limit"), "{deep}");
        for bad in [&b"{not json"[..], b"", b"[1,]", b"{\"a\":1} trailing", b"\"\xff\""] {
            assert!(JsonBody::parse(bad).is_err(), "{bad:?}");
            assert!(serde_json::from_slice::<serde_json::Value>(bad).is_err(), "{bad:?}");
        }
    }
}
