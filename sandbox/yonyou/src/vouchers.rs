//! General-ledger vouchers (凭证): validation of the `addVoucher` body, the ledger the fake
//! keeps, and `resubmitCheckKey` deduplication.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::data::{ACCBOOK_CODE, DEPARTMENTS, SUBJECTS, id};
use crate::envelope::code;

/// Longest `resubmitCheckKey` the gateway accepts.
pub const MAX_CHECK_KEY_LEN: usize = 32;

/// Why a voucher was not saved: the envelope code and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// `999` for validation failures, `310504` for a reused key.
    pub code: &'static str,
    /// Yonyou's Chinese message.
    pub message: String,
}

impl Rejection {
    fn invalid(message: impl Into<String>) -> Self {
        Rejection { code: code::LOGIC_ERROR, message: message.into() }
    }
}

/// What a save did.
#[derive(Debug, Clone, PartialEq)]
pub enum Saved {
    /// A new voucher (the stored record).
    New(Value),
    /// The `resubmitCheckKey` was seen with the same content: the earlier voucher, unchanged.
    Replayed(Value),
}

impl Saved {
    /// The voucher.
    pub fn voucher(&self) -> &Value {
        match self {
            Saved::New(v) | Saved::Replayed(v) => v,
        }
    }
}

/// The ledger.
#[derive(Debug, Default)]
pub struct Ledger {
    vouchers: Vec<Value>,
    /// resubmitCheckKey → (content fingerprint, index in `vouchers`).
    keys: HashMap<String, (String, usize)>,
    replayed: usize,
}

/// A number or a numeric string.
fn amount(v: &Value) -> Option<f64> {
    v.as_f64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Checks a voucher body against the account book, subjects, departments and `projects`.
pub fn validate(doc: &Value, projects: &[String]) -> Result<(), Rejection> {
    if !doc.is_object() {
        return Err(Rejection::invalid("凭证数据格式错误"));
    }
    match doc["accbookCode"].as_str() {
        None | Some("") => return Err(Rejection::invalid("账簿编码accbookCode不能为空")),
        Some(book) if book != ACCBOOK_CODE => {
            return Err(Rejection::invalid(format!("账簿编码[{book}]不存在")));
        }
        Some(_) => {}
    }
    let bodies = doc["bodies"]
        .as_array()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Rejection::invalid("凭证分录bodies不能为空"))?;
    let (mut debit, mut credit) = (0.0, 0.0);
    for (i, body) in bodies.iter().enumerate() {
        let line = i + 1;
        let subject = body["accsubjectCode"].as_str().unwrap_or_default();
        if subject.is_empty() {
            return Err(Rejection::invalid(format!("第{line}行分录科目编码不能为空")));
        }
        if !SUBJECTS.iter().any(|s| s.0 == subject) {
            return Err(Rejection::invalid(format!("第{line}行分录科目编码[{subject}]不存在")));
        }
        let (d, c) = (amount(&body["debitOriginal"]), amount(&body["creditOriginal"]));
        if d.is_none() && c.is_none() {
            return Err(Rejection::invalid(format!("第{line}行分录金额不能为空")));
        }
        debit += d.unwrap_or(0.0);
        credit += c.unwrap_or(0.0);
        for aux in body["clientAuxiliaryList"].as_array().into_iter().flatten() {
            let value = aux["valueCode"].as_str().unwrap_or_default();
            match aux["filedCode"].as_str().unwrap_or_default() {
                "dept" if !DEPARTMENTS.iter().any(|d| d.0 == value) => {
                    return Err(Rejection::invalid(format!("第{line}行辅助核算部门编码[{value}]不存在")));
                }
                "project" if !projects.iter().any(|p| p == value) => {
                    return Err(Rejection::invalid(format!("第{line}行辅助核算项目编码[{value}]不存在")));
                }
                _ => {}
            }
        }
    }
    if (debit - credit).abs() > 0.005 {
        return Err(Rejection::invalid(format!("借贷不平衡：借方{debit:.2}，贷方{credit:.2}")));
    }
    Ok(())
}

impl Ledger {
    /// Saves a validated voucher made at `pubts`, honouring its `resubmitCheckKey`.
    pub fn save(&mut self, doc: &Value, pubts: &str) -> Result<Saved, Rejection> {
        let key = doc["resubmitCheckKey"].as_str().unwrap_or_default().to_string();
        if key.chars().count() > MAX_CHECK_KEY_LEN {
            return Err(Rejection::invalid(format!("resubmitCheckKey长度不能超过{MAX_CHECK_KEY_LEN}位")));
        }
        let mut content = doc.clone();
        if let Some(o) = content.as_object_mut() {
            o.remove("resubmitCheckKey");
        }
        let fingerprint = content.to_string();
        if !key.is_empty()
            && let Some((seen, at)) = self.keys.get(&key)
        {
            if *seen != fingerprint {
                return Err(Rejection {
                    code: code::ALREADY_EXISTS,
                    message: format!("单据已存在：resubmitCheckKey[{key}]已用于另一张凭证"),
                });
            }
            self.replayed += 1;
            return Ok(Saved::Replayed(self.vouchers[*at].clone()));
        }
        let n = self.vouchers.len() as u64 + 1;
        let debit: f64 = content["bodies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|b| amount(&b["debitOriginal"]))
            .sum();
        let mut voucher = json!({
            "voucherId": id(7, n).to_string(),
            "billCode": format!("记-{n:04}"),
            "period": pubts.get(..7).unwrap_or_default(),
            "totalDebit": (debit * 100.0).round() / 100.0,
            "pubts": pubts,
        });
        if let (Some(v), Some(c)) = (voucher.as_object_mut(), content.as_object()) {
            for (k, val) in c {
                v.entry(k.clone()).or_insert(val.clone());
            }
            if !key.is_empty() {
                v.insert("resubmitCheckKey".into(), json!(key));
            }
        }
        if !key.is_empty() {
            self.keys.insert(key, (fingerprint, self.vouchers.len()));
        }
        self.vouchers.push(voucher.clone());
        Ok(Saved::New(voucher))
    }

    /// Every voucher saved, oldest first.
    pub fn vouchers(&self) -> &[Value] {
        &self.vouchers
    }

    /// How many saves were answered from an earlier `resubmitCheckKey`.
    pub fn replayed(&self) -> usize {
        self.replayed
    }

    /// Vouchers as the `queryVouchers` API lists them: `{header, body}`.
    pub fn listed(&self) -> Vec<Value> {
        self.vouchers
            .iter()
            .map(|v| {
                let mut header = v.clone();
                let body = header.as_object_mut().and_then(|h| h.remove("bodies")).unwrap_or(json!([]));
                let id = header["voucherId"].clone();
                json!({"id": id, "header": header, "body": body})
            })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn voucher(dept: &str, amount: Value) -> Value {
        json!({"accbookCode": "0001", "voucherTypeCode": "1", "makerMobile": "13800000000",
        "bodies": [
          {"description": "差旅费", "accsubjectCode": "6602", "debitOriginal": amount, "debitOrg": amount,
           "rateType": "01", "rateOrg": 1,
           "clientAuxiliaryList": [{"filedCode": "dept", "valueCode": dept}, {"filedCode": "project", "valueCode": "ERP"}]},
          {"description": "差旅费", "accsubjectCode": "1002", "creditOriginal": 1200.5, "creditOrg": 1200.5, "rateType": "01", "rateOrg": 1}
        ]})
    }

    fn projects() -> Vec<String> {
        vec!["ERP".into()]
    }

    #[test]
    fn validation_names_the_problem() {
        assert_eq!(validate(&voucher("D0101", json!(1200.5)), &projects()), Ok(()));
        let e = validate(&voucher("D9999", json!(1200.5)), &projects()).unwrap_err();
        assert_eq!(e.message, "第1行辅助核算部门编码[D9999]不存在");
        let e = validate(&voucher("D0101", Value::Null), &projects()).unwrap_err();
        assert_eq!(e.message, "第1行分录金额不能为空");
        let e = validate(&voucher("D0101", json!("100")), &projects()).unwrap_err();
        assert!(e.message.starts_with("借贷不平衡"), "{e:?}");
        let e = validate(&json!({"accbookCode": "0002", "bodies": []}), &projects()).unwrap_err();
        assert_eq!(e.message, "账簿编码[0002]不存在");
    }

    #[test]
    fn resubmit_key_replays_and_conflicts() {
        let mut ledger = Ledger::default();
        let mut doc = voucher("D0101", json!(1200.5));
        doc["resubmitCheckKey"] = json!("k1");
        let first = ledger.save(&doc, "2024-05-03 10:00:00").unwrap();
        assert!(matches!(first, Saved::New(_)));
        assert_eq!(first.voucher()["billCode"], "记-0001");
        assert_eq!(first.voucher()["totalDebit"], 1200.5);
        let again = ledger.save(&doc, "2024-05-03 10:01:00").unwrap();
        assert_eq!(again, Saved::Replayed(first.voucher().clone()));
        doc["makerMobile"] = json!("13900000000");
        assert_eq!(ledger.save(&doc, "x").unwrap_err().code, code::ALREADY_EXISTS);
        doc["resubmitCheckKey"] = json!("x".repeat(33));
        assert_eq!(ledger.save(&doc, "x").unwrap_err().code, code::LOGIC_ERROR);
        assert_eq!((ledger.vouchers().len(), ledger.replayed()), (1, 1));
        assert_eq!(ledger.listed()[0]["header"]["billCode"], "记-0001");
    }
}
