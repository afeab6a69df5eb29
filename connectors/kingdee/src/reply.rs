//! K/3's answers: the `Result.ResponseStatus` envelope (also inside `[[...]]` for
//! ExecuteBillQuery), read leniently (`"false"`/`"11"` strings as well as booleans and numbers),
//! and the `MsgCode` → error class table.

use qiao_sdk::{Error, Value};

/// `MsgCode` 1: the session (context) is gone.
pub const SESSION_LOST: i64 = 1;

/// One entry of `Errors[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemError {
    /// `FieldName`, when given.
    pub field: Option<String>,
    /// `Message`.
    pub message: String,
    /// `DIndex`: position of the model or number in the request.
    pub index: usize,
}

/// One entry of `SuccessEntitys[]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// `Id` (FID).
    pub id: Value,
    /// `Number` (bill number).
    pub number: String,
    /// `DIndex`.
    pub index: usize,
}

/// A `ResponseStatus`.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// `IsSuccess`.
    pub ok: bool,
    /// `MsgCode` (0 when absent).
    pub msg_code: i64,
    /// `Errors[]`.
    pub errors: Vec<ItemError>,
    /// `SuccessEntitys[]`.
    pub successes: Vec<Entity>,
}

fn as_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => {
            s.trim().parse::<bool>().ok().or_else(|| s.trim().eq_ignore_ascii_case("true").then_some(true))
        }
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// The `ResponseStatus` in an answer: `{"Result": {"ResponseStatus": ..}}` or the same wrapped
/// in `[[...]]`. `None` when there is none (a query's rows, a View's success).
pub fn status_of(reply: &Value) -> Option<Status> {
    let envelope = match reply {
        Value::Array(outer) => outer.first()?.as_array()?.first()?,
        other => other,
    };
    let status = envelope.get("Result")?.get("ResponseStatus")?;
    if !status.is_object() {
        return None;
    }
    let list = |key: &str| status.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    let index =
        |v: &Value| v.get("DIndex").and_then(as_i64).and_then(|i| usize::try_from(i).ok()).unwrap_or(0);
    let errors = list("Errors")
        .iter()
        .map(|e| ItemError {
            field: e.get("FieldName").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string),
            message: e.get("Message").and_then(Value::as_str).unwrap_or_default().to_string(),
            index: index(e),
        })
        .collect::<Vec<_>>();
    let successes = list("SuccessEntitys")
        .iter()
        .map(|s| Entity {
            id: s.get("Id").cloned().unwrap_or(Value::Null),
            number: s.get("Number").and_then(Value::as_str).unwrap_or_default().to_string(),
            index: index(s),
        })
        .collect();
    let ok = status.get("IsSuccess").and_then(as_bool).unwrap_or(errors.is_empty());
    let msg_code = status.get("MsgCode").and_then(as_i64).unwrap_or(0);
    Some(Status { ok, msg_code, errors, successes })
}

impl Status {
    /// Whether this says the session is lost.
    pub fn session_lost(&self) -> bool {
        !self.ok
            && (self.msg_code == SESSION_LOST
                || self.errors.iter().any(|e| e.message.contains("会话信息已丢失")))
    }

    /// The errors as one text: `FieldName: Message; Message`.
    pub fn messages(&self) -> String {
        join(&self.errors)
    }

    /// The error for a failed status that is not about the business data: permission,
    /// server exceptions, licences, network-control conflicts, call limits, admin logins.
    /// `None` for business failures (the caller reports those as `invalid-input`).
    pub fn system_error(&self, what: &str) -> Option<Error> {
        if self.ok {
            return None;
        }
        let text = format!("{what} failed (MsgCode {}): {}", self.msg_code, self.messages());
        match self.msg_code {
            SESSION_LOST => Some(Error::unauthorized(text)),
            2 | 4 | 7 => Some(Error::permanent(text)),
            6 | 13 => Some(Error::transient(text)),
            14 => Some(Error::rate_limited(text, None)),
            15 => Some(Error::config(text)),
            _ => None,
        }
    }

    /// The error for any failed status: [`Status::system_error`], else `invalid-input` with the
    /// messages.
    pub fn error(&self, what: &str) -> Error {
        self.system_error(what).unwrap_or_else(|| {
            Error::invalid_input(format!("{what} failed (MsgCode {}): {}", self.msg_code, self.messages()))
        })
    }
}

/// `FieldName: Message` joined with `; ` (just `Message` when no field).
pub fn join(errors: &[ItemError]) -> String {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| match &e.field {
            Some(f) => format!("{f}: {}", e.message),
            None => e.message.clone(),
        })
        .collect();
    if parts.is_empty() { "no message".into() } else { parts.join("; ") }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    #[test]
    fn reads_captured_success_and_failure() {
        let ok = json!({"Result": {"ResponseStatus": {"IsSuccess": true, "Errors": [],
            "SuccessEntitys": [{"Id": 140670, "Number": "CGSQ000123", "DIndex": 0}], "SuccessMessages": [], "MsgCode": 0},
            "Id": 140670, "Number": "CGSQ000123", "NeedReturnData": [{}]}});
        let s = status_of(&ok).unwrap();
        assert!(s.ok);
        assert_eq!(s.successes[0].number, "CGSQ000123");
        let bad = json!({"Result": {"ResponseStatus": {"ErrorCode": "500", "IsSuccess": "false",
            "Errors": [{"FieldName": "FMaterialId", "Message": "字段“物料编码”是必填项", "DIndex": 0},
                       {"FieldName": null, "Message": "单据编号重复", "DIndex": 1}],
            "SuccessEntitys": [], "SuccessMessages": [], "MsgCode": "11"}}});
        let s = status_of(&bad).unwrap();
        assert_eq!((s.ok, s.msg_code), (false, 11));
        assert_eq!(s.messages(), "FMaterialId: 字段“物料编码”是必填项; 单据编号重复");
        assert_eq!(s.system_error("Save"), None);
        assert_eq!(s.error("Save").class(), ErrorClass::InvalidInput);
    }

    #[test]
    fn query_errors_are_unwrapped_and_session_loss_spotted() {
        let lost = json!([[{"Result": {"ResponseStatus": {"ErrorCode": 500, "IsSuccess": false,
            "Errors": [{"FieldName": null, "Message": "会话信息已丢失，请重新登录", "DIndex": 0}],
            "SuccessEntitys": [], "SuccessMessages": [], "MsgCode": 1}}}]]);
        assert!(status_of(&lost).unwrap().session_lost());
        assert_eq!(status_of(&json!([[1, "RGCB000001"]])), None);
        assert_eq!(status_of(&json!([])), None);
        assert_eq!(status_of(&json!({"Result": {"ResponseStatus": null, "Result": {"Id": 1}}})), None);
    }

    #[test]
    fn msg_codes_map_to_classes() {
        let class = |code: i64| {
            let s = Status { ok: false, msg_code: code, errors: vec![], successes: vec![] };
            s.error("x").class()
        };
        assert_eq!(class(1), ErrorClass::Unauthorized);
        assert_eq!(class(2), ErrorClass::Permanent);
        assert_eq!(class(6), ErrorClass::Transient);
        assert_eq!(class(11), ErrorClass::InvalidInput);
        assert_eq!(class(13), ErrorClass::Transient);
        assert_eq!(class(14), ErrorClass::RateLimited);
        assert_eq!(class(15), ErrorClass::Config);
    }
}
