//! A fake host for native unit tests of connector logic (not compiled for `wasm32`).
//!
//! ```
//! use qiao_sdk::http::{Request, Response};
//! use qiao_sdk::testing::MockHost;
//! use qiao_sdk::json;
//!
//! let host = MockHost::new()
//!     .http(|req: &Request| match req.url_without_query() {
//!         "https://api.test/items" => Ok(Response::new(200).with_json(&json!([1, 2]))),
//!         _ => Ok(Response::new(404)),
//!     })
//!     .now_ms(1_000)
//!     .install();
//!
//! let items: Vec<u32> = Request::get("https://api.test/items").send()?.json()?;
//! assert_eq!(items, [1, 2]);
//! assert_eq!(host.requests().len(), 1);
//! assert_eq!(qiao_sdk::clock::now_ms(), 1_000);
//! # Ok::<(), qiao_sdk::Error>(())
//! ```
//!
//! The host is installed for the current thread (each `#[test]` runs on its own thread) until
//! the returned [`InstalledHost`] is dropped. Without one, `http` calls fail with a
//! `permanent` error, `kv::set` fails, `kv::get` finds nothing, log lines go to stderr and the
//! clock is the system clock.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::http::{HttpError, Request, Response};
use crate::log::Level;

/// The clock of a new [`MockHost`]: 2023-11-14T22:13:20Z.
pub const DEFAULT_NOW_MS: u64 = 1_700_000_000_000;

type Handler = Box<dyn FnMut(&Request) -> Result<Response, HttpError>>;

/// A fake host: an HTTP handler, a clock, an in-memory kv and a log. Configure it, then
/// [`MockHost::install`] it.
pub struct MockHost {
    state: State,
}

/// One captured log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The level.
    pub level: Level,
    /// The message.
    pub message: String,
}

/// The installed host; uninstalls it when dropped (restoring the one installed before, if
/// any). Read what the connector did through it.
pub struct InstalledHost {
    state: Rc<RefCell<State>>,
    previous: Option<Rc<RefCell<State>>>,
}

struct State {
    handler: Option<Handler>,
    now_ms: u64,
    kv: BTreeMap<String, Vec<u8>>,
    kv_value_limit: Option<usize>,
    requests: Vec<Request>,
    logs: Vec<LogLine>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

impl Default for MockHost {
    fn default() -> Self {
        MockHost::new()
    }
}

impl MockHost {
    /// A host with no HTTP handler (requests fail), the clock frozen at [`DEFAULT_NOW_MS`] and
    /// an empty kv.
    pub fn new() -> Self {
        MockHost {
            state: State {
                handler: None,
                now_ms: DEFAULT_NOW_MS,
                kv: BTreeMap::new(),
                kv_value_limit: None,
                requests: Vec::new(),
                logs: Vec::new(),
            },
        }
    }

    /// Answers every HTTP request with `handler`. Return `Err(HttpError::...)` to simulate a
    /// failure below HTTP (timeout, refused connection).
    pub fn http(mut self, handler: impl FnMut(&Request) -> Result<Response, HttpError> + 'static) -> Self {
        self.state.handler = Some(Box::new(handler));
        self
    }

    /// Freezes the clock at `ms` since the Unix epoch.
    pub fn now_ms(mut self, ms: u64) -> Self {
        self.state.now_ms = ms;
        self
    }

    /// Stores `value` under `key` before the test starts.
    pub fn kv(mut self, key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.state.kv.insert(key.into(), value.into());
        self
    }

    /// Stores `value` as JSON under `key` before the test starts.
    pub fn kv_json<T: Serialize + ?Sized>(self, key: impl Into<String>, value: &T) -> Self {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.kv(key, bytes)
    }

    /// Refuses `kv::set` of values longer than `bytes`, as the real host does past its limit.
    pub fn kv_value_limit(mut self, bytes: usize) -> Self {
        self.state.kv_value_limit = Some(bytes);
        self
    }

    /// Installs the host for the current thread until the returned guard is dropped.
    pub fn install(self) -> InstalledHost {
        let state = Rc::new(RefCell::new(self.state));
        let previous = CURRENT.with(|current| current.borrow_mut().replace(Rc::clone(&state)));
        InstalledHost { state, previous }
    }
}

impl InstalledHost {
    /// Every HTTP request sent so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.state.borrow().requests.clone()
    }

    /// Returns the requests sent so far and forgets them.
    pub fn take_requests(&self) -> Vec<Request> {
        std::mem::take(&mut self.state.borrow_mut().requests)
    }

    /// Every log line written so far, in order.
    pub fn logs(&self) -> Vec<LogLine> {
        self.state.borrow().logs.clone()
    }

    /// The value stored under `key`.
    pub fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        self.state.borrow().kv.get(key).cloned()
    }

    /// The JSON value stored under `key`, if it decodes as `T`.
    pub fn kv_get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.kv_get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
    }

    /// Stores `value` under `key` (bypassing the size limit).
    pub fn kv_set(&self, key: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.state.borrow_mut().kv.insert(key.into(), value.into());
    }

    /// The keys stored, sorted.
    pub fn kv_keys(&self) -> Vec<String> {
        self.state.borrow().kv.keys().cloned().collect()
    }

    /// The clock.
    pub fn now_ms(&self) -> u64 {
        self.state.borrow().now_ms
    }

    /// Sets the clock.
    pub fn set_now_ms(&self, ms: u64) {
        self.state.borrow_mut().now_ms = ms;
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        let mut state = self.state.borrow_mut();
        state.now_ms = state.now_ms.saturating_add(ms);
    }
}

impl Drop for InstalledHost {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // During thread teardown the thread-local may already be gone; nothing to restore then.
        let _ = CURRENT.try_with(|current| {
            if let Ok(mut current) = current.try_borrow_mut() {
                *current = previous;
            }
        });
    }
}

/// The native implementations of the host imports, used by `crate::sys`.
pub(crate) mod host {
    use super::{CURRENT, LogLine, State};
    use crate::http::{Request, Response};
    use crate::log::Level;
    use crate::{Error, Result};
    use std::cell::RefCell;
    use std::rc::Rc;

    fn current() -> Option<Rc<RefCell<State>>> {
        CURRENT.try_with(|current| current.try_borrow().ok().and_then(|c| c.clone())).ok().flatten()
    }

    pub(crate) fn http_send(request: Request, line: &str) -> Result<Response> {
        let Some(state) = current() else {
            return Err(Error::permanent(format!(
                "{line}: no host to send it: install qiao_sdk::testing::MockHost in native tests"
            )));
        };
        let handler = {
            let mut state = state.borrow_mut();
            state.requests.push(request.clone());
            state.handler.take()
        };
        let Some(mut handler) = handler else {
            return Err(Error::permanent(format!(
                "{line}: the MockHost has no http handler (set one with MockHost::http; \
                 the handler itself cannot send requests)"
            )));
        };
        let result = handler(&request);
        state.borrow_mut().handler = Some(handler);
        result.map_err(|e| e.into_error(line))
    }

    pub(crate) fn log(level: Level, message: &str) {
        match current() {
            Some(state) => state.borrow_mut().logs.push(LogLine { level, message: message.to_owned() }),
            None => eprintln!("[qiao {level}] {message}"),
        }
    }

    pub(crate) fn kv_get(key: &str) -> Option<Vec<u8>> {
        current().and_then(|state| state.borrow().kv.get(key).cloned())
    }

    pub(crate) fn kv_set(key: &str, value: &[u8]) -> std::result::Result<(), String> {
        let Some(state) = current() else {
            return Err("no host to store it: install qiao_sdk::testing::MockHost in native tests".into());
        };
        let mut state = state.borrow_mut();
        if let Some(limit) = state.kv_value_limit.filter(|limit| value.len() > *limit) {
            return Err(format!("value of {} bytes exceeds the limit of {limit} bytes", value.len()));
        }
        state.kv.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    pub(crate) fn kv_delete(key: &str) {
        if let Some(state) = current() {
            state.borrow_mut().kv.remove(key);
        }
    }

    pub(crate) fn now_ms() -> u64 {
        match current() {
            Some(state) => state.borrow().now_ms,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .unwrap_or(0),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::{ErrorClass, clock, kv};
    use serde_json::json;

    #[test]
    fn without_a_host_imports_fail_cleanly() {
        let e = Request::get("https://x.test/a?secret=1").send().unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().starts_with("GET https://x.test/a: no host"), "{e}");
        assert_eq!(kv::get("k"), None);
        assert_eq!(kv::set("k", b"v").unwrap_err().class(), ErrorClass::Permanent);
        kv::delete("k");
        crate::info!("goes to stderr");
        assert!(clock::now_ms() > DEFAULT_NOW_MS);
    }

    #[test]
    fn http_requests_are_recorded_and_answered() {
        let mut calls = 0;
        let host = MockHost::new()
            .http(move |req| {
                calls += 1;
                match req.method() {
                    "GET" => Ok(Response::new(200).with_json(&json!({"call": calls}))),
                    _ => Err(HttpError::Timeout("slow".into())),
                }
            })
            .install();
        let r = Request::get("https://x.test/a").send().unwrap();
        assert_eq!(r.json::<serde_json::Value>().unwrap(), json!({"call": 1}));
        assert_eq!(r.request_line(), "GET https://x.test/a");
        let e = Request::post("https://x.test/b?q=1").send().unwrap_err();
        assert_eq!(e, crate::Error::transient("POST https://x.test/b failed: timeout: slow"));
        let urls: Vec<String> = host.requests().iter().map(|r| r.url().to_owned()).collect();
        assert_eq!(urls, ["https://x.test/a", "https://x.test/b?q=1"]);
        assert_eq!(host.take_requests().len(), 2);
        assert!(host.requests().is_empty());
    }

    #[test]
    fn missing_handler_is_an_error() {
        let _host = MockHost::new().install();
        let e = Request::get("https://x.test").send().unwrap_err();
        assert!(e.message().contains("no http handler"), "{e}");
    }

    #[test]
    fn kv_clock_and_logs() {
        let host = MockHost::new()
            .kv("seed", "1")
            .kv_json("token", &json!({"t": "abc"}))
            .now_ms(5)
            .kv_value_limit(8)
            .install();
        assert_eq!(kv::get("seed"), Some(b"1".to_vec()));
        assert_eq!(kv::get_json::<serde_json::Value>("token"), Some(json!({"t": "abc"})));
        assert_eq!(kv::get_json::<u32>("token"), None);
        kv::set_json("n", &42).unwrap();
        assert_eq!(host.kv_get_json::<u32>("n"), Some(42));
        let e = kv::set("big", b"123456789").unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert!(e.message().contains("exceeds the limit of 8 bytes"), "{e}");
        kv::delete("seed");
        assert_eq!(host.kv_keys(), ["n", "token"]);

        assert_eq!(clock::now_ms(), 5);
        host.advance_ms(10);
        assert_eq!(clock::now_ms(), 15);
        host.set_now_ms(1);
        assert_eq!(host.now_ms(), 1);

        crate::warn!("retrying {} after {}ms", "x", 5);
        crate::debug!("d");
        assert_eq!(
            host.logs(),
            [
                LogLine { level: Level::Warn, message: "retrying x after 5ms".into() },
                LogLine { level: Level::Debug, message: "d".into() }
            ]
        );
    }

    #[test]
    fn retry_after_date_uses_the_mock_clock() {
        // Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 s after the epoch.
        let _host = MockHost::new().now_ms(1_445_412_480_000 - 2_000).install();
        let r = Response::new(429).with_header("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(r.retry_after_ms(), Some(2_000));
        assert_eq!(r.error_for_status().unwrap_err().retry_after_ms(), Some(2_000));
    }

    #[test]
    fn installs_nest_and_uninstall_on_drop() {
        let outer = MockHost::new().now_ms(1).install();
        {
            let _inner = MockHost::new().now_ms(2).install();
            assert_eq!(clock::now_ms(), 2);
        }
        assert_eq!(clock::now_ms(), 1);
        drop(outer);
        assert!(clock::now_ms() > DEFAULT_NOW_MS);
    }
}
