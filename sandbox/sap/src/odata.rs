//! One OData request inside a resolved service: resource path → entity set, key, navigation;
//! system query options; reads (collections with server-driven paging, single entities,
//! `$count`, `$metadata`, the service document). Writes live in `write`.

use serde_json::{Value, json};

use crate::answer::{Answer, ErrorContext, codes, error};
use crate::encode::{Shape, atom_entry, atom_feed, entity_json, etag_v2, etag_v4, metadata};
use crate::model::{Entity, EntitySet, Service};
use crate::query::{Filter, matches, parse_filter, parse_key, parse_orderby, sort};
use crate::store::Data;

/// The request's context: version, format, service and where the service lives.
#[derive(Clone, Debug)]
pub struct Call {
    /// OData v4 (else v2).
    pub v4: bool,
    /// The client asked for JSON (always true for v4).
    pub json: bool,
    /// The service.
    pub service: &'static Service,
    /// Absolute URL of the service root, without a trailing slash.
    pub root: String,
    /// Sandbox-clock milliseconds.
    pub now_ms: i64,
    /// Server page size.
    pub page_size: usize,
}

impl Call {
    /// The error context of this call.
    pub fn err(&self) -> ErrorContext<'static> {
        ErrorContext { v4: self.v4, json: self.json || self.v4, service: Some(self.service) }
    }

    /// The v2 type namespace (the service's technical name).
    pub fn namespace(&self) -> &'static str {
        self.service.v2_name
    }

    /// The ETag of `e` in this call's version.
    pub fn etag(&self, e: &Entity) -> String {
        if self.v4 { etag_v4(e) } else { etag_v2(e) }
    }
}

/// One request below the service root (also a `$batch` part).
#[derive(Debug)]
pub struct Inner<'a> {
    /// Method, after `X-HTTP-Method` tunnelling.
    pub method: &'a str,
    /// Resource path below the service root, percent-decoded, without a leading `/`.
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    /// Headers, names lower-case.
    pub headers: &'a [(String, String)],
    /// Body.
    pub body: &'a [u8],
}

impl Inner<'_> {
    /// The first header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Percent-decodes `s` (`+` stays a plus: OData literals may carry one).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query parameters, in order.
pub fn query_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Whether the request asks for JSON (`$format=json` or `Accept: application/json`).
pub fn wants_json(raw_query: &str, accept: Option<&str>) -> bool {
    let format = query_pairs(raw_query).into_iter().find(|(k, _)| k == "$format").map(|(_, v)| v);
    match format.as_deref() {
        Some("json") => true,
        Some(_) => false,
        None => accept.is_some_and(|a| a.contains("application/json")),
    }
}

/// System query options of a read.
#[derive(Debug, Default)]
struct Options {
    filter: Option<Filter>,
    select: Vec<String>,
    orderby: Vec<(String, bool)>,
    expand: Vec<String>,
    top: Option<usize>,
    skip: usize,
    skiptoken: usize,
    count: bool,
}

fn options(raw: &str, set: &EntitySet, v4: bool) -> Result<Options, String> {
    let mut o = Options::default();
    for (k, v) in query_pairs(raw) {
        let number = |v: &str| v.parse::<usize>().map_err(|_| format!("invalid value '{v}' for {k}"));
        match k.as_str() {
            "$filter" => o.filter = Some(parse_filter(&v, set, v4)?),
            "$select" => {
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let head = s.split('/').next().unwrap_or_default();
                    if head != "*" && set.prop(head).is_none() && set.nav(head).is_none() {
                        return Err(format!("Property '{head}' not found in type '{}'", set.type_name()));
                    }
                    if !s.contains('/') {
                        o.select.push(s.to_string());
                    }
                }
            }
            "$orderby" => o.orderby = parse_orderby(&v, set)?,
            "$expand" => {
                for e in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let name = e.split('(').next().unwrap_or_default();
                    if set.nav(name).is_none() {
                        return Err(format!(
                            "Navigation property '{name}' not found in type '{}'",
                            set.type_name()
                        ));
                    }
                    o.expand.push(name.to_string());
                }
            }
            "$top" => o.top = Some(number(&v)?),
            "$skip" => o.skip = number(&v)?,
            "$skiptoken" => o.skiptoken = number(&v)?,
            "$inlinecount" if !v4 => match v.as_str() {
                "allpages" => o.count = true,
                "none" => {}
                other => return Err(format!("invalid value '{other}' for $inlinecount")),
            },
            "$count" if v4 => o.count = v == "true",
            "$format" => {}
            other if other.starts_with('$') => {
                return Err(format!("system query option '{other}' is not supported"));
            }
            _ => {}
        }
    }
    // A selected expanded navigation stays visible.
    if !o.select.is_empty() {
        o.select.extend(o.expand.iter().cloned());
    }
    Ok(o)
}

/// The parsed resource path.
#[derive(Debug)]
pub enum Resource<'a> {
    /// The service document.
    ServiceDocument,
    /// `$metadata`.
    Metadata,
    /// `$batch`.
    Batch,
    /// An entity set, optionally a single entity by key, optionally a navigation from it or
    /// `$count`.
    Set { set: &'static EntitySet, key: Option<Vec<Value>>, nav: Option<&'a str>, count: bool },
}

/// Splits the resource path; an unknown segment or a bad key is the error answer.
pub fn resource<'a>(path: &'a str, call: &Call) -> Result<Resource<'a>, Answer> {
    let path = path.trim_matches('/');
    match path {
        "" => return Ok(Resource::ServiceDocument),
        "$metadata" => return Ok(Resource::Metadata),
        "$batch" => return Ok(Resource::Batch),
        _ => {}
    }
    let name_end = path.find(['(', '/']).unwrap_or(path.len());
    let name = &path[..name_end];
    let Some(set) = call.service.set(name) else {
        return Err(error(
            404,
            codes::NO_SEGMENT,
            &format!("Resource not found for segment '{name}'."),
            "",
            call.err(),
        ));
    };
    let mut rest = &path[name_end..];
    let mut key = None;
    if rest.starts_with('(') {
        let close = closing_paren(rest).ok_or_else(|| bad_key(name, call))?;
        let inner = &rest[1..close];
        key = Some(
            parse_key(inner, set, call.v4).map_err(|m| error(400, codes::BAD_QUERY, &m, "", call.err()))?,
        );
        rest = &rest[close + 1..];
    }
    let rest = rest.trim_start_matches('/');
    let (nav, count) = match rest {
        "" => (None, false),
        "$count" if key.is_none() => (None, true),
        nav if key.is_some() && set.nav(nav).is_some() => (Some(nav), false),
        other => {
            return Err(error(
                404,
                codes::NO_SEGMENT,
                &format!("Resource not found for segment '{other}'."),
                "",
                call.err(),
            ));
        }
    };
    Ok(Resource::Set { set, key, nav, count })
}

fn bad_key(name: &str, call: &Call) -> Answer {
    error(400, codes::BAD_QUERY, &format!("Malformed key predicate for '{name}'."), "", call.err())
}

/// The index of the `)` closing the `(` at 0, skipping quoted text.
fn closing_paren(s: &str) -> Option<usize> {
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            ')' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The service document.
pub fn service_document(call: &Call) -> Answer {
    if call.v4 {
        let value: Vec<Value> =
            call.service.sets.iter().map(|s| json!({"name": s.name, "url": s.name})).collect();
        return Answer::json(200, &json!({"@odata.context": "$metadata", "value": value}));
    }
    let names: Vec<&str> = call.service.sets.iter().map(|s| s.name).collect();
    if call.json {
        return Answer::json(200, &json!({"d": {"EntitySets": names}}));
    }
    let collections: String = names
        .iter()
        .map(|n| format!("<app:collection href=\"{n}\"><atom:title>{n}</atom:title></app:collection>"))
        .collect();
    Answer::text(
        200,
        "application/atomsvc+xml; charset=utf-8",
        format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><app:service xml:base=\"{}/\" \
             xmlns:app=\"http://www.w3.org/2007/app\" xmlns:atom=\"http://www.w3.org/2005/Atom\">\
             <app:workspace><atom:title>Data</atom:title>{collections}</app:workspace></app:service>",
            call.root
        ),
    )
}

/// `$metadata`.
pub fn metadata_document(call: &Call) -> Answer {
    Answer::text(200, "application/xml", metadata(call.namespace(), call.service.sets, call.v4))
}

fn shape<'a>(call: &'a Call, select: &'a [String]) -> Shape<'a> {
    Shape { v4: call.v4, select, root: &call.root, namespace: call.namespace() }
}

fn expanded<'a>(
    data: &Data,
    call: &Call,
    set: &EntitySet,
    e: &Entity,
    expand: &'a [String],
) -> Vec<(&'a str, Vec<Value>)> {
    expand
        .iter()
        .filter_map(|name| {
            let nav = set.nav(name)?;
            let target = call.service.set(nav.target)?;
            let rows = related(data, nav.target, nav.to, e.fields.get(nav.from));
            Some((
                name.as_str(),
                rows.iter().map(|r| entity_json(target, r, &shape(call, &[]), &[])).collect(),
            ))
        })
        .collect()
}

fn related<'d>(data: &'d Data, target: &str, to: &str, value: Option<&Value>) -> Vec<&'d Entity> {
    data.rows(target).iter().filter(|r| r.fields.get(to) == value && value.is_some()).collect()
}

/// A GET on an entity set, an entity, a navigation or `$count`.
pub fn read(data: &Data, call: &Call, req: &Inner<'_>, res: &Resource<'_>) -> Answer {
    let Resource::Set { set, key, nav, count } = res else {
        return Answer::empty(500);
    };
    let opts = match options(req.query, set, call.v4) {
        Ok(o) => o,
        Err(m) => return error(400, codes::BAD_QUERY, &m, "", call.err()),
    };
    let Some(key) = key else {
        let rows: Vec<&Entity> = data.rows(set.name).iter().collect();
        return collection(data, call, req, set, rows, &opts, *count);
    };
    let Some(entity) = data.find(set, key) else {
        return not_found(call, set);
    };
    if let Some(nav) = nav.and_then(|n| set.nav(n)) {
        let Some(target) = call.service.set(nav.target) else {
            return Answer::empty(500);
        };
        let rows = related(data, nav.target, nav.to, entity.fields.get(nav.from));
        let opts = match options(req.query, target, call.v4) {
            Ok(o) => o,
            Err(m) => return error(400, codes::BAD_QUERY, &m, "", call.err()),
        };
        return collection(data, call, req, target, rows, &opts, false);
    }
    let exp = expanded(data, call, set, entity, &opts.expand);
    let etag = call.etag(entity);
    if !call.json {
        return Answer::text(
            200,
            "application/atom+xml; type=entry; charset=utf-8",
            atom_entry(set, entity, &shape(call, &opts.select), true),
        )
        .with("etag", etag);
    }
    let mut body = entity_json(set, entity, &shape(call, &opts.select), &exp);
    let body = if call.v4 {
        if let Value::Object(m) = &mut body {
            m.insert("@odata.context".into(), json!(format!("$metadata#{}/$entity", set.name)));
        }
        body
    } else {
        json!({"d": body})
    };
    Answer::json(200, &body).with("etag", etag)
}

/// The 404 for a key that names nothing.
pub fn not_found(call: &Call, set: &EntitySet) -> Answer {
    error(
        404,
        codes::NOT_FOUND,
        &format!("Resource not found for segment '{}'.", set.type_name()),
        "",
        call.err(),
    )
}

fn collection(
    data: &Data,
    call: &Call,
    req: &Inner<'_>,
    set: &EntitySet,
    mut rows: Vec<&Entity>,
    opts: &Options,
    count_only: bool,
) -> Answer {
    if let Some(f) = &opts.filter {
        rows.retain(|e| matches(f, set, e));
    }
    if count_only {
        return Answer::text(200, "text/plain; charset=utf-8", rows.len().to_string());
    }
    let mut order = opts.orderby.clone();
    order.extend(set.keys.iter().map(|k| (k.to_string(), false)));
    sort(&mut rows, &order, set);
    let total = rows.len();
    let start = opts.skip.saturating_add(opts.skiptoken);
    let wanted = opts.top.map_or(usize::MAX, |t| t.saturating_sub(opts.skiptoken));
    let take = wanted.min(call.page_size.max(1));
    let page: Vec<&Entity> = rows.iter().skip(start).take(take).copied().collect();
    let delivered = opts.skiptoken + page.len();
    let more = start + page.len() < total && take < wanted && !page.is_empty();
    let next = more.then(|| next_link(call, req, delivered));
    let count = opts.count.then_some(total);
    if !call.json {
        let entries: Vec<String> =
            page.iter().map(|e| atom_entry(set, e, &shape(call, &opts.select), false)).collect();
        return Answer::text(
            200,
            "application/atom+xml; type=feed; charset=utf-8",
            atom_feed(set, &entries, &shape(call, &opts.select), count, next.as_deref(), call.now_ms),
        );
    }
    let results: Vec<Value> = page
        .iter()
        .map(|e| entity_json(set, e, &shape(call, &opts.select), &expanded(data, call, set, e, &opts.expand)))
        .collect();
    if call.v4 {
        let mut body = json!({"@odata.context": format!("$metadata#{}", set.name)});
        if let Some(n) = count {
            body["@odata.count"] = json!(n);
        }
        body["value"] = json!(results);
        if let Some(next) = next {
            body["@odata.nextLink"] = json!(next);
        }
        return Answer::json(200, &body);
    }
    let mut d = json!({"results": results});
    if let Some(n) = count {
        d["__count"] = json!(n.to_string());
    }
    if let Some(next) = next {
        d["__next"] = json!(next);
    }
    Answer::json(200, &json!({"d": d}))
}

/// The next page: the same request with `$skiptoken` set to what was delivered so far.
/// Absolute in v2, relative to the service root in v4.
fn next_link(call: &Call, req: &Inner<'_>, delivered: usize) -> String {
    let mut query: Vec<&str> = req
        .query
        .split('&')
        .filter(|p| !p.is_empty() && percent_decode(p.split('=').next().unwrap_or_default()) != "$skiptoken")
        .collect();
    let token = format!("$skiptoken={delivered}");
    query.push(&token);
    let path = req.path.trim_matches('/');
    if call.v4 {
        format!("{path}?{}", query.join("&"))
    } else {
        format!("{}/{path}?{}", call.root, query.join("&"))
    }
}
