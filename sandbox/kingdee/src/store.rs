//! What the fake holds: rows per form, and the operations on them (Save, Submit, Audit,
//! Delete, View, ExecuteBillQuery). Answers are K/3's `ResponseStatus` pieces; the HTTP layer
//! wraps them.

use std::collections::{BTreeMap, HashMap};

use qiao_sandbox_kit::seed;
use serde_json::{Map, Value, json};

use crate::body::get_ci;
use crate::forms::{self, BillDef, EntryDef, FormDef, RefField};
use crate::query::{BillQuery, order_values};

/// One error of a `ResponseStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    /// The field at fault, if one.
    pub field: Option<String>,
    /// The message.
    pub message: String,
    /// The position of the model / number in the request.
    pub index: usize,
}

/// A successful item: internal id, bill number, position.
#[derive(Debug, Clone, PartialEq)]
pub struct Success {
    /// FID.
    pub id: i64,
    /// FBillNo.
    pub number: String,
    /// Position in the request.
    pub index: usize,
}

/// The outcome of an operation over several items.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Items that succeeded.
    pub successes: Vec<Success>,
    /// Items that failed.
    pub errors: Vec<ItemError>,
    /// The `MsgCode` of the failure (11 validation, 10 not found, 12 not allowed), when any.
    pub msg_code: u32,
}

/// Which status change an operation makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusOp {
    /// A/D → B.
    Submit,
    /// B → C.
    Audit,
    /// Removes A/D bills.
    Delete,
}

/// Rows per form and the counters that number them.
#[derive(Debug)]
pub struct Store {
    rows: BTreeMap<&'static str, Vec<Value>>,
    next_id: i64,
    next_entry_id: i64,
    next_number: HashMap<&'static str, u32>,
    /// Every bill created through Save/BatchSave, in order: `{"FormId", "Id", "Number"}`.
    pub created: Vec<Value>,
}

impl Store {
    /// The seeded store.
    pub fn seeded() -> Store {
        let mut store = Store {
            rows: BTreeMap::new(),
            next_id: 100_001,
            next_entry_id: 200_001,
            next_number: HashMap::new(),
            created: Vec::new(),
        };
        let mut base_id = 10_000;
        let mut next = || {
            base_id += 1;
            base_id
        };
        for (form, rows) in forms::seed_rows(&mut next) {
            store.rows.insert(form, rows);
        }
        store.seed_bills();
        store
    }

    fn seed_bills(&mut self) {
        for i in 0..forms::SEEDED_LABOR_COST {
            let person = &seed::PEOPLE[i % seed::PEOPLE.len()];
            let project = &seed::PROJECTS[i % seed::PROJECTS.len()];
            let hours = 2 + (i % 7);
            let rate: f64 = person.hourly_rate.parse().unwrap_or(150.0);
            let modified = forms::seeded_modified(i);
            let model = json!({
                "FDate": format!("{}T00:00:00", &modified[..10]),
                "FCostCenterId": {"FNumber": project.kingdee_cost_center},
                "FEmployeeId": {"FNumber": person.employee_no},
                "FHours": hours,
                "FAmount": hours as f64 * rate,
                "FProjectName": project.name,
                "FNote": format!("{} {}工时", project.name, person.name),
            });
            self.seed_bill(forms::LABOR_COST, &model, forms::seeded_status(i), &modified);
        }
        for i in 0..forms::SEEDED_REQUISITIONS {
            let person = &seed::PEOPLE[i % seed::PEOPLE.len()];
            let entries: Vec<Value> = (0..1 + i % 3)
                .map(|j| {
                    let m = &seed::MATERIALS[(i + j) % seed::MATERIALS.len()];
                    json!({"FMaterialId": {"FNumber": m.number}, "FReqQty": 1 + (i + j) % 5, "FEntryNote": m.name})
                })
                .collect();
            let modified = forms::seeded_modified(i * 5);
            let model = json!({
                "FApplicationDate": format!("{}T00:00:00", &modified[..10]),
                "FApplicantId": {"FNumber": person.employee_no},
                "FNote": format!("{}申请采购", person.name),
                "FEntity": entries,
            });
            self.seed_bill(forms::REQUISITION, &model, forms::seeded_status(i), &modified);
        }
    }

    fn seed_bill(&mut self, form_id: &str, model: &Value, status: &str, modified: &str) {
        let Some(form) = forms::form(form_id) else { return };
        let Ok((id, _)) = self.save(form, model, modified) else { return };
        self.created.pop();
        if let Some(row) =
            self.rows.get_mut(form.id).and_then(|rows| rows.iter_mut().find(|r| r["FID"] == id))
        {
            row["FDocumentStatus"] = json!(status);
            if status == "C" {
                row["FApproveDate"] = json!(modified);
            }
        }
    }

    /// The rows of `form`.
    pub fn rows(&self, form: &str) -> &[Value] {
        self.rows.get(form).map_or(&[], Vec::as_slice)
    }

    /// Every form's rows.
    pub fn all(&self) -> &BTreeMap<&'static str, Vec<Value>> {
        &self.rows
    }

    fn number(&mut self, form: &FormDef, bill: &BillDef) -> String {
        let rows = self.rows.get(form.id).map_or(0, Vec::len);
        let n = self.next_number.entry(form.id).or_insert(0);
        *n = (*n).max(rows as u32) + 1;
        format!("{}{:06}", bill.prefix, n)
    }

    /// Validates `model` and builds the row to store (no id, number or status yet).
    fn build(&mut self, bill: &BillDef, model: &Value, now: &str) -> Result<Value, Vec<(String, String)>> {
        let Some(obj) = model.as_object() else {
            return Err(vec![(String::new(), "Model不能为空".into())]);
        };
        let mut errors = Vec::new();
        let mut row: Map<String, Value> = obj.clone();
        self.check_fields(&mut row, bill.required, bill.refs, bill.positive, &mut errors);
        if let Some(entry) = bill.entry {
            let mut entries = Vec::new();
            let given = get_ci(model, entry.key).and_then(Value::as_array).cloned().unwrap_or_default();
            for (seq, e) in given.iter().enumerate() {
                let Some(e) = e.as_object() else {
                    errors.push((entry.key.to_string(), format!("第{}行分录格式错误", seq + 1)));
                    continue;
                };
                let mut e = e.clone();
                self.check_entry(&entry, &mut e, seq, &mut errors);
                e.insert("FSeq".into(), json!(seq + 1));
                entries.push(Value::Object(e));
            }
            if entries.is_empty() {
                errors.push((entry.key.to_string(), "单据分录不能为空".into()));
            }
            row.retain(|k, _| !k.eq_ignore_ascii_case(entry.key));
            row.insert(entry.key.into(), Value::Array(entries));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        row.insert("FModifyDate".into(), json!(now));
        Ok(Value::Object(row))
    }

    fn check_entry(
        &mut self,
        entry: &EntryDef,
        e: &mut Map<String, Value>,
        seq: usize,
        errors: &mut Vec<(String, String)>,
    ) {
        let mut found = Vec::new();
        self.check_fields(e, entry.required, entry.refs, entry.positive, &mut found);
        for (field, message) in found {
            errors.push((format!("{}.{field}", entry.key), format!("第{}行分录：{message}", seq + 1)));
        }
        self.next_entry_id += 1;
        e.insert("FEntryID".into(), json!(self.next_entry_id - 1));
    }

    fn check_fields(
        &self,
        row: &mut Map<String, Value>,
        required: &[(&str, &str)],
        refs: &[RefField],
        positive: &[(&str, &str)],
        errors: &mut Vec<(String, String)>,
    ) {
        let value = |row: &Map<String, Value>, key: &str| {
            row.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.clone())
        };
        for (field, label) in required {
            let missing = match value(row, field) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.trim().is_empty(),
                Some(Value::Object(o)) => o.values().all(|v| v.is_null() || v.as_str() == Some("")),
                _ => false,
            };
            if missing {
                errors.push(((*field).to_string(), format!("字段“{label}”是必填项")));
            }
        }
        for r in refs {
            let Some(given) = value(row, r.field) else { continue };
            if given.is_null() {
                continue;
            }
            let number = get_ci(&given, "FNumber").and_then(Value::as_str).map(str::to_string);
            let by_id = get_ci(&given, "FID").or_else(|| get_ci(&given, "Id")).and_then(Value::as_i64);
            let found = self.rows(r.form).iter().find(|b| match (&number, by_id) {
                (Some(n), _) => b["FNumber"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(n)),
                (None, Some(id)) => b["FID"].as_i64() == Some(id),
                _ => false,
            });
            match found {
                Some(base) => {
                    row.retain(|k, _| !k.eq_ignore_ascii_case(r.field));
                    row.insert(r.field.into(), forms::reference(base));
                }
                None => {
                    let shown = number.unwrap_or_else(|| given.to_string());
                    errors.push((
                        r.field.to_string(),
                        format!("字段“{}”({}.FNumber)的值“{shown}”在基础资料中不存在", r.label, r.field),
                    ));
                }
            }
        }
        for (field, label) in positive {
            let Some(v) = value(row, field) else { continue };
            let n = v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
            match n {
                Some(n) if n > 0.0 => {}
                _ => errors.push(((*field).to_string(), format!("字段“{label}”必须是大于0的数值"))),
            }
        }
    }

    /// Saves one model (create, or update when it carries an existing `FID`).
    pub fn save(
        &mut self,
        form: &FormDef,
        model: &Value,
        now: &str,
    ) -> Result<(i64, String), Vec<(String, String)>> {
        let Some(bill) = form.bill else {
            return Err(vec![(String::new(), format!("“{}”不允许通过此接口保存", form.name))]);
        };
        let fid =
            get_ci(model, "FID").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())));
        if let Some(fid) = fid.filter(|id| *id > 0) {
            return self.update(form, &bill, fid, model, now);
        }
        let given_no =
            get_ci(model, "FBillNo").and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        if let Some(no) = given_no
            && self.rows(form.id).iter().any(|b| b["FBillNo"] == no)
        {
            return Err(vec![("FBillNo".into(), format!("单据编号“{no}”已存在，不能重复"))]);
        }
        let mut row = self.build(&bill, model, now)?;
        let number = match given_no {
            Some(n) => n.to_string(),
            None => self.number(form, &bill),
        };
        let id = self.next_id;
        self.next_id += 1;
        if let Some(obj) = row.as_object_mut() {
            obj.retain(|k, _| !k.eq_ignore_ascii_case("FID") && !k.eq_ignore_ascii_case("FBillNo"));
            obj.insert("FID".into(), json!(id));
            obj.insert("FBillNo".into(), json!(number));
            obj.insert("FDocumentStatus".into(), json!("A"));
            obj.insert("FCreateDate".into(), json!(now));
        }
        self.rows.entry(form.id).or_default().push(row);
        self.created.push(json!({"FormId": form.id, "Id": id, "Number": number}));
        Ok((id, number))
    }

    fn update(
        &mut self,
        form: &FormDef,
        bill: &BillDef,
        fid: i64,
        model: &Value,
        now: &str,
    ) -> Result<(i64, String), Vec<(String, String)>> {
        let Some(pos) = self.rows(form.id).iter().position(|b| b["FID"].as_i64() == Some(fid)) else {
            return Err(vec![("FID".into(), format!("内码为{fid}的单据不存在"))]);
        };
        let existing = self.rows(form.id)[pos].clone();
        let status = existing["FDocumentStatus"].as_str().unwrap_or("A").to_string();
        if !matches!(status.as_str(), "A" | "D" | "Z") {
            return Err(vec![(
                String::new(),
                format!("单据“{}”当前状态不允许修改", existing["FBillNo"].as_str().unwrap_or("")),
            )]);
        }
        let mut merged = existing.clone();
        if let (Some(m), Some(src)) = (merged.as_object_mut(), model.as_object()) {
            for (k, v) in src {
                m.retain(|ek, _| !ek.eq_ignore_ascii_case(k));
                m.insert(k.clone(), v.clone());
            }
        }
        let mut row = self.build(bill, &merged, now)?;
        row["FID"] = json!(fid);
        row["FBillNo"] = existing["FBillNo"].clone();
        row["FDocumentStatus"] = json!(status);
        row["FCreateDate"] = existing["FCreateDate"].clone();
        let number = existing["FBillNo"].as_str().unwrap_or_default().to_string();
        if let Some(rows) = self.rows.get_mut(form.id) {
            rows[pos] = row;
        }
        Ok((fid, number))
    }

    /// Resolves the `Ids` (comma string or array, taking priority) or `Numbers` of an
    /// operation's data into (position, row index or the text that was not found).
    fn targets(&self, form: &FormDef, data: &Value) -> Vec<Result<usize, String>> {
        let list = |v: Option<&Value>| -> Vec<String> {
            match v {
                Some(Value::String(s)) => {
                    s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
                }
                Some(Value::Array(a)) => {
                    a.iter().map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string)).collect()
                }
                Some(Value::Number(n)) => vec![n.to_string()],
                _ => Vec::new(),
            }
        };
        let ids = list(get_ci(data, "Ids"));
        let rows = self.rows(form.id);
        if !ids.is_empty() {
            return ids
                .into_iter()
                .map(|id| {
                    rows.iter().position(|b| b["FID"].as_i64().is_some_and(|v| v.to_string() == id)).ok_or(id)
                })
                .collect();
        }
        list(get_ci(data, "Numbers"))
            .into_iter()
            .map(|no| rows.iter().position(|b| b["FBillNo"].as_str() == Some(no.as_str())).ok_or(no))
            .collect()
    }

    /// Submit, Audit or Delete by `Ids`/`Numbers`; each item succeeds or fails on its own.
    pub fn change_status(&mut self, form: &FormDef, op: StatusOp, data: &Value, now: &str) -> Outcome {
        let mut out = Outcome::default();
        let targets = self.targets(form, data);
        if targets.is_empty() {
            out.errors.push(ItemError {
                field: None,
                message: "请传入单据编码或内码(Numbers/Ids)".into(),
                index: 0,
            });
            out.msg_code = 8;
            return out;
        }
        let mut delete = Vec::new();
        for (index, target) in targets.into_iter().enumerate() {
            let pos = match target {
                Ok(pos) => pos,
                Err(key) => {
                    out.errors.push(ItemError {
                        field: None, message: format!("单据“{key}”不存在"), index
                    });
                    out.msg_code = 10;
                    continue;
                }
            };
            let Some(row) = self.rows.get_mut(form.id).and_then(|r| r.get_mut(pos)) else { continue };
            let number = row["FBillNo"].as_str().unwrap_or_default().to_string();
            let status = row["FDocumentStatus"].as_str().unwrap_or("A").to_string();
            let next = match (op, status.as_str()) {
                (StatusOp::Submit, "A" | "D") => Some("B"),
                (StatusOp::Audit, "B") => Some("C"),
                (StatusOp::Delete, "A" | "D" | "Z") => None,
                _ => {
                    let why = match (op, status.as_str()) {
                        (StatusOp::Submit, "B") => "单据已提交，不能重复提交",
                        (StatusOp::Submit, _) => "单据已审核，不能提交",
                        (StatusOp::Audit, "C") => "单据已审核，不能重复审核",
                        (StatusOp::Audit, _) => "单据未提交，不能审核",
                        (StatusOp::Delete, _) => "单据已提交或已审核，不允许删除",
                    };
                    out.errors.push(ItemError {
                        field: None,
                        message: format!("单据“{number}”：{why}"),
                        index,
                    });
                    out.msg_code = 11;
                    continue;
                }
            };
            let id = row["FID"].as_i64().unwrap_or_default();
            match next {
                Some(s) => {
                    row["FDocumentStatus"] = json!(s);
                    row["FModifyDate"] = json!(now);
                    if s == "C" {
                        row["FApproveDate"] = json!(now);
                    }
                }
                None => delete.push(pos),
            }
            out.successes.push(Success { id, number, index });
        }
        if let Some(rows) = self.rows.get_mut(form.id) {
            delete.sort_unstable();
            for pos in delete.into_iter().rev() {
                rows.remove(pos);
            }
        }
        out
    }

    /// `View` by `Id` or `Number`.
    pub fn view(&self, form: &FormDef, data: &Value) -> Option<Value> {
        let id = get_ci(data, "Id")
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .filter(|s| !s.is_empty() && s != "0");
        let number = get_ci(data, "Number").and_then(Value::as_str).filter(|s| !s.is_empty());
        let row = self.rows(form.id).iter().find(|b| match (&id, number) {
            (Some(id), _) => &b["FID"].to_string() == id,
            (None, Some(no)) => b["FBillNo"].as_str() == Some(no) || b["FNumber"].as_str() == Some(no),
            _ => false,
        })?;
        let mut view = row.clone();
        view["Id"] = row["FID"].clone();
        view["Number"] =
            if row.get("FBillNo").is_some() { row["FBillNo"].clone() } else { row["FNumber"].clone() };
        view["DocumentStatus"] = row["FDocumentStatus"].clone();
        Some(view)
    }

    /// `ExecuteBillQuery`: arrays of values in `FieldKeys` order.
    pub fn query(&self, form: &FormDef, q: &BillQuery) -> Vec<Vec<Value>> {
        let entry = form.bill.and_then(|b| b.entry);
        let expand = entry.is_some_and(|e| q.touched().iter().any(|k| is_entry_key(&e, k)));
        let mut rows: Vec<(&Value, Option<&Value>)> = Vec::new();
        for bill in self.rows(form.id) {
            let entries = match (expand, entry) {
                (true, Some(e)) => get_ci(bill, e.key)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().collect::<Vec<_>>())
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if entries.is_empty() {
                rows.push((bill, None));
            } else {
                rows.extend(entries.into_iter().map(|e| (bill, Some(e))));
            }
        }
        let cell = |row: &(&Value, Option<&Value>), key: &str| lookup(entry.as_ref(), row.0, row.1, key);
        if let Some(filter) = &q.filter {
            rows.retain(|row| filter.eval(&|k| cell(row, k)));
        }
        if !q.order.is_empty() {
            rows.sort_by(|a, b| {
                for (key, desc) in &q.order {
                    let ord = order_values(&cell(a, key), &cell(b, key));
                    let ord = if *desc { ord.reverse() } else { ord };
                    if ord != std::cmp::Ordering::Equal {
                        return ord;
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
        let capped = if q.top > 0 { rows.len().min(q.top as usize) } else { rows.len() };
        let start = (q.start_row as usize).min(capped);
        let end = if q.limit > 0 { (start + q.limit as usize).min(capped) } else { capped };
        rows[start..end].iter().map(|row| q.fields.iter().map(|k| cell(row, k)).collect()).collect()
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

fn is_entry_key(entry: &EntryDef, key: &str) -> bool {
    if strip_prefix_ci(key, &format!("{}_", entry.key)).is_some() {
        return true;
    }
    let base = key.split('.').next().unwrap_or(key);
    entry.fields.iter().any(|f| f.eq_ignore_ascii_case(base))
}

/// One cell: `Field`, `Field.Sub` (base-data sub-field) or `<Entry>_Field`; a bare base-data
/// field is its internal id.
fn lookup(entry_def: Option<&EntryDef>, bill: &Value, entry: Option<&Value>, key: &str) -> Value {
    let (in_entry, key) = match entry_def.and_then(|e| strip_prefix_ci(key, &format!("{}_", e.key))) {
        Some(rest) => (true, rest),
        None => (false, key),
    };
    let (base, sub) = match key.split_once('.') {
        Some((b, s)) => (b, Some(s)),
        None => (key, None),
    };
    let source =
        if in_entry || (get_ci(bill, base).is_none() && entry_def.is_some_and(|e| is_entry_key(e, base))) {
            entry
        } else {
            Some(bill)
        };
    let Some(v) = source.and_then(|s| get_ci(s, base)) else { return Value::Null };
    match (sub, v) {
        (Some(sub), v) => get_ci(v, sub).cloned().unwrap_or(Value::Null),
        (None, Value::Object(o)) => o.get("Id").cloned().unwrap_or(Value::Null),
        (None, v) => v.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn q(data: Value) -> BillQuery {
        BillQuery::from_data(&data).unwrap()
    }

    #[test]
    fn seeded_forms_and_paging() {
        let s = Store::seeded();
        assert_eq!(s.rows(forms::LABOR_COST).len(), forms::SEEDED_LABOR_COST);
        assert_eq!(s.rows(forms::COST_CENTER).len(), seed::PROJECTS.len());
        let form = forms::form(forms::LABOR_COST).unwrap();
        let mut all = Vec::new();
        let mut start = 0;
        loop {
            let page = s.query(
                form,
                &q(json!({"FieldKeys": "FID,FBillNo,FCostCenterId.FNumber,FEmployeeId.FName",
                "OrderString": "FID ASC", "StartRow": start, "Limit": 50})),
            );
            let n = page.len();
            all.extend(page);
            if n < 50 {
                break;
            }
            start += 50;
        }
        assert_eq!(all.len(), forms::SEEDED_LABOR_COST);
        assert_eq!(all[0][1], "RGCB000001");
        assert_eq!(all[0][2], "CB0101");
        assert_eq!(all[0][3], "张伟");
        let statuses =
            s.query(form, &q(json!({"FieldKeys": "FDocumentStatus", "FilterString": "FDocumentStatus='A'"})));
        assert_eq!(statuses.len(), forms::SEEDED_LABOR_COST / 5);
    }

    #[test]
    fn entry_fields_expand_rows() {
        let s = Store::seeded();
        let form = forms::form(forms::REQUISITION).unwrap();
        let rows = s.query(
            form,
            &q(json!({"FieldKeys": "FID,FBillNo,FMaterialId.FNumber,FEntity_FEntryID",
            "OrderString": "FID ASC,FEntity_FEntryID ASC"})),
        );
        assert_eq!(rows.len(), (0..forms::SEEDED_REQUISITIONS).map(|i| 1 + i % 3).sum::<usize>());
        assert_eq!(rows[0][2], "M-1001");
        assert!(rows[0][3].as_i64().unwrap() >= 200_001);
        let header_only = s.query(form, &q(json!({"FieldKeys": "FID"})));
        assert_eq!(header_only.len(), forms::SEEDED_REQUISITIONS);
    }

    #[test]
    fn save_validates_and_numbers() {
        let mut s = Store::seeded();
        let form = forms::form(forms::LABOR_COST).unwrap();
        let good = json!({"FDate": "2025-05-01", "FCostCenterId": {"FNumber": "CB0102"}, "FEmployeeId": {"FNumber": "E0002"}, "FHours": 8});
        let (id, no) = s.save(form, &good, "2025-05-01T10:00:00").unwrap();
        assert_eq!(no, format!("RGCB{:06}", forms::SEEDED_LABOR_COST + 1));
        assert!(id > 100_000);
        let bad = json!({"FDate": "2025-05-01", "FCostCenterId": {"FNumber": "CB9999"}, "FHours": 0});
        let errors = s.save(form, &bad, "now").unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["FEmployeeId", "FCostCenterId", "FHours"]);
        assert!(errors[1].1.contains("CB9999"), "{errors:?}");
        // Saving twice makes two bills: K/3 has no idempotency.
        s.save(form, &good, "2025-05-01T10:00:01").unwrap();
        assert_eq!(s.created.len(), 2);
    }

    #[test]
    fn status_changes_follow_the_workflow() {
        let mut s = Store::seeded();
        let form = forms::form(forms::LABOR_COST).unwrap();
        let good = json!({"FDate": "2025-05-01", "FCostCenterId": {"FNumber": "CB0102"}, "FEmployeeId": {"FNumber": "E0002"}, "FHours": 8});
        let (id, no) = s.save(form, &good, "t").unwrap();
        let audit = s.change_status(form, StatusOp::Audit, &json!({"Numbers": [no]}), "t");
        assert_eq!((audit.successes.len(), audit.msg_code), (0, 11));
        let submit = s.change_status(form, StatusOp::Submit, &json!({"Ids": id.to_string()}), "t");
        assert_eq!(submit.successes.len(), 1);
        let audit = s.change_status(form, StatusOp::Audit, &json!({"Numbers": [no, "NOPE"]}), "t");
        assert_eq!(audit.successes.len(), 1);
        assert_eq!(audit.errors[0].index, 1);
        let del = s.change_status(form, StatusOp::Delete, &json!({"Ids": id.to_string()}), "t");
        assert_eq!(del.msg_code, 11);
        assert_eq!(s.view(form, &json!({"Number": no})).unwrap()["DocumentStatus"], "C");
    }
}
