//! Writes: create (with deep insert of requisition items), update (`PATCH`, `MERGE`, `PUT`)
//! and delete, each guarded by `If-Match` where the entity has an ETag, and the business
//! validations that answer 400 with SAP message codes.

use qiao_sandbox_kit::seed::MATERIALS;
use serde_json::{Map, Value, json};

use crate::answer::{Answer, codes, error};
use crate::encode::{Shape, entity_json, etag_matches, key_predicate, parse_iso, parse_v2_date, wire_value};
use crate::model::{Edm, Entity, EntitySet};
use crate::odata::{Call, Inner, not_found};
use crate::store::Data;

/// Longest string property value accepted.
pub const MAX_STRING_CHARS: usize = 40;
/// Processing statuses of projects and WBS elements: created, released, locked, closed, completed.
const STATUSES: &[&str] = &["00", "10", "20", "40", "42"];

/// Properties of a payload, and its navigation properties (deep insert).
type Decoded = (Map<String, Value>, Map<String, Value>);

/// A rejection: (status, code, message, target).
type Reject = (u16, &'static str, String, String);

fn reject(call: &Call, r: Reject) -> Answer {
    error(r.0, r.1, &r.2, &r.3, call.err())
}

fn bad(code: &'static str, message: String, target: &str) -> Reject {
    (400, code, message, target.to_string())
}

/// Wire value → internal value for a property of type `edm`.
fn decode(name: &str, v: &Value, edm: Edm, v4: bool) -> Result<Value, Reject> {
    let invalid = || bad(codes::BAD_PAYLOAD, format!("Property '{name}' has an invalid value: {v}"), name);
    match (edm, v) {
        (_, Value::Null) => Ok(Value::Null),
        (Edm::Str, Value::String(s)) => {
            if s.chars().count() > MAX_STRING_CHARS {
                return Err(bad(
                    codes::TOO_LONG,
                    format!("Value of property '{name}' is longer than {MAX_STRING_CHARS} characters"),
                    name,
                ));
            }
            Ok(json!(s))
        }
        (Edm::Guid, Value::String(s)) if s.len() == 36 => Ok(json!(s.to_ascii_lowercase())),
        (Edm::Bool, Value::Bool(b)) => Ok(json!(b)),
        (Edm::Decimal, Value::String(s)) => {
            s.trim().parse::<f64>().map(|f| json!(format!("{f:.3}"))).map_err(|_| invalid())
        }
        // v2 JSON carries decimals as strings; a JSON number is refused, as Gateway does.
        (Edm::Decimal, Value::Number(n)) if v4 => Ok(json!(format!("{:.3}", n.as_f64().unwrap_or(0.0)))),
        (Edm::Date | Edm::DateTimeOffset, Value::String(s)) => {
            let ms = if v4 { parse_iso(s) } else { parse_v2_date(s).or_else(|| parse_iso(s)) };
            ms.map(|ms| json!(ms)).ok_or_else(invalid)
        }
        _ => Err(invalid()),
    }
}

/// Decodes the properties of a payload (navigation properties are returned apart).
fn decode_fields(set: &EntitySet, body: &Map<String, Value>, v4: bool) -> Result<Decoded, Reject> {
    let (mut fields, mut navs) = (Map::new(), Map::new());
    for (k, v) in body {
        if k == "__metadata" || k.starts_with("@odata.") {
            continue;
        }
        if set.nav(k).is_some() {
            navs.insert(k.clone(), v.clone());
            continue;
        }
        let Some(edm) = set.prop(k) else {
            return Err(bad(codes::BAD_PAYLOAD, format!("Property '{k}' is invalid"), k));
        };
        fields.insert(k.clone(), decode(k, v, edm, v4)?);
    }
    Ok((fields, navs))
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Reject> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad(codes::BAD_PAYLOAD, "The payload must be a JSON object".into(), "")),
        Err(e) => Err(bad(codes::BAD_PAYLOAD, format!("Malformed JSON payload: {e}"), "")),
    }
}

fn text(fields: &Map<String, Value>, name: &str) -> String {
    fields.get(name).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// The business rules of an entity in its final state.
fn validate(data: &Data, set: &EntitySet, fields: &Map<String, Value>) -> Result<(), Reject> {
    match set.name {
        "A_EnterpriseProject" | "A_EnterpriseProjectElement" => {
            let status = text(fields, "ProcessingStatus");
            if !status.is_empty() && !STATUSES.contains(&status.as_str()) {
                return Err(bad(
                    codes::STATUS,
                    format!("Processing status {status} is not defined"),
                    "ProcessingStatus",
                ));
            }
            let (start, end) = if set.name == "A_EnterpriseProject" {
                ("ProjectStartDate", "ProjectEndDate")
            } else {
                ("PlannedStartDate", "PlannedEndDate")
            };
            if let (Some(s), Some(e)) =
                (fields.get(start).and_then(Value::as_i64), fields.get(end).and_then(Value::as_i64))
                && e < s
            {
                return Err(bad(codes::DATES, "Finish date is before start date".into(), end));
            }
            Ok(())
        }
        "A_PurchaseRequisitionItem" => {
            let qty = text(fields, "RequestedQuantity").parse::<f64>().unwrap_or(0.0);
            if qty <= 0.0 {
                return Err(bad(
                    codes::QUANTITY,
                    "Enter a requested quantity greater than zero".into(),
                    "RequestedQuantity",
                ));
            }
            let material = text(fields, "Material");
            let plant = text(fields, "Plant");
            if !material.is_empty() && !MATERIALS.iter().any(|m| m.number == material && m.plant == plant) {
                return Err(bad(
                    codes::MATERIAL,
                    format!("Material {material} is not maintained in plant {plant}"),
                    "Material",
                ));
            }
            match text(fields, "AccountAssignmentCategory").as_str() {
                "K" => {
                    let cc = text(fields, "CostCenter");
                    if !data.rows("A_CostCenter").iter().any(|c| c.fields["CostCenter"] == json!(cc)) {
                        return Err(bad(
                            codes::ACCOUNT_ASSIGNMENT,
                            format!(
                                "Account assignment category K requires a valid cost center (got '{cc}')"
                            ),
                            "CostCenter",
                        ));
                    }
                }
                "P" => {
                    let wbs = text(fields, "WBSElement");
                    if !data
                        .rows("A_EnterpriseProjectElement")
                        .iter()
                        .any(|w| w.fields["ProjectElement"] == json!(wbs))
                    {
                        return Err(bad(
                            codes::ACCOUNT_ASSIGNMENT,
                            format!(
                                "Account assignment category P requires a valid WBS element (got '{wbs}')"
                            ),
                            "WBSElement",
                        ));
                    }
                }
                _ => {}
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn now_after(call: &Call, previous: i64) -> i64 {
    call.now_ms.max(previous + 1)
}

fn stamp(set: &EntitySet, e: &mut Entity, ms: i64) {
    e.changed_ms = ms;
    if let Some(f) = set.changed {
        e.fields.insert(f.into(), json!(ms));
    }
}

fn log(data: &mut Data, call: &Call, op: &str, set: &EntitySet, e: &Entity, fields: &Map<String, Value>) {
    let wire: Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), set.prop(k).map_or(v.clone(), |edm| wire_value(v, edm, true))))
        .collect();
    data.writes.push(json!({
        "op": op, "entity_set": set.name, "key": key_predicate(set, e, false), "fields": wire,
        "version": if call.v4 { 4 } else { 2 }, "at_ms": call.now_ms,
    }));
}

/// POST to an entity set: 201 with the created entity.
pub fn create(data: &mut Data, call: &Call, set: &'static EntitySet, req: &Inner<'_>) -> Answer {
    match try_create(data, call, set, req) {
        Ok(a) => a,
        Err(r) => reject(call, r),
    }
}

fn try_create(
    data: &mut Data,
    call: &Call,
    set: &'static EntitySet,
    req: &Inner<'_>,
) -> Result<Answer, Reject> {
    if !set.writable {
        return Err((
            405,
            codes::NOT_ALLOWED,
            format!("Method 'CREATE_ENTITY' not allowed for entity set '{}'", set.name),
            String::new(),
        ));
    }
    let body = parse_body(req.body)?;
    let (mut fields, navs) = decode_fields(set, &body, call.v4)?;
    let mut children: Vec<Map<String, Value>> = Vec::new();
    match set.name {
        "A_PurchaseRequisitionHeader" => {
            let items = match navs.get("to_PurchaseReqnItem") {
                Some(Value::Object(o)) => {
                    o.get("results").and_then(Value::as_array).cloned().unwrap_or_default()
                }
                Some(Value::Array(a)) => a.clone(),
                _ => Vec::new(),
            };
            if items.is_empty() {
                return Err(bad(
                    codes::NO_ITEMS,
                    "Purchase requisition has no items".into(),
                    "to_PurchaseReqnItem",
                ));
            }
            let pr = data.next_pr.to_string();
            let item_set = call
                .service
                .set("A_PurchaseRequisitionItem")
                .ok_or_else(|| bad(codes::NO_SEGMENT, "no item set".into(), ""))?;
            for (i, item) in items.iter().enumerate() {
                let Value::Object(item) = item else {
                    return Err(bad(
                        codes::BAD_PAYLOAD,
                        "Items must be objects".into(),
                        "to_PurchaseReqnItem",
                    ));
                };
                let (mut f, _) = decode_fields(item_set, item, call.v4)?;
                f.insert("PurchaseRequisition".into(), json!(pr));
                f.entry("PurchaseRequisitionItem").or_insert(json!(format!("{:05}", (i + 1) * 10)));
                f.entry("PurReqnReleaseStatus").or_insert(json!("01"));
                f.entry("PurReqnItemCurrency").or_insert(json!("CNY"));
                f.entry("PurReqnPriceQuantity").or_insert(json!("1.000"));
                validate(data, item_set, &f)?;
                children.push(f);
            }
            fields.insert("PurchaseRequisition".into(), json!(pr));
            fields.entry("PurchaseRequisitionType").or_insert(json!("NB"));
            fields.entry("SourceDetermination").or_insert(json!(false));
            fields.insert("CreatedByUser".into(), json!(crate::USER));
            data.next_pr += 1;
        }
        "A_PurchaseRequisitionItem" => {
            let pr = text(&fields, "PurchaseRequisition");
            if !data
                .rows("A_PurchaseRequisitionHeader")
                .iter()
                .any(|h| h.fields["PurchaseRequisition"] == json!(pr))
            {
                return Err(bad(
                    codes::NOT_FOUND,
                    format!("Purchase requisition {pr} does not exist"),
                    "PurchaseRequisition",
                ));
            }
            let n =
                data.rows(set.name).iter().filter(|i| i.fields["PurchaseRequisition"] == json!(pr)).count();
            fields.entry("PurchaseRequisitionItem").or_insert(json!(format!("{:05}", (n + 1) * 10)));
        }
        "A_EnterpriseProject" | "A_EnterpriseProjectElement" => {
            let (uuid_field, id_field, kind) = if set.name == "A_EnterpriseProject" {
                ("ProjectUUID", "Project", 1)
            } else {
                ("ProjectElementUUID", "ProjectElement", 2)
            };
            let id = text(&fields, id_field);
            if id.is_empty() {
                return Err(bad(codes::BAD_PAYLOAD, format!("Property '{id_field}' is mandatory"), id_field));
            }
            if data.rows(set.name).iter().any(|e| e.fields[id_field] == json!(id)) {
                return Err(bad(codes::EXISTS, format!("{id} already exists"), id_field));
            }
            if set.name == "A_EnterpriseProjectElement" {
                let project = fields.get("ProjectUUID").cloned().unwrap_or(Value::Null);
                if !data.rows("A_EnterpriseProject").iter().any(|p| p.fields["ProjectUUID"] == project) {
                    return Err(bad(
                        codes::NOT_FOUND,
                        "Enterprise project does not exist".into(),
                        "ProjectUUID",
                    ));
                }
            }
            if !fields.contains_key(uuid_field) {
                fields.insert(uuid_field.into(), json!(data.new_guid(kind)));
            }
            fields.entry("ProcessingStatus").or_insert(json!("00"));
        }
        _ => {}
    }
    for k in set.keys {
        if fields.get(*k).is_none_or(Value::is_null) {
            return Err(bad(codes::BAD_PAYLOAD, format!("Key property '{k}' is mandatory"), k));
        }
    }
    validate(data, set, &fields)?;
    let mut entity = Entity { fields, changed_ms: 0 };
    let key = entity.key(set);
    if data.find(set, &key).is_some() {
        return Err(bad(
            codes::DUPLICATE,
            format!("An entity with key {} exists already", key_predicate(set, &entity, false)),
            "",
        ));
    }
    let ms = now_after(call, 0);
    stamp(set, &mut entity, ms);
    let mut created_children = Vec::new();
    if let Some(item_set) = call.service.set("A_PurchaseRequisitionItem").filter(|_| !children.is_empty()) {
        for f in children {
            let mut child = Entity { fields: f, changed_ms: 0 };
            stamp(item_set, &mut child, ms);
            created_children.push(entity_json(
                item_set,
                &child,
                &Shape { v4: call.v4, select: &[], root: &call.root, namespace: call.namespace() },
                &[],
            ));
            let fields = child.fields.clone();
            log(data, call, "create", item_set, &child, &fields);
            data.sets.entry(item_set.name).or_default().push(child);
        }
    }
    let fields = entity.fields.clone();
    log(data, call, "create", set, &entity, &fields);
    let shape = Shape { v4: call.v4, select: &[], root: &call.root, namespace: call.namespace() };
    let expanded: Vec<(&str, Vec<Value>)> = if created_children.is_empty() {
        Vec::new()
    } else {
        vec![("to_PurchaseReqnItem", created_children)]
    };
    let body = entity_json(set, &entity, &shape, &expanded);
    let location = format!("{}/{}{}", call.root, set.name, key_predicate(set, &entity, call.v4));
    let etag = call.etag(&entity);
    data.sets.entry(set.name).or_default().push(entity);
    let body = if call.v4 { body } else { json!({"d": body}) };
    Ok(Answer::json(201, &body).with("location", location).with("etag", etag))
}

/// Checks `If-Match` against the entity: 428 when missing, 412 when stale.
fn precondition(req: &Inner<'_>, set: &EntitySet, e: &Entity) -> Result<(), Reject> {
    match req.header("if-match") {
        None => Err((
            428,
            codes::PRECONDITION_REQUIRED,
            format!("Precondition required: an If-Match header is needed to change {}", set.type_name()),
            String::new(),
        )),
        Some(tag) if !etag_matches(e, tag) => Err((
            412,
            codes::PRECONDITION_FAILED,
            format!("Precondition failed: {} was changed by another user since it was read", set.type_name()),
            String::new(),
        )),
        Some(_) => Ok(()),
    }
}

/// PATCH / MERGE / PUT of one entity: 204 with the new ETag.
pub fn update(
    data: &mut Data,
    call: &Call,
    set: &'static EntitySet,
    key: &[Value],
    req: &Inner<'_>,
) -> Answer {
    match try_update(data, call, set, key, req) {
        Ok(a) => a,
        Err(r) => reject(call, r),
    }
}

fn try_update(
    data: &mut Data,
    call: &Call,
    set: &'static EntitySet,
    key: &[Value],
    req: &Inner<'_>,
) -> Result<Answer, Reject> {
    if !set.writable {
        return Err((
            405,
            codes::NOT_ALLOWED,
            format!("Method 'UPDATE_ENTITY' not allowed for entity set '{}'", set.name),
            String::new(),
        ));
    }
    let Some(at) = data.position(set, key) else {
        return Ok(not_found(call, set));
    };
    let current = data.rows(set.name)[at].clone();
    precondition(req, set, &current)?;
    let body = parse_body(req.body)?;
    let (fields, navs) = decode_fields(set, &body, call.v4)?;
    if let Some(nav) = navs.keys().next() {
        return Err(bad(
            codes::BAD_PAYLOAD,
            format!("Navigation property '{nav}' cannot be changed with an update"),
            nav,
        ));
    }
    let mut next = current.clone();
    if req.method == "PUT" {
        for (name, _) in set.props {
            if !set.keys.contains(name) && Some(*name) != set.changed {
                next.fields.insert((*name).into(), Value::Null);
            }
        }
    }
    for (k, v) in &fields {
        if set.keys.contains(&k.as_str()) {
            if current.fields.get(k) != Some(v) {
                return Err(bad(codes::BAD_PAYLOAD, format!("Key property '{k}' cannot be changed"), k));
            }
            continue;
        }
        if Some(k.as_str()) == set.changed {
            continue;
        }
        next.fields.insert(k.clone(), v.clone());
    }
    validate(data, set, &next.fields)?;
    stamp(set, &mut next, now_after(call, current.changed_ms));
    log(data, call, "update", set, &next, &fields);
    let etag = call.etag(&next);
    if let Some(rows) = data.sets.get_mut(set.name) {
        rows[at] = next;
    }
    Ok(Answer::empty(204).with("etag", etag))
}

/// DELETE of one entity (a requisition header takes its items along): 204.
pub fn delete(
    data: &mut Data,
    call: &Call,
    set: &'static EntitySet,
    key: &[Value],
    req: &Inner<'_>,
) -> Answer {
    if !set.writable {
        return reject(
            call,
            (
                405,
                codes::NOT_ALLOWED,
                format!("Method 'DELETE_ENTITY' not allowed for entity set '{}'", set.name),
                String::new(),
            ),
        );
    }
    let Some(at) = data.position(set, key) else {
        return not_found(call, set);
    };
    let current = data.rows(set.name)[at].clone();
    if let Err(r) = precondition(req, set, &current) {
        return reject(call, r);
    }
    if let Some(rows) = data.sets.get_mut(set.name) {
        rows.remove(at);
    }
    for nav in set.navs {
        let value = current.fields.get(nav.from).cloned();
        if let Some(rows) = data.sets.get_mut(nav.target) {
            rows.retain(|r| r.fields.get(nav.to) != value.as_ref());
        }
    }
    log(data, call, "delete", set, &current, &Map::new());
    Answer::empty(204)
}
