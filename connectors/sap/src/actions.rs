//! The actions `get`, `query`, `create` and `update`. `create` and `update` take either one
//! entity or a list of `items`; a list goes out as one `$batch` with one changeset per item
//! and comes back as one outcome per item.

use qiao_sdk::http::Request;
use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;

use crate::batch::{self, Op, Part, Reply};
use crate::client::Service;
use crate::config::Config;
use crate::errors::{check, classify};
use crate::keys::{path_escape, predicate};
use crate::poll::Names;
use crate::values::{normalize, to_wire};

/// Default cap on what `query` collects across pages.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GetInput {
    service: String,
    entity_set: String,
    key: Value,
    #[serde(default)]
    select: Option<Names>,
    #[serde(default)]
    expand: Option<Names>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    numbers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryInput {
    service: String,
    entity_set: String,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    select: Option<Names>,
    #[serde(default)]
    expand: Option<Names>,
    #[serde(default)]
    orderby: Option<String>,
    #[serde(default)]
    top: Option<u64>,
    #[serde(default)]
    skip: Option<u64>,
    #[serde(default)]
    max_records: Option<usize>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    numbers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInput {
    service: String,
    entity_set: String,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    items: Option<Vec<Value>>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    numbers: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateItem {
    key: Value,
    data: Value,
    #[serde(default)]
    etag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateInput {
    service: String,
    entity_set: String,
    #[serde(default)]
    key: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    items: Option<Vec<UpdateItem>>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    numbers: Vec<String>,
}

fn service<'a>(config: &'a Config, service: &str, version: Option<u8>) -> Result<Service<'a>> {
    let version = config.version(version).map_err(|e| Error::invalid_input(e.message().to_string()))?;
    Ok(Service::new(config, service, version))
}

/// The entity in a single-entity answer body (v2 `d`, v4 the body).
fn entity_of(svc: &Service<'_>, body: Value) -> Value {
    if svc.v4() { body } else { body.get("d").cloned().unwrap_or(Value::Null) }
}

fn with_etag(mut entity: Value, etag: Option<&str>) -> Value {
    if let (Value::Object(m), Some(e)) = (&mut entity, etag)
        && !m.contains_key("_etag")
    {
        m.insert("_etag".into(), json!(e));
    }
    entity
}

fn entity_path(entity_set: &str, key: &Value, v4: bool) -> Result<String> {
    Ok(path_escape(&format!("{entity_set}{}", predicate(key, v4)?)))
}

/// `get`: one entity by key.
pub fn get(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: GetInput = req.input()?;
    let svc = service(&config, &input.service, input.version)?;
    let mut r = Request::get(svc.url(&entity_path(&input.entity_set, &input.key, svc.v4())?));
    if let Some(s) = &input.select {
        r = r.query("$select", s.list().join(","));
    }
    if let Some(e) = &input.expand {
        r = r.query("$expand", e.list().join(","));
    }
    let resp = check(svc.send(r)?)?;
    let etag = resp.header("etag").map(str::to_string);
    let entity = entity_of(&svc, resp.json()?);
    Ok(ActionOutput::new(with_etag(normalize(entity, &input.numbers), etag.as_deref())))
}

/// `query`: every entity matching the options, following server paging, as a list.
pub fn query(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: QueryInput = req.input()?;
    let svc = service(&config, &input.service, input.version)?;
    let max = input.max_records.unwrap_or(DEFAULT_MAX_RECORDS);
    let mut r = Request::get(svc.url(&path_escape(&input.entity_set)));
    if let Some(f) = input.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        r = r.query("$filter", f);
    }
    if let Some(s) = &input.select {
        r = r.query("$select", s.list().join(","));
    }
    if let Some(e) = &input.expand {
        r = r.query("$expand", e.list().join(","));
    }
    if let Some(o) = &input.orderby {
        r = r.query("$orderby", o);
    }
    if let Some(t) = input.top {
        r = r.query("$top", t.to_string());
    }
    if let Some(s) = input.skip {
        r = r.query("$skip", s.to_string());
    }
    let mut out = Vec::new();
    let mut pages = 0;
    loop {
        let body: Value = check(svc.send(r)?)?.json()?;
        pages += 1;
        let (rows, next) = if svc.v4() {
            (body.get("value"), body.get("@odata.nextLink"))
        } else {
            (body.pointer("/d/results"), body.pointer("/d/__next"))
        };
        let rows = rows.and_then(Value::as_array).ok_or_else(|| {
            Error::permanent(format!("{} answered without a result list", input.entity_set))
        })?;
        out.extend(rows.iter().map(|row| normalize(row.clone(), &input.numbers)));
        match next.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            Some(_) if out.len() >= max => {
                qiao_sdk::warn!(
                    "query of {} stopped at max_records = {max} after {pages} pages",
                    input.entity_set
                );
                out.truncate(max);
                break;
            }
            Some(n) => r = Request::get(svc.resolve(n)),
            None => break,
        }
    }
    Ok(ActionOutput::new(Value::Array(out)))
}

/// `create`: one entity (201 → the created entity), or `items` in one `$batch`.
pub fn create(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: CreateInput = req.input()?;
    let svc = service(&config, &input.service, input.version)?;
    let set = path_escape(&input.entity_set);
    match (input.data, input.items) {
        (Some(data), None) => {
            let r = Request::post(svc.url(&set)).json(&to_wire(&data, svc.v4(), &input.numbers));
            let resp = check(svc.write(r)?)?;
            let etag = resp.header("etag").map(str::to_string);
            let entity = entity_of(&svc, resp.json()?);
            Ok(ActionOutput::new(with_etag(normalize(entity, &input.numbers), etag.as_deref())))
        }
        (None, Some(items)) => {
            let parts: Vec<Part> = items
                .iter()
                .map(|d| {
                    Part::Change(Op {
                        method: "POST".into(),
                        url: set.clone(),
                        headers: vec![],
                        body: Some(to_wire(d, svc.v4(), &input.numbers).to_string()),
                    })
                })
                .collect();
            let replies = if parts.is_empty() { Vec::new() } else { batch::send(&svc, &parts)? };
            let outcomes = replies
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    if r.status == 201 || r.status == 200 {
                        let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
                        Ok(with_etag(normalize(entity_of(&svc, body), &input.numbers), r.header("etag")))
                    } else {
                        Err(classify(
                            r.status,
                            &r.headers,
                            &r.body,
                            &format!("$batch item {i}: POST {}", input.entity_set),
                        ))
                    }
                })
                .collect();
            Ok(bulk(outcomes))
        }
        _ => Err(Error::invalid_input("input: give either data (one entity) or items (a list), not both")),
    }
}

fn bulk(outcomes: Vec<Result<Value>>) -> ActionOutput {
    let ok = outcomes.iter().filter(|o| o.is_ok()).count();
    ActionOutput { output: json!({"succeeded": ok, "failed": outcomes.len() - ok}), items: Some(outcomes) }
}

/// How an update finds its `If-Match`.
#[derive(Debug, Clone, PartialEq)]
enum EtagMode {
    /// As given.
    Given(String),
    /// Read before writing.
    Read,
    /// Read before writing, and read again once after a 412.
    Auto,
}

fn mode(etag: Option<&str>) -> EtagMode {
    match etag {
        None | Some("") => EtagMode::Read,
        Some(e) if e.eq_ignore_ascii_case("auto") => EtagMode::Auto,
        Some(e) => EtagMode::Given(e.to_string()),
    }
}

/// The ETag of a read: the header, else `__metadata.etag` / `@odata.etag`, else `*` (an
/// entity without an ETag accepts any).
fn etag_of(headers_etag: Option<&str>, body: &[u8]) -> String {
    if let Some(e) = headers_etag {
        return e.to_string();
    }
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v.pointer("/d/__metadata/etag")
        .or_else(|| v.get("@odata.etag"))
        .and_then(Value::as_str)
        .unwrap_or("*")
        .to_string()
}

/// The method, its `X-HTTP-Method` tunnel for a direct call, and the name inside a batch.
fn method(m: Option<&str>) -> Result<(&'static str, Option<&'static str>, &'static str)> {
    match m.map(str::to_ascii_uppercase).as_deref() {
        None | Some("PATCH") => Ok(("PATCH", None, "PATCH")),
        Some("MERGE") => Ok(("POST", Some("MERGE"), "MERGE")),
        Some("PUT") => Ok(("PUT", None, "PUT")),
        Some(other) => Err(Error::invalid_input(format!("input.method: PATCH, MERGE or PUT, got {other:?}"))),
    }
}

/// `update`: one entity (`key`, `data`, `etag`), or `items` in one `$batch`.
pub fn update(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: UpdateInput = req.input()?;
    let svc = service(&config, &input.service, input.version)?;
    let methods = method(input.method.as_deref())?;
    match (input.key, input.data, input.items) {
        (Some(key), Some(data), None) => {
            let item = UpdateItem { key, data, etag: input.etag };
            update_one(&svc, &input.entity_set, &item, methods, &input.numbers).map(ActionOutput::new)
        }
        (None, None, Some(items)) => {
            Ok(bulk(update_many(&svc, &input.entity_set, &items, methods.2, &input.numbers)?))
        }
        _ => Err(Error::invalid_input("input: give key and data (one entity) or items (a list)")),
    }
}

fn update_one(
    svc: &Service<'_>,
    entity_set: &str,
    item: &UpdateItem,
    (verb, tunnel, _): (&str, Option<&str>, &str),
    numbers: &[String],
) -> Result<Value> {
    let path = entity_path(entity_set, &item.key, svc.v4())?;
    let url = svc.url(&path);
    let body = to_wire(&item.data, svc.v4(), numbers);
    let mode = mode(item.etag.as_deref());
    let mut attempt = 0;
    loop {
        let etag = match &mode {
            EtagMode::Given(e) => e.clone(),
            EtagMode::Read | EtagMode::Auto => {
                let resp = check(svc.send(Request::get(&url))?)?;
                etag_of(resp.header("etag"), &resp.body)
            }
        };
        let mut r = Request::new(verb, &url).header("if-match", &etag).json(&body);
        if let Some(t) = tunnel {
            r = r.header("x-http-method", t);
        }
        let resp = svc.write(r)?;
        if resp.status == 412 && mode == EtagMode::Auto && attempt == 0 {
            qiao_sdk::debug!("{path} changed since its ETag was read; reading it again");
            attempt += 1;
            continue;
        }
        let resp = check(resp)?;
        let new_etag = resp.header("etag").map_or(Value::Null, |e| json!(e));
        return Ok(
            json!({"entity_set": entity_set, "key": predicate(&item.key, svc.v4())?, "_etag": new_etag}),
        );
    }
}

fn update_many(
    svc: &Service<'_>,
    entity_set: &str,
    items: &[UpdateItem],
    verb: &str,
    numbers: &[String],
) -> Result<Vec<Result<Value>>> {
    let mut outcomes: Vec<Option<Result<Value>>> = vec![None; items.len()];
    let mut paths = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match entity_path(entity_set, &item.key, svc.v4()) {
            Ok(p) => paths.push(p),
            Err(e) => {
                outcomes[i] = Some(Err(e));
                paths.push(String::new());
            }
        }
    }
    let mut etags: Vec<Option<String>> = items
        .iter()
        .map(|it| match mode(it.etag.as_deref()) {
            EtagMode::Given(e) => Some(e),
            _ => None,
        })
        .collect();
    let pending = |outcomes: &[Option<Result<Value>>], etags: &[Option<String>]| -> Vec<usize> {
        (0..items.len()).filter(|i| outcomes[*i].is_none() && etags[*i].is_none()).collect()
    };
    read_etags(svc, &paths, &pending(&outcomes, &etags), &mut etags, &mut outcomes)?;
    let mut todo: Vec<usize> = (0..items.len()).filter(|i| outcomes[*i].is_none()).collect();
    for round in 0..2 {
        if todo.is_empty() {
            break;
        }
        let parts: Vec<Part> = todo
            .iter()
            .map(|&i| {
                Part::Change(Op {
                    method: verb.to_string(),
                    url: paths[i].clone(),
                    headers: vec![("If-Match".into(), etags[i].clone().unwrap_or_else(|| "*".into()))],
                    body: Some(to_wire(&items[i].data, svc.v4(), numbers).to_string()),
                })
            })
            .collect();
        let replies = batch::send(svc, &parts)?;
        let mut retry = Vec::new();
        for (&i, reply) in todo.iter().zip(&replies) {
            if reply.status == 412 && round == 0 && mode(items[i].etag.as_deref()) == EtagMode::Auto {
                etags[i] = None;
                retry.push(i);
                continue;
            }
            outcomes[i] = Some(update_outcome(svc, entity_set, &items[i], i, reply));
        }
        read_etags(svc, &paths, &retry, &mut etags, &mut outcomes)?;
        todo = retry.into_iter().filter(|i| outcomes[*i].is_none()).collect();
    }
    Ok(outcomes
        .into_iter()
        .map(|o| o.unwrap_or_else(|| Err(Error::transient("no answer for this item"))))
        .collect())
}

fn update_outcome(
    svc: &Service<'_>,
    entity_set: &str,
    item: &UpdateItem,
    i: usize,
    reply: &Reply,
) -> Result<Value> {
    if reply.status >= 400 {
        return Err(classify(
            reply.status,
            &reply.headers,
            &reply.body,
            &format!("$batch item {i}: update {entity_set}"),
        ));
    }
    let etag = reply.header("etag").map_or(Value::Null, |e| json!(e));
    Ok(json!({"entity_set": entity_set, "key": predicate(&item.key, svc.v4())?, "_etag": etag}))
}

/// Reads the ETags of the items at `which` with one `$batch` of retrievals; an item whose
/// read fails gets that failure as its outcome.
fn read_etags(
    svc: &Service<'_>,
    paths: &[String],
    which: &[usize],
    etags: &mut [Option<String>],
    outcomes: &mut [Option<Result<Value>>],
) -> Result<()> {
    if which.is_empty() {
        return Ok(());
    }
    let parts: Vec<Part> = which
        .iter()
        .map(|&i| Part::Get(Op { method: "GET".into(), url: paths[i].clone(), headers: vec![], body: None }))
        .collect();
    let replies = batch::send(svc, &parts)?;
    for (&i, reply) in which.iter().zip(&replies) {
        if reply.status >= 400 {
            outcomes[i] = Some(Err(classify(
                reply.status,
                &reply.headers,
                &reply.body,
                &format!("$batch item {i}: GET {}", paths[i]),
            )));
        } else {
            etags[i] = Some(etag_of(reply.header("etag"), &reply.body));
        }
    }
    Ok(())
}
