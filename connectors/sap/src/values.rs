//! Values between SAP's wire formats and flow records.
//!
//! Out: v2 `/Date(ms)/` and `/Date(ms+0000)/` become ISO 8601 UTC timestamps; decimals sent
//! as strings become JSON numbers for the properties known to be `Edm.Decimal` (the table
//! below plus the operation's `numbers` list); v2 `__metadata` and deferred navigations are
//! dropped, expanded `{"results": [...]}` become arrays, and the ETag is kept as `_etag`
//! (v4: `@odata.etag`; other `@` annotations are dropped).
//!
//! In (v2 writes): numbers of decimal properties become strings, ISO dates of properties
//! named `…Date` become `/Date(ms)/` and of `…DateTime` become `/Date(ms+0000)/`, and arrays
//! (deep insert) become `{"results": [...]}`. v4 writes: `…Date` properties get the date part.

use qiao_sdk::{Value, json};
use serde_json::Map;

/// Properties of the standard APIs typed `Edm.Decimal` (or `Edm.Int64`).
pub const DECIMAL_FIELDS: &[&str] = &[
    "RequestedQuantity",
    "PurchaseRequisitionPrice",
    "PurReqnPriceQuantity",
    "ItemNetAmount",
    "MatlWrhsStkQtyInMatlBaseUnit",
    "OrderQuantity",
    "NetPriceAmount",
    "NetPriceQuantity",
    "AmountInCompanyCodeCurrency",
    "AmountInTransactionCurrency",
    "AmountInGlobalCurrency",
    "Quantity",
    "PlannedCost",
    "ActualCost",
];

const DAY_MS: i64 = 86_400_000;

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `2024-05-01T08:30:12.453Z` (milliseconds only when not zero).
pub fn iso(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    let rest = ms.rem_euclid(DAY_MS);
    let (hh, mm, ss, frac) = (rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000);
    let base = format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}");
    if frac == 0 { format!("{base}Z") } else { format!("{base}.{frac:03}Z") }
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Epoch milliseconds of an ISO 8601 date or timestamp (`2024-05-01`, `2024-05-01T08:30:12`
/// read as UTC, `…Z`, `…+08:00`, fractions up to any length).
pub fn parse_iso(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T').unwrap_or((text, ""));
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || date.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let ms = days_from_civil(y, m, day) * DAY_MS;
    if !text.contains('T') {
        return Some(ms);
    }
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (h, mi) = time[at + 1..].split_once(':')?;
        let off = (num(h)? * 60 + num(mi)?) * 60_000;
        (&time[..at], if time[at..].starts_with('+') { off } else { -off })
    } else {
        (time, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, ""));
    let mut f = hms.split(':');
    let (hh, mm) = (num(f.next()?)?, num(f.next()?)?);
    let ss = f.next().map_or(Some(0), num)?;
    if hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let millis = if frac.is_empty() { 0 } else { num(&format!("{frac:0<3}")[..3])? };
    Some(ms + ((hh * 60 + mm) * 60 + ss) * 1000 + millis - offset)
}

/// Epoch milliseconds of v2 `/Date(1714552212453)/` or `/Date(1714552212453+0120)/` (the
/// number is UTC; the offset only says where the value was entered).
pub fn parse_v2_date(text: &str) -> Option<i64> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end =
        inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-').map_or(inner.len(), |(i, _)| i);
    inner[..end].parse().ok()
}

/// Epoch milliseconds of a change timestamp in either wire format.
pub fn timestamp_ms(v: &Value) -> Option<i64> {
    let s = v.as_str()?;
    parse_v2_date(s).or_else(|| parse_iso(s))
}

fn is_decimal(name: &str, numbers: &[String]) -> bool {
    DECIMAL_FIELDS.contains(&name) || numbers.iter().any(|n| n == name)
}

/// One entity as a flow record (see the module doc).
pub fn normalize(entity: Value, numbers: &[String]) -> Value {
    let Value::Object(map) = entity else {
        return entity;
    };
    let mut out = Map::new();
    let etag = map.get("__metadata").and_then(|m| m.get("etag")).or_else(|| map.get("@odata.etag")).cloned();
    for (k, v) in map {
        if k == "__metadata" || k.starts_with('@') {
            continue;
        }
        let v = match v {
            Value::Object(o) if o.contains_key("__deferred") => continue,
            Value::Object(mut o) if o.get("results").is_some_and(Value::is_array) => {
                let rows = o
                    .remove("results")
                    .and_then(|r| if let Value::Array(a) = r { Some(a) } else { None })
                    .unwrap_or_default();
                Value::Array(rows.into_iter().map(|r| normalize(r, numbers)).collect())
            }
            Value::Object(o) => normalize(Value::Object(o), numbers),
            Value::Array(a) => Value::Array(a.into_iter().map(|r| normalize(r, numbers)).collect()),
            Value::Number(n) if is_decimal(&k, numbers) => {
                decimal(&n.to_string()).unwrap_or(Value::Number(n))
            }
            Value::String(s) => {
                if let Some(ms) = parse_v2_date(&s) {
                    json!(iso(ms))
                } else if is_decimal(&k, numbers) {
                    decimal(&s).unwrap_or(Value::String(s))
                } else {
                    Value::String(s)
                }
            }
            other => other,
        };
        out.insert(k, v);
    }
    if let Some(etag) = etag {
        out.insert("_etag".into(), etag);
    }
    Value::Object(out)
}

fn decimal(s: &str) -> Option<Value> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(json!(i));
    }
    let f: f64 = t.parse().ok()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(json!(f as i64))
    } else {
        serde_json::Number::from_f64(f).map(Value::Number)
    }
}

/// An entity of a flow record in the wire format of a write (see the module doc).
pub fn to_wire(data: &Value, v4: bool, numbers: &[String]) -> Value {
    let Value::Object(map) = data else {
        return data.clone();
    };
    let mut out = Map::new();
    for (k, v) in map {
        if k == "_etag" || k == "__metadata" || k.starts_with('@') {
            continue;
        }
        let wire = match v {
            Value::Array(rows) => {
                let rows: Vec<Value> = rows.iter().map(|r| to_wire(r, v4, numbers)).collect();
                if v4 { json!(rows) } else { json!({"results": rows}) }
            }
            Value::Object(_) => to_wire(v, v4, numbers),
            Value::Number(n) if !v4 && is_decimal(k, numbers) => json!(n.to_string()),
            Value::String(s) if k.ends_with("Date") || k.ends_with("DateTime") => date_to_wire(k, s, v4),
            other => other.clone(),
        };
        out.insert(k.clone(), wire);
    }
    Value::Object(out)
}

fn date_to_wire(name: &str, s: &str, v4: bool) -> Value {
    if parse_v2_date(s).is_some() {
        return json!(s);
    }
    let Some(ms) = parse_iso(s) else {
        return json!(s);
    };
    match (v4, name.ends_with("DateTime")) {
        (false, false) => json!(format!("/Date({ms})/")),
        (false, true) => json!(format!("/Date({ms}+0000)/")),
        (true, false) => json!(iso(ms)[..10].to_string()),
        (true, true) => json!(iso(ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_convert_both_ways() {
        let ms = 1_714_552_212_453;
        assert_eq!(iso(ms), "2024-05-01T08:30:12.453Z");
        assert_eq!(iso(253_402_214_400_000), "9999-12-31T00:00:00Z");
        assert_eq!(parse_iso("2024-05-01T16:30:12.453+08:00"), Some(ms));
        assert_eq!(parse_iso("2024-05-01"), Some(1_714_521_600_000));
        assert_eq!(parse_iso("2024-13-01"), None);
        assert_eq!(parse_v2_date("/Date(1714552212453+0120)/"), Some(ms));
        assert_eq!(parse_v2_date("/Date(-86400000)/"), Some(-86_400_000));
        assert_eq!(timestamp_ms(&json!("2024-05-01T08:30:12.453Z")), Some(ms));
    }

    #[test]
    fn v2_entities_become_plain_records() {
        let entity = json!({
            "__metadata": {"id": "x", "uri": "x", "type": "T", "etag": "W/\"datetimeoffset'2024'\""},
            "PurchaseRequisition": "10000012",
            "RequestedQuantity": "12.500",
            "PurchaseRequisitionPrice": "8500.00",
            "Plant": "1010",
            "DeliveryDate": "/Date(1714521600000)/",
            "LastChangeDateTime": "/Date(1714552212453+0000)/",
            "to_Header": {"__deferred": {"uri": "x"}},
            "to_Items": {"results": [{"__metadata": {"uri": "y"}, "RequestedQuantity": "1.000", "Extra": "2.5"}]}
        });
        let n = normalize(entity, &["Extra".to_string()]);
        assert_eq!(
            n,
            json!({
                "PurchaseRequisition": "10000012",
                "RequestedQuantity": 12.5,
                "PurchaseRequisitionPrice": 8500,
                "Plant": "1010",
                "DeliveryDate": "2024-05-01T00:00:00Z",
                "LastChangeDateTime": "2024-05-01T08:30:12.453Z",
                "to_Items": [{"RequestedQuantity": 1, "Extra": 2.5}],
                "_etag": "W/\"datetimeoffset'2024'\""
            })
        );
        let v4 = normalize(
            json!({"@odata.etag": "W/\"1\"", "@odata.context": "c", "A": 1, "RequestedQuantity": 1500.0}),
            &[],
        );
        assert_eq!(v4, json!({"A": 1, "RequestedQuantity": 1500, "_etag": "W/\"1\""}));
    }

    #[test]
    fn writes_use_the_wire_formats() {
        let data = json!({"PurReqnDescription": "扩容", "DeliveryDate": "2024-06-01", "LastChangeDateTime": "2024-05-01T08:30:12.453Z",
            "_etag": "x", "to_PurchaseReqnItem": [{"RequestedQuantity": 2, "Plant": "1010"}]});
        assert_eq!(
            to_wire(&data, false, &[]),
            json!({"PurReqnDescription": "扩容", "DeliveryDate": "/Date(1717200000000)/",
            "LastChangeDateTime": "/Date(1714552212453+0000)/",
            "to_PurchaseReqnItem": {"results": [{"RequestedQuantity": "2", "Plant": "1010"}]}})
        );
        assert_eq!(
            to_wire(&data, true, &[]),
            json!({"PurReqnDescription": "扩容", "DeliveryDate": "2024-06-01",
            "LastChangeDateTime": "2024-05-01T08:30:12.453Z",
            "to_PurchaseReqnItem": [{"RequestedQuantity": 2, "Plant": "1010"}]})
        );
    }
}
