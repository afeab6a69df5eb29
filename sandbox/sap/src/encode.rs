//! Wire formats: dates, key predicates, ETags, v2 verbose JSON, v4 JSON and the v2 Atom feed.

use serde_json::{Map, Value, json};

use crate::model::{Edm, Entity, EntitySet};

const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm; covers
/// 9999-12-31, which SAP uses as the open end of validity periods).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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

/// (date, hh, mm, ss, millis) of epoch milliseconds, UTC.
fn parts(ms: i64) -> ((i64, i64, i64), i64, i64, i64, i64) {
    let day = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS);
    (civil_from_days(day), rest / 3_600_000, rest / 60_000 % 60, rest / 1000 % 60, rest % 1000)
}

/// `2024-05-01T08:30:12.453Z` (no fraction when it is zero).
pub fn iso(ms: i64) -> String {
    let frac = ms.rem_euclid(1000);
    if frac == 0 { format!("{}Z", iso_civil(ms)) } else { format!("{}.{frac:03}Z", iso_civil(ms)) }
}

/// `2024-05-01`.
pub fn iso_date(ms: i64) -> String {
    let ((y, m, d), ..) = parts(ms);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2024-05-01T00:00:00` (v2 `Edm.DateTime` in Atom and in key predicates).
pub fn iso_civil(ms: i64) -> String {
    let ((y, m, d), hh, mm, ss, _) = parts(ms);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}")
}

fn num(s: &str) -> Option<i64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok()).flatten()
}

/// Parses an ISO 8601 date (`2024-05-01`), a civil date-time (read as UTC) or a timestamp
/// with `Z` or an offset, with or without fractional seconds.
pub fn parse_iso(text: &str) -> Option<i64> {
    let (date, time) = text.split_once('T').unwrap_or((text, ""));
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    if d.next().is_some() || date.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let mut ms = days_from_civil(y, m, day) * DAY_MS;
    if time.is_empty() {
        return (!text.contains('T')).then_some(ms);
    }
    let (clock, offset_ms) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if let Some(at) = time.rfind(['+', '-']) {
        let (h, mi) = time[at + 1..].split_once(':')?;
        let off = (num(h)? * 60 + num(mi)?) * 60_000;
        (&time[..at], if &time[at..at + 1] == "+" { off } else { -off })
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
    ms += ((hh * 60 + mm) * 60 + ss) * 1000 + millis - offset_ms;
    Some(ms)
}

/// Parses v2 `/Date(1714552212453)/` or `/Date(1714552212453+0000)/` (the offset is
/// informational: the number is UTC milliseconds).
pub fn parse_v2_date(text: &str) -> Option<i64> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let digits_end =
        inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-').map_or(inner.len(), |(i, _)| i);
    inner[..digits_end].parse().ok()
}

/// The weak ETag of an entity, v2 style: `W/"datetimeoffset'2024-05-01T08%3A30%3A12.4530000Z'"`.
pub fn etag_v2(entity: &Entity) -> String {
    let t = fraction7(entity.changed_ms);
    format!("W/\"datetimeoffset'{}'\"", t.replace(':', "%3A"))
}

/// The weak ETag of an entity, v4 style: `W/"20240501083012.4530000"`.
pub fn etag_v4(entity: &Entity) -> String {
    let t = fraction7(entity.changed_ms);
    let compact: String = t.chars().filter(|c| c.is_ascii_digit() || *c == '.').collect();
    format!("W/\"{compact}\"")
}

/// `2024-05-01T08:30:12.4530000Z` (seven fractional digits, as ABAP timestamps print).
fn fraction7(ms: i64) -> String {
    format!("{}.{:03}0000Z", iso_civil(ms), ms.rem_euclid(1000))
}

/// Whether `if_match` names the current state of `entity` (either ETag style, or `*`).
pub fn etag_matches(entity: &Entity, if_match: &str) -> bool {
    if_match
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag_v2(entity) || tag == etag_v4(entity))
}

/// A literal for a key predicate, per version: `'A000'`, `guid'…'` (v2) / bare (v4),
/// `datetime'9999-12-31T00:00:00'` (v2) / `9999-12-31` (v4).
pub fn key_literal(value: &Value, edm: Edm, v4: bool) -> String {
    match (edm, value) {
        (Edm::Guid, Value::String(s)) if v4 => s.clone(),
        (Edm::Guid, Value::String(s)) => format!("guid'{s}'"),
        (Edm::Date, Value::Number(n)) if v4 => iso_date(n.as_i64().unwrap_or(0)),
        (Edm::Date, Value::Number(n)) => format!("datetime'{}'", iso_civil(n.as_i64().unwrap_or(0))),
        (Edm::DateTimeOffset, Value::Number(n)) if v4 => iso(n.as_i64().unwrap_or(0)),
        (Edm::DateTimeOffset, Value::Number(n)) => {
            format!("datetimeoffset'{}'", iso(n.as_i64().unwrap_or(0)))
        }
        (_, Value::String(s)) => format!("'{}'", s.replace('\'', "''")),
        (_, other) => other.to_string(),
    }
}

/// `(ControllingArea='A000',CostCenter='10101101',ValidityEndDate=datetime'9999-12-31T00%3A00%3A00')`,
/// or `('10000012')` for a single key.
pub fn key_predicate(set: &EntitySet, entity: &Entity, v4: bool) -> String {
    let parts: Vec<String> = set
        .keys
        .iter()
        .map(|k| {
            let edm = set.prop(k).unwrap_or(Edm::Str);
            let lit = key_literal(entity.fields.get(*k).unwrap_or(&Value::Null), edm, v4).replace(':', "%3A");
            if set.keys.len() == 1 { lit } else { format!("{k}={lit}") }
        })
        .collect();
    format!("({})", parts.join(","))
}

/// One property value on the wire.
pub fn wire_value(value: &Value, edm: Edm, v4: bool) -> Value {
    match (edm, value) {
        (_, Value::Null) => Value::Null,
        (Edm::Date, Value::Number(n)) if v4 => json!(iso_date(n.as_i64().unwrap_or(0))),
        (Edm::Date, Value::Number(n)) => json!(format!("/Date({})/", n.as_i64().unwrap_or(0))),
        (Edm::DateTimeOffset, Value::Number(n)) if v4 => json!(iso(n.as_i64().unwrap_or(0))),
        (Edm::DateTimeOffset, Value::Number(n)) => json!(format!("/Date({}+0000)/", n.as_i64().unwrap_or(0))),
        (Edm::Decimal, Value::String(s)) if v4 => s.parse::<f64>().map_or(Value::Null, |f| json!(f)),
        (_, v) => v.clone(),
    }
}

/// How an entity is rendered: which properties, which navigations expanded, where it lives.
pub struct Shape<'a> {
    /// v4 JSON rather than v2.
    pub v4: bool,
    /// `$select`d properties (empty: all).
    pub select: &'a [String],
    /// The service root URL (`http://host/sap/opu/odata/sap/API_X_SRV`).
    pub root: &'a str,
    /// The v2 type namespace (the service name).
    pub namespace: &'a str,
}

impl Shape<'_> {
    fn selected(&self, name: &str) -> bool {
        self.select.is_empty() || self.select.iter().any(|s| s == "*" || s == name)
    }
}

/// An entity as JSON (v2: with `__metadata` and deferred navigations; v4: with
/// `@odata.etag`). `expanded` carries the expanded to-many navigations, already encoded.
pub fn entity_json(
    set: &EntitySet,
    entity: &Entity,
    shape: &Shape<'_>,
    expanded: &[(&str, Vec<Value>)],
) -> Value {
    let mut out = Map::new();
    let uri = format!("{}/{}{}", shape.root, set.name, key_predicate(set, entity, shape.v4));
    if shape.v4 {
        out.insert("@odata.etag".into(), json!(etag_v4(entity)));
    } else {
        out.insert(
            "__metadata".into(),
            json!({"id": uri, "uri": uri, "type": format!("{}.{}", shape.namespace, set.type_name()),
                   "etag": etag_v2(entity)}),
        );
    }
    for (name, edm) in set.props {
        if shape.selected(name) {
            let v = entity.fields.get(*name).unwrap_or(&Value::Null);
            out.insert((*name).into(), wire_value(v, *edm, shape.v4));
        }
    }
    for nav in set.navs {
        if let Some((_, rows)) = expanded.iter().find(|(n, _)| *n == nav.name) {
            let value = if shape.v4 { json!(rows) } else { json!({"results": rows}) };
            out.insert(nav.name.into(), value);
        } else if !shape.v4 && shape.selected(nav.name) {
            out.insert(nav.name.into(), json!({"__deferred": {"uri": format!("{uri}/{}", nav.name)}}));
        }
    }
    Value::Object(out)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// One `<entry>` of a v2 Atom feed (or a standalone entry document when `standalone`).
pub fn atom_entry(set: &EntitySet, entity: &Entity, shape: &Shape<'_>, standalone: bool) -> String {
    let key = key_predicate(set, entity, false);
    let mut props = String::new();
    for (name, edm) in set.props {
        if !shape.selected(name) {
            continue;
        }
        let value = entity.fields.get(*name).unwrap_or(&Value::Null);
        let text = match (edm, value) {
            (_, Value::Null) => {
                props.push_str(&format!("<d:{name} m:null=\"true\"/>"));
                continue;
            }
            (Edm::Date, Value::Number(n)) => iso_civil(n.as_i64().unwrap_or(0)),
            (Edm::DateTimeOffset, Value::Number(n)) => iso(n.as_i64().unwrap_or(0)),
            (_, Value::String(s)) => xml_escape(s),
            (_, other) => other.to_string(),
        };
        let ty = if *edm == Edm::Str { String::new() } else { format!(" m:type=\"{}\"", edm.name(false)) };
        props.push_str(&format!("<d:{name}{ty}>{text}</d:{name}>"));
    }
    let ns = if standalone { NAMESPACES } else { "" };
    format!(
        "<entry{ns} m:etag=\"{etag}\"><id>{root}/{set}{key}</id><title type=\"text\">{set}{key}</title>\
         <updated>{updated}</updated><category term=\"{namespace}.{ty}\" \
         scheme=\"http://schemas.microsoft.com/ado/2007/08/dataservices/scheme\"/>\
         <link href=\"{set}{key}\" rel=\"self\" title=\"{ty}\"/>\
         <content type=\"application/xml\"><m:properties>{props}</m:properties></content></entry>",
        etag = xml_escape(&etag_v2(entity)),
        root = shape.root,
        set = set.name,
        updated = iso(entity.changed_ms),
        namespace = shape.namespace,
        ty = set.type_name(),
    )
}

const NAMESPACES: &str = " xmlns=\"http://www.w3.org/2005/Atom\" \
    xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\" \
    xmlns:d=\"http://schemas.microsoft.com/ado/2007/08/dataservices\"";

/// A v2 Atom feed of `entries` (already rendered), with the inline count and next link.
pub fn atom_feed(
    set: &EntitySet,
    entries: &[String],
    shape: &Shape<'_>,
    count: Option<usize>,
    next: Option<&str>,
    now_ms: i64,
) -> String {
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xml:base=\"{root}/\"{NAMESPACES}>\
         <id>{root}/{set}</id><title type=\"text\">{set}</title><updated>{now}</updated>\
         <author><name/></author><link href=\"{set}\" rel=\"self\" title=\"{set}\"/>",
        root = shape.root,
        set = set.name,
        now = iso(now_ms),
    );
    if let Some(n) = count {
        out.push_str(&format!("<m:count>{n}</m:count>"));
    }
    for e in entries {
        out.push_str(e);
    }
    if let Some(next) = next {
        out.push_str(&format!("<link href=\"{}\" rel=\"next\"/>", xml_escape(next)));
    }
    out.push_str("</feed>");
    out
}

/// The `$metadata` document of a service (EDMX; v2 or v4 flavour).
pub fn metadata(namespace: &str, sets: &[EntitySet], v4: bool) -> String {
    let mut types = String::new();
    let mut container = String::new();
    for set in sets {
        let keys: String = set.keys.iter().map(|k| format!("<PropertyRef Name=\"{k}\"/>")).collect();
        let props: String = set
            .props
            .iter()
            .map(|(n, t)| {
                let facets = match t {
                    Edm::Decimal => " Precision=\"13\" Scale=\"3\"",
                    Edm::Str => " MaxLength=\"40\"",
                    _ => "",
                };
                let etag = if set.changed == Some(n) { " ConcurrencyMode=\"Fixed\"" } else { "" };
                format!("<Property Name=\"{n}\" Type=\"{}\"{facets}{etag}/>", t.name(v4))
            })
            .collect();
        types.push_str(&format!(
            "<EntityType Name=\"{}\"><Key>{keys}</Key>{props}</EntityType>",
            set.type_name()
        ));
        container.push_str(&format!(
            "<EntitySet Name=\"{0}\" EntityType=\"{namespace}.{1}\"/>",
            set.name,
            set.type_name()
        ));
    }
    if v4 {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" \
             xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices>\
             <Schema Namespace=\"{namespace}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">{types}\
             <EntityContainer Name=\"Container\">{container}</EntityContainer></Schema>\
             </edmx:DataServices></edmx:Edmx>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"1.0\" \
             xmlns:edmx=\"http://schemas.microsoft.com/ado/2007/06/edmx\" \
             xmlns:m=\"http://schemas.microsoft.com/ado/2007/08/dataservices/metadata\">\
             <edmx:DataServices m:DataServiceVersion=\"2.0\"><Schema Namespace=\"{namespace}\" \
             xmlns=\"http://schemas.microsoft.com/ado/2008/09/edm\">{types}\
             <EntityContainer Name=\"{namespace}_Entities\" m:IsDefaultEntityContainer=\"true\">{container}\
             </EntityContainer></Schema></edmx:DataServices></edmx:Edmx>"
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_in_every_format() {
        let ms = 1_714_552_212_453;
        assert_eq!(iso(ms), "2024-05-01T08:30:12.453Z");
        assert_eq!(parse_iso("2024-05-01T08:30:12.453Z"), Some(ms));
        assert_eq!(parse_iso("2024-05-01T16:30:12.453+08:00"), Some(ms));
        assert_eq!(parse_iso("2024-05-01"), Some(1_714_521_600_000));
        assert_eq!(parse_iso("2024-05-01T00:00:00"), Some(1_714_521_600_000));
        assert_eq!(parse_v2_date("/Date(1714552212453)/"), Some(ms));
        assert_eq!(parse_v2_date("/Date(1714552212453+0000)/"), Some(ms));
        assert_eq!(parse_v2_date("/Date(-1000)/"), Some(-1000));
        assert_eq!(parse_iso("9999-12-31T00:00:00"), Some(253_402_214_400_000));
        assert_eq!(iso_date(253_402_214_400_000), "9999-12-31");
        assert_eq!(iso(1_714_521_600_000), "2024-05-01T00:00:00Z");
        assert_eq!(parse_iso("2024-02-30x"), None);
        assert_eq!(parse_iso("2024-05-01T08:30:12.4530000Z"), Some(ms));
        assert_eq!(wire_value(&json!(ms), Edm::DateTimeOffset, false), json!("/Date(1714552212453+0000)/"));
        assert_eq!(wire_value(&json!(ms), Edm::Date, true), json!("2024-05-01"));
        assert_eq!(wire_value(&json!("12.500"), Edm::Decimal, false), json!("12.500"));
        assert_eq!(wire_value(&json!("12.500"), Edm::Decimal, true), json!(12.5));
    }

    #[test]
    fn etags_follow_the_abap_timestamp() {
        let e = Entity { fields: Map::new(), changed_ms: 1_714_552_212_453 };
        assert_eq!(etag_v2(&e), "W/\"datetimeoffset'2024-05-01T08%3A30%3A12.4530000Z'\"");
        assert_eq!(etag_v4(&e), "W/\"20240501083012.4530000\"");
        assert!(etag_matches(&e, "*"));
        assert!(etag_matches(&e, &etag_v4(&e)));
        assert!(!etag_matches(&e, "W/\"20240501083012.4520000\""));
    }
}
