//! `$batch`: a `multipart/mixed` body of retrieval requests and changesets. Each changeset
//! is applied atomically: when one of its requests fails (or the `partial` fault names it),
//! its changes are rolled back and the changeset is answered with that one error response.
//! The answer is `202 Accepted` with a `multipart/mixed` body mirroring the request.

use crate::answer::{Answer, codes, error};
use crate::odata::{Call, Inner, wants_json};
use crate::store::Data;

/// One request inside the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct PartRequest {
    /// Method (after `X-HTTP-Method` tunnelling).
    pub method: String,
    /// The URL as written (relative to the service root, or absolute).
    pub url: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// A batch part: one retrieval, or a changeset of modifying requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// A request outside any changeset.
    Single(PartRequest),
    /// A changeset.
    Changeset(Vec<PartRequest>),
}

/// The `boundary` parameter of a multipart content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits `body` into the parts between `--boundary` delimiters.
fn split(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in body.split(&delimiter).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").or_else(|| chunk.strip_prefix('\n')).unwrap_or(chunk);
        let chunk = chunk.strip_suffix("\r\n").or_else(|| chunk.strip_suffix('\n')).unwrap_or(chunk);
        parts.push(chunk.to_string());
    }
    parts
}

/// Headers and body of one MIME entity or embedded HTTP message.
fn head_body(text: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn request(text: &str) -> Result<PartRequest, String> {
    let (_, http) = head_body(text);
    let (line, rest) = http.split_once('\n').unwrap_or((http.as_str(), ""));
    let mut words = line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(format!("malformed request line {line:?}"));
    };
    let (headers, body) = head_body(rest);
    let mut method = method.to_ascii_uppercase();
    if method == "POST"
        && let Some(m) = header(&headers, "x-http-method")
    {
        method = m.to_ascii_uppercase();
    }
    let body = body.trim_end_matches(['\r', '\n']).as_bytes().to_vec();
    Ok(PartRequest { method, url: url.to_string(), headers, body })
}

/// Parses a `$batch` body.
pub fn parse(body: &str, boundary: &str) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    for part in split(body, boundary) {
        let (headers, inner) = head_body(&part);
        let ct = header(&headers, "content-type").unwrap_or_default();
        if ct.starts_with("multipart/mixed") {
            let b = self::boundary(ct).ok_or("changeset without boundary")?;
            let reqs = split(&inner, &b).iter().map(|p| request(p)).collect::<Result<Vec<_>, _>>()?;
            if reqs.iter().any(|r| r.method == "GET") {
                return Err("a changeset must not contain GET requests".into());
            }
            out.push(Part::Changeset(reqs));
        } else {
            out.push(Part::Single(request(&part)?));
        }
    }
    Ok(out)
}

/// Runs a `$batch`. `exec` runs one request against `data`; `forced` names the changesets
/// (0-based among changesets) that must fail; `service_prefix` is the service root path, to
/// accept absolute part URLs.
pub fn run(
    data: &mut Data,
    call: &Call,
    content_type: &str,
    body: &[u8],
    forced: &[usize],
    service_prefix: &str,
    exec: &dyn Fn(&mut Data, &Call, &Inner<'_>) -> Answer,
) -> Answer {
    let Some(b) = boundary(content_type) else {
        return error(
            400,
            codes::BAD_PAYLOAD,
            "The $batch request needs a multipart/mixed body with a boundary",
            "",
            call.err(),
        );
    };
    let parts = match parse(&String::from_utf8_lossy(body), &b) {
        Ok(p) => p,
        Err(m) => {
            return error(400, codes::BAD_PAYLOAD, &format!("Malformed $batch request: {m}"), "", call.err());
        }
    };
    let run_one = |data: &mut Data, r: &PartRequest| {
        let url = r.url.split_once(service_prefix).map_or(r.url.as_str(), |(_, rest)| rest);
        let url = url.trim_start_matches('/');
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let path = crate::odata::percent_decode(path);
        let json = call.v4 || wants_json(query, header(&r.headers, "accept"));
        let call = Call { json, ..call.clone() };
        exec(
            data,
            &call,
            &Inner { method: &r.method, path: &path, query, headers: &r.headers, body: &r.body },
        )
    };
    let outer = format!("batch_{}", token());
    let mut out = String::new();
    let mut changeset_index = 0;
    for part in &parts {
        match part {
            Part::Single(r) => {
                let a = run_one(data, r);
                out.push_str(&format!("--{outer}\r\n{}", http_part(&a)));
            }
            Part::Changeset(reqs) => {
                let index = changeset_index;
                changeset_index += 1;
                let failure = if forced.contains(&index) {
                    Some(forced_failure(call, reqs))
                } else {
                    let backup = data.clone();
                    let mut answers = Vec::new();
                    let mut failed = None;
                    for r in reqs {
                        let a = run_one(data, r);
                        if a.status >= 400 {
                            failed = Some(a);
                            break;
                        }
                        answers.push(a);
                    }
                    if failed.is_some() {
                        *data = backup;
                    } else {
                        let inner = format!("changeset_{}", token());
                        out.push_str(&format!(
                            "--{outer}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n"
                        ));
                        for a in &answers {
                            out.push_str(&format!("--{inner}\r\n{}", http_part(a)));
                        }
                        out.push_str(&format!("--{inner}--\r\n\r\n"));
                    }
                    failed
                };
                if let Some(a) = failure {
                    out.push_str(&format!("--{outer}\r\n{}", http_part(&a)));
                }
            }
        }
    }
    out.push_str(&format!("--{outer}--\r\n"));
    Answer::text(202, &format!("multipart/mixed; boundary={outer}"), out)
}

/// The error a changeset gets when the `partial` fault names it: a creation fails the
/// account assignment check, a change finds the object locked.
fn forced_failure(call: &Call, reqs: &[PartRequest]) -> Answer {
    let json = call.v4
        || reqs
            .iter()
            .any(|r| wants_json(r.url.split_once('?').map_or("", |(_, q)| q), header(&r.headers, "accept")));
    let ctx = crate::answer::ErrorContext { json, ..call.err() };
    if reqs.iter().any(|r| r.method == "POST") {
        error(
            400,
            codes::ACCOUNT_ASSIGNMENT,
            "Account 0000400000 requires an assignment to a CO object",
            "",
            ctx,
        )
    } else {
        error(
            400,
            codes::LOCKED,
            &format!("Object requested is currently locked by user {}", crate::LOCKING_USER),
            "",
            ctx,
        )
    }
}

fn token() -> String {
    format!("{:016x}", fastrand::u64(..))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        428 => "Precondition Required",
        _ => "",
    }
}

/// One embedded HTTP response as a batch part (headers of the part, blank line, response).
fn http_part(a: &Answer) -> String {
    let mut s = String::from("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n");
    s.push_str(&format!("HTTP/1.1 {} {}\r\n", a.status, reason(a.status)));
    for (k, v) in &a.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str(&format!("content-length: {}\r\n\r\n", a.body.len()));
    s.push_str(&String::from_utf8_lossy(&a.body));
    s.push_str("\r\n");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn parses_retrievals_and_changesets() {
        let body = "--batch_b1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n\
GET A_PurchaseRequisitionHeader('10000012')?$format=json HTTP/1.1\r\nAccept: application/json\r\n\r\n\r\n\
--batch_b1\r\nContent-Type: multipart/mixed; boundary=changeset_c1\r\n\r\n\
--changeset_c1\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: 1\r\n\r\n\
PATCH A_PurchaseRequisitionItem(PurchaseRequisition='10000012',PurchaseRequisitionItem='10') HTTP/1.1\r\n\
Content-Type: application/json\r\nIf-Match: *\r\n\r\n{\"RequestedQuantity\":\"5\"}\r\n--changeset_c1--\r\n\r\n--batch_b1--\r\n";
        let parts = parse(body, "batch_b1").unwrap();
        assert_eq!(parts.len(), 2);
        let Part::Single(get) = &parts[0] else { panic!("{parts:?}") };
        assert_eq!(get.method, "GET");
        assert_eq!(get.url, "A_PurchaseRequisitionHeader('10000012')?$format=json");
        let Part::Changeset(cs) = &parts[1] else { panic!("{parts:?}") };
        assert_eq!(cs[0].method, "PATCH");
        assert_eq!(header(&cs[0].headers, "if-match"), Some("*"));
        assert_eq!(cs[0].body, br#"{"RequestedQuantity":"5"}"#);
        assert_eq!(boundary("multipart/mixed; boundary=\"batch_x\""), Some("batch_x".into()));
    }
}
