//! `$batch` (multipart/mixed): building a request of retrievals and one-request changesets,
//! and reading the answer back into one reply per part.

use qiao_sdk::http::Request;
use qiao_sdk::{Error, Result, clock};

use crate::client::Service;
use crate::errors::check;

/// One request inside a batch, relative to the service root.
#[derive(Debug, Clone)]
pub struct Op {
    /// `GET`, `POST`, `PATCH`, `MERGE`, `PUT`, `DELETE`.
    pub method: String,
    /// Path (and query) below the service root, already escaped.
    pub url: String,
    /// Extra headers (`If-Match`).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Option<String>,
}

/// A batch part: a retrieval (`GET`), or a changeset holding one modifying request.
#[derive(Debug, Clone)]
pub enum Part {
    /// Outside any changeset.
    Get(Op),
    /// A changeset of one request: it succeeds or fails on its own.
    Change(Op),
}

/// The answer to one part.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Status of the embedded response.
    pub status: u16,
    /// Its headers.
    pub headers: Vec<(String, String)>,
    /// Its body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The first header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn request_text(op: &Op) -> String {
    let mut s = format!(
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n{} {} HTTP/1.1\r\nAccept: application/json\r\n",
        op.method, op.url
    );
    if op.body.is_some() {
        s.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in &op.headers {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    if let Some(b) = &op.body {
        s.push_str(b);
    }
    s.push_str("\r\n");
    s
}

/// The multipart body of `parts` with `boundary`.
pub fn body(parts: &[Part], boundary: &str) -> String {
    let mut s = String::new();
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Get(op) => s.push_str(&format!("--{boundary}\r\n{}", request_text(op))),
            Part::Change(op) => {
                let cs = format!("changeset_{boundary}_{i}");
                s.push_str(&format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n"));
                s.push_str(&format!("--{cs}\r\nContent-ID: {}\r\n{}", i + 1, request_text(op)));
                s.push_str(&format!("--{cs}--\r\n\r\n"));
            }
        }
    }
    s.push_str(&format!("--{boundary}--\r\n"));
    s
}

/// The `boundary` of a multipart content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').map(str::trim).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("boundary").then(|| v.trim().trim_matches('"').to_string())
    })
}

fn split(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    for chunk in body.split(&delimiter).skip(1) {
        if chunk.starts_with("--") {
            break;
        }
        let chunk = chunk.strip_prefix("\r\n").or_else(|| chunk.strip_prefix('\n')).unwrap_or(chunk);
        parts.push(chunk.to_string());
    }
    parts
}

fn head_body(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    (headers, body)
}

fn http_reply(text: &str) -> Option<Reply> {
    let (_, http) = head_body(text);
    let (line, rest) = http.split_once('\n')?;
    let status = line.split_whitespace().nth(1)?.parse().ok()?;
    let (headers, body) = head_body(rest);
    Some(Reply { status, headers, body: body.trim_end_matches(['\r', '\n']).as_bytes().to_vec() })
}

/// Reads a `$batch` answer: one reply per part (a changeset's reply is its request's
/// response, or the one error response of the failed changeset).
pub fn parse(content_type: &str, body: &str) -> Option<Vec<Reply>> {
    let b = boundary(content_type)?;
    split(body, &b)
        .iter()
        .map(|part| {
            let (headers, inner) = head_body(part);
            let ct = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map_or("", |(_, v)| v.as_str());
            if ct.starts_with("multipart/mixed") {
                let cs = boundary(ct)?;
                split(inner, &cs).first().and_then(|p| http_reply(p))
            } else {
                http_reply(part)
            }
        })
        .collect()
}

/// Sends `parts` as one `$batch` (with the CSRF handshake) and returns one reply per part.
pub fn send(svc: &Service<'_>, parts: &[Part]) -> Result<Vec<Reply>> {
    let boundary = format!("batch_qiao_{}_{}", clock::now_ms(), parts.len());
    let req = Request::post(svc.url("$batch"))
        .header("content-type", format!("multipart/mixed; boundary={boundary}"))
        .body(body(parts, &boundary));
    let resp = check(svc.write(req)?)?;
    let ct = resp.header("content-type").unwrap_or_default().to_string();
    let replies = parse(&ct, &resp.text()).ok_or_else(|| {
        Error::transient(format!("{} returned a $batch answer that does not parse", resp.request_line()))
    })?;
    if replies.len() != parts.len() {
        return Err(Error::transient(format!(
            "{} answered {} parts for {} requests",
            resp.request_line(),
            replies.len(),
            parts.len()
        )));
    }
    Ok(replies)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builds_changesets_and_reads_answers() {
        let parts = vec![
            Part::Change(Op {
                method: "POST".into(),
                url: "A_X".into(),
                headers: vec![],
                body: Some("{\"a\":1}".into()),
            }),
            Part::Get(Op { method: "GET".into(), url: "A_X('1')".into(), headers: vec![], body: None }),
        ];
        let text = body(&parts, "b1");
        assert!(
            text.starts_with(
                "--b1\r\nContent-Type: multipart/mixed; boundary=changeset_b1_0\r\n\r\n--changeset_b1_0\r\n"
            ),
            "{text}"
        );
        assert!(text.contains("POST A_X HTTP/1.1\r\nAccept: application/json\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n--changeset_b1_0--"));
        assert!(text.ends_with("--b1--\r\n"));

        let answer = "--srv\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n--cs\r\nContent-Type: application/http\r\n\
Content-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 201 Created\r\nContent-Type: application/json\r\nETag: W/\"1\"\r\n\r\n{\"d\":{}}\r\n--cs--\r\n\r\n\
--srv\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nHTTP/1.1 400 Bad Request\r\n\
Content-Type: application/json\r\n\r\n{\"error\":{}}\r\n--srv--\r\n";
        let replies = parse("multipart/mixed; boundary=srv", answer).unwrap();
        assert_eq!(replies.len(), 2);
        assert_eq!((replies[0].status, replies[0].header("etag")), (201, Some("W/\"1\"")));
        assert_eq!(replies[0].body, b"{\"d\":{}}");
        assert_eq!(replies[1].status, 400);
        assert_eq!(replies[1].body, b"{\"error\":{}}");
    }
}
