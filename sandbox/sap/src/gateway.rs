//! The SAP Gateway front door: Basic and OAuth bearer authentication, `sap-client`, service
//! resolution from the URL, `X-HTTP-Method` tunnelling, the CSRF handshake, then dispatch
//! to reads, writes and `$batch`.

use axum::http::request::Parts;
use base64::Engine;
use qiao_sandbox_kit::TokenCheck;
use serde_json::json;

use crate::answer::{Answer, ErrorContext, codes, error};
use crate::model::{SERVICES, Service};
use crate::odata::{
    Call, Inner, Resource, metadata_document, percent_decode, query_pairs, read, resource, service_document,
    wants_json,
};
use crate::store::Data;
use crate::{
    CLIENT, OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, PASSWORD, SESSION_COOKIE, SapFake, USER, V2_ROOT, V4_ROOT,
    batch, write,
};

/// CSRF tokens and sessions live this long (the ICF idle timeout).
pub const SESSION_TTL_SECS: i64 = 1800;
/// OAuth access tokens live this long.
pub const TOKEN_TTL_SECS: i64 = 3600;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn logon_failed(bearer: bool) -> Answer {
    let challenge = if bearer {
        "Bearer realm=\"SAP NetWeaver Application Server [S4H/100]\", error=\"invalid_token\"".to_string()
    } else {
        format!("Basic realm=\"SAP NetWeaver Application Server [S4H/{CLIENT}]\"")
    };
    Answer::text(
        401,
        "text/html; charset=utf-8",
        "<html><head><title>Logon Error Message</title></head><body><h1>401 Unauthorized</h1>\
         <p>Logon failed. Check your user name and password.</p></body></html>",
    )
    .with("www-authenticate", challenge)
}

/// The session id in the `Cookie` header.
fn session_cookie(headers: &[(String, String)]) -> Option<String> {
    header(headers, "cookie")?.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_string())
    })
}

impl SapFake {
    fn authenticate(&self, headers: &[(String, String)]) -> Result<(), Answer> {
        let auth = header(headers, "authorization").unwrap_or_default();
        if let Some(b64) = auth.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap_or_default();
            if String::from_utf8_lossy(&decoded) == format!("{USER}:{PASSWORD}") {
                return Ok(());
            }
            return Err(logon_failed(false));
        }
        if let Some(token) = auth.strip_prefix("Bearer ") {
            return match self.bearer.check(token.trim()) {
                TokenCheck::Valid(_) => Ok(()),
                _ => Err(logon_failed(true)),
            };
        }
        Err(logon_failed(false))
    }

    /// `POST /sap/bc/sec/oauth2/token` with `grant_type=client_credentials`, the client
    /// authenticated with HTTP Basic.
    pub(crate) fn oauth_token(&self, headers: &[(String, String)], body: &[u8]) -> Answer {
        let auth =
            header(headers, "authorization").and_then(|a| a.strip_prefix("Basic ")).unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD.decode(auth.trim()).unwrap_or_default();
        if String::from_utf8_lossy(&decoded) != format!("{OAUTH_CLIENT_ID}:{OAUTH_CLIENT_SECRET}") {
            return Answer::json(
                401,
                &json!({"error": "invalid_client", "error_description": "Client authentication failed"}),
            );
        }
        let form = query_pairs(&String::from_utf8_lossy(body).replace('+', " "));
        if !form.iter().any(|(k, v)| k == "grant_type" && v == "client_credentials") {
            return Answer::json(
                400,
                &json!({"error": "unsupported_grant_type", "error_description": "Only client_credentials is supported"}),
            );
        }
        let token = self.bearer.issue(TOKEN_TTL_SECS, json!(OAUTH_CLIENT_ID));
        Answer::json(
            200,
            &json!({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS, "scope": "API_ENTERPRISE_PROJECT_SRV_0002 API_PURCHASEREQ_PROCESS_SRV_0001"}),
        )
    }

    /// `X-CSRF-Token: Fetch`: a token bound to the caller's session (a new session unless
    /// the request carries a live one), with the session cookies.
    fn fetch_csrf(&self, headers: &[(String, String)]) -> Vec<(String, String)> {
        let session = session_cookie(headers)
            .filter(|s| matches!(self.sessions.check(s), TokenCheck::Valid(_)))
            .unwrap_or_else(|| self.sessions.issue(SESSION_TTL_SECS, json!(USER)));
        let token = self.csrf.issue(SESSION_TTL_SECS, json!(session));
        vec![
            ("x-csrf-token".into(), token),
            ("set-cookie".into(), format!("{SESSION_COOKIE}={session}; path=/; HttpOnly")),
            ("set-cookie".into(), format!("sap-usercontext=sap-client={CLIENT}; path=/")),
        ]
    }

    /// A modifying request needs the token and the session cookie it was issued with.
    fn check_csrf(&self, headers: &[(String, String)]) -> Result<(), Answer> {
        let token = header(headers, "x-csrf-token").unwrap_or_default();
        let session = session_cookie(headers);
        let ok = match (self.csrf.check(token), &session) {
            (TokenCheck::Valid(subject), Some(s)) => {
                subject == json!(s) && matches!(self.sessions.check(s), TokenCheck::Valid(_))
            }
            _ => false,
        };
        if ok {
            return Ok(());
        }
        self.count_csrf_rejection();
        Err(Answer::text(403, "text/plain; charset=utf-8", "CSRF token validation failed")
            .with("x-csrf-token", "Required"))
    }

    /// Answers one HTTP request below `/sap/opu/odata*/sap/`.
    pub(crate) fn serve(&self, parts: &Parts, body: &[u8]) -> Answer {
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned())
            })
            .collect();
        let path = parts.uri.path();
        let raw_query = parts.uri.query().unwrap_or_default();
        let (v4, prefix, rest) = if let Some(r) = path.strip_prefix(V2_ROOT) {
            (false, V2_ROOT, r)
        } else if let Some(r) = path.strip_prefix(V4_ROOT) {
            (true, V4_ROOT, r)
        } else {
            return Answer::text(
                404,
                "text/html",
                "<html><body><h1>404 Not Found</h1><p>Service cannot be reached</p></body></html>",
            );
        };
        if let Err(a) = self.authenticate(&headers) {
            return a;
        }
        if let Some((_, client)) = query_pairs(raw_query).into_iter().find(|(k, _)| k == "sap-client")
            && client != CLIENT
        {
            return logon_failed(false);
        }
        let rest = percent_decode(rest);
        let json = v4 || wants_json(raw_query, header(&headers, "accept"));
        let Some((service, segment, resource_path)) = resolve(v4, &rest) else {
            let name = rest.split('/').next().unwrap_or_default();
            return error(
                404,
                codes::NO_SERVICE,
                &format!("No service found for namespace '/SAP/', name '{name}'"),
                "",
                ErrorContext { v4, json, service: None },
            );
        };
        let mut method = parts.method.as_str().to_ascii_uppercase();
        if method == "POST"
            && let Some(m) = header(&headers, "x-http-method")
        {
            method = m.to_ascii_uppercase();
        }
        let host = header(&headers, "host").unwrap_or("localhost");
        let call = Call {
            v4,
            json,
            service,
            root: format!("http://{host}{prefix}{segment}"),
            now_ms: self.ctx.clock.now_ms(),
            page_size: self.page_size(),
        };
        let reading = method == "GET" || method == "HEAD";
        let mut extra = Vec::new();
        if reading && header(&headers, "x-csrf-token").is_some_and(|v| v.eq_ignore_ascii_case("fetch")) {
            extra = self.fetch_csrf(&headers);
        }
        if !reading && let Err(a) = self.check_csrf(&headers) {
            return a;
        }
        let inner = Inner { method: &method, path: resource_path, query: raw_query, headers: &headers, body };
        let mut data = self.lock();
        let mut answer = if resource_path.trim_matches('/') == "$batch" {
            if method != "POST" {
                error(405, codes::NOT_ALLOWED, "$batch needs POST", "", call.err())
            } else {
                self.count_batch();
                let text = String::from_utf8_lossy(body).to_ascii_lowercase();
                let forced = if text.contains("content-type: multipart/mixed") {
                    self.ctx.faults.take_partial().unwrap_or_default()
                } else {
                    Vec::new()
                };
                let ct = header(&headers, "content-type").unwrap_or_default();
                let service_prefix = format!("{prefix}{segment}");
                batch::run(&mut data, &call, ct, body, &forced, &service_prefix, &|d, c, r| exec(d, c, r))
            }
        } else {
            exec(&mut data, &call, &inner)
        };
        answer.headers.extend(extra);
        answer.headers.push(("dataserviceversion".into(), if v4 { "4.0" } else { "2.0" }.into()));
        answer
    }
}

/// The service a path below the OData root names, its path segment(s), and the rest.
fn resolve(v4: bool, rest: &str) -> Option<(&'static Service, String, &str)> {
    if v4 {
        return SERVICES.iter().copied().find_map(|s| {
            let tail = rest.strip_prefix(s.v4_path)?;
            (tail.is_empty() || tail.starts_with('/'))
                .then(|| (s, s.v4_path.to_string(), tail.trim_start_matches('/')))
        });
    }
    let (segment, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let mut bits = segment.split(';');
    let name = bits.next().unwrap_or_default();
    let version = bits.find_map(|b| b.strip_prefix("v=")).unwrap_or("0001");
    let service =
        SERVICES.iter().copied().find(|s| s.v2_name.eq_ignore_ascii_case(name) && s.v2_version == version)?;
    Some((service, segment.to_string(), tail))
}

/// Runs one request inside a resolved service (directly or as a `$batch` part).
pub(crate) fn exec(data: &mut Data, call: &Call, req: &Inner<'_>) -> Answer {
    let res = match resource(req.path, call) {
        Ok(r) => r,
        Err(a) => return a,
    };
    let not_allowed = || {
        error(
            405,
            codes::NOT_ALLOWED,
            &format!("Method '{}' is not allowed here", req.method),
            "",
            call.err(),
        )
    };
    match (&res, req.method) {
        (Resource::ServiceDocument, "GET" | "HEAD") => service_document(call),
        (Resource::Metadata, "GET" | "HEAD") => metadata_document(call),
        (Resource::Set { .. }, "GET" | "HEAD") => read(data, call, req, &res),
        (Resource::Set { set, key: None, nav: None, count: false }, "POST") => {
            write::create(data, call, set, req)
        }
        (Resource::Set { set, key: Some(key), nav: None, .. }, "PATCH" | "MERGE" | "PUT") => {
            write::update(data, call, set, key, req)
        }
        (Resource::Set { set, key: Some(key), nav: None, .. }, "DELETE") => {
            write::delete(data, call, set, key, req)
        }
        _ => not_allowed(),
    }
}
