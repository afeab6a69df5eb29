//! SAP answers → classified errors, with the SAP message code and text in the message.

use qiao_sdk::http::{Response, parse_retry_after, reason_phrase};
use qiao_sdk::{Error, Value, clock};

/// The message code, text and details of an SAP error body (v2 `error.message.value` with
/// `innererror.errordetails`, v4 `error.message` with `details`). `None` when the body is
/// not an OData error (a logon page, a CSRF text, an API-management fault).
pub fn sap_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let e = v.get("error")?;
    let code = e.get("code").and_then(Value::as_str).unwrap_or_default();
    let text = match e.get("message") {
        Some(Value::String(s)) => s.clone(),
        Some(m) => m.get("value").and_then(Value::as_str).unwrap_or_default().to_string(),
        None => String::new(),
    };
    let mut out = format!("SAP {code}: {text}");
    let details = e
        .pointer("/innererror/errordetails")
        .or_else(|| e.get("details"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let target =
        e.get("target").and_then(Value::as_str).filter(|t| !t.is_empty()).map(str::to_string).or_else(|| {
            details
                .first()
                .and_then(|d| d.get("target"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        });
    if let Some(t) = target {
        out.push_str(&format!(" (target {t})"));
    }
    for d in &details {
        let dc = d.get("code").and_then(Value::as_str).unwrap_or_default();
        let dm = d.get("message").and_then(Value::as_str).unwrap_or_default();
        if !dm.is_empty() && dm != text {
            out.push_str(&format!("; {dc}: {dm}"));
        }
    }
    Some(out)
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Whether a 403 is the CSRF refusal (`x-csrf-token: Required`).
pub fn is_csrf_refusal(status: u16, headers: &[(String, String)]) -> bool {
    status == 403 && header(headers, "x-csrf-token").is_some_and(|v| v.eq_ignore_ascii_case("required"))
}

/// The error for a non-2xx answer to `what` (`PATCH https://host/path`):
///
/// | status | class |
/// | --- | --- |
/// | 401 | unauthorized |
/// | 403 (CSRF refused even after a fresh token) | unauthorized |
/// | 403 (other) | permanent |
/// | 400, 404, 405, 409, 412, 428, other 4xx | invalid-input |
/// | 408 | transient |
/// | 429 | rate-limited, with `Retry-After` |
/// | 501, 505 | permanent |
/// | other 5xx | transient |
pub fn classify(status: u16, headers: &[(String, String)], body: &[u8], what: &str) -> Error {
    let detail = sap_message(body).unwrap_or_else(|| snippet(body));
    let mut message = format!("{what} returned {status} {}", reason_phrase(status)).trim_end().to_string();
    match status {
        412 => message.push_str(" (the entity was changed by someone else since its ETag was read)"),
        428 => message.push_str(" (the entity needs an If-Match ETag)"),
        _ => {}
    }
    if !detail.is_empty() {
        message.push_str(": ");
        message.push_str(&detail);
    }
    match status {
        401 => Error::unauthorized(message),
        403 if is_csrf_refusal(status, headers) => Error::unauthorized(message),
        403 | 501 | 505 => Error::permanent(message),
        408 => Error::transient(message),
        429 => {
            let after = header(headers, "retry-after").and_then(|v| parse_retry_after(v, clock::now_ms()));
            Error::rate_limited(message, after)
        }
        400..=499 => Error::invalid_input(message),
        _ => Error::transient(message),
    }
}

/// `Ok(response)` for 1xx–3xx, else the classified error.
pub fn check(resp: Response) -> qiao_sdk::Result<Response> {
    if resp.status < 400 {
        return Ok(resp);
    }
    Err(classify(resp.status, &resp.headers, &resp.body, resp.request_line()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_sdk::{ErrorClass, json};

    fn v2(code: &str, msg: &str, target: &str) -> Vec<u8> {
        json!({"error": {"code": code, "message": {"lang": "en", "value": msg}, "innererror": {
            "errordetails": [{"code": code, "message": msg, "target": target, "severity": "error"},
                             {"code": "ME/999", "message": "Second problem", "target": "", "severity": "error"}]}}})
        .to_string()
        .into_bytes()
    }

    #[test]
    fn v2_and_v4_bodies_give_code_message_target_and_details() {
        let m =
            sap_message(&v2("ME/083", "Enter a requested quantity greater than zero", "RequestedQuantity"))
                .unwrap_or_default();
        assert_eq!(
            m,
            "SAP ME/083: Enter a requested quantity greater than zero (target RequestedQuantity); ME/999: Second problem"
        );
        let v4 = json!({"error": {"code": "MEPO/123", "message": "Quantity must be greater than zero", "target": "Qty",
            "details": [{"code": "MEPO/124", "message": "Other", "target": ""}]}});
        assert_eq!(
            sap_message(v4.to_string().as_bytes()).unwrap_or_default(),
            "SAP MEPO/123: Quantity must be greater than zero (target Qty); MEPO/124: Other"
        );
        assert_eq!(sap_message(b"CSRF token validation failed"), None);
    }

    #[test]
    fn statuses_map_to_classes() {
        let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let body = v2("X/1", "m", "");
        let cases = [
            (400, vec![], ErrorClass::InvalidInput),
            (401, vec![], ErrorClass::Unauthorized),
            (403, h("x-csrf-token", "Required"), ErrorClass::Unauthorized),
            (403, vec![], ErrorClass::Permanent),
            (404, vec![], ErrorClass::InvalidInput),
            (412, vec![], ErrorClass::InvalidInput),
            (428, vec![], ErrorClass::InvalidInput),
            (429, h("Retry-After", "2"), ErrorClass::RateLimited),
            (500, vec![], ErrorClass::Transient),
            (503, vec![], ErrorClass::Transient),
            (501, vec![], ErrorClass::Permanent),
        ];
        for (status, headers, class) in cases {
            assert_eq!(classify(status, &headers, &body, "GET x").class(), class, "{status}");
        }
        let e = classify(429, &h("retry-after", "2"), b"{}", "GET x");
        assert_eq!(e.retry_after_ms(), Some(2000));
        let e = classify(412, &[], &body, "PATCH https://h/A_X('1')");
        assert!(
            e.message().starts_with(
                "PATCH https://h/A_X('1') returned 412 Precondition Failed (the entity was changed"
            ),
            "{e}"
        );
    }
}
