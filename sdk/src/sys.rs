//! The one place that calls host imports. On `wasm32` these are the generated WIT imports;
//! natively they are served by the thread's [`crate::testing::MockHost`].

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::Result;
    use crate::bindings::qiao::connector::{clock, http as wit_http, kv, log as wit_log};
    use crate::http::{HttpError, Request, Response};
    use crate::log::Level;

    pub(crate) fn http_send(request: Request, line: &str) -> Result<Response> {
        let request = wit_http::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        match wit_http::send(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
                request_line: String::new(),
            }),
            Err(e) => Err(match e {
                wit_http::HttpError::InvalidRequest(m) => HttpError::InvalidRequest(m),
                wit_http::HttpError::Timeout(m) => HttpError::Timeout(m),
                wit_http::HttpError::Connect(m) => HttpError::Connect(m),
                wit_http::HttpError::TooLarge(m) => HttpError::TooLarge(m),
                wit_http::HttpError::Protocol(m) => HttpError::Protocol(m),
            }
            .into_error(line)),
        }
    }

    pub(crate) fn log(level: Level, message: &str) {
        let level = match level {
            Level::Trace => wit_log::Level::Trace,
            Level::Debug => wit_log::Level::Debug,
            Level::Info => wit_log::Level::Info,
            Level::Warn => wit_log::Level::Warn,
            Level::Error => wit_log::Level::Error,
        };
        wit_log::log(level, message);
    }

    pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }

    pub(crate) fn kv_set(key: &str, value: &[u8]) -> std::result::Result<(), String> {
        kv::set(key, value)
    }

    pub(crate) fn kv_delete(key: &str) {
        kv::delete(key);
    }

    pub(crate) fn now_ms() -> u64 {
        clock::now_ms()
    }
}

#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use crate::testing::host::*;
