//! Per-call store state and the host side of the imports.
//!
//! Every call gets a fresh [`CallState`] in a fresh store. The imports enforce the grants and
//! limits of that call; a violation the guest must not be able to swallow (a host it was not
//! granted, CPU or memory over budget) stops the guest with a trap whose error is one of the
//! marker types below, which `connector.rs` turns into the matching [`crate::CallError`].

use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreContextMut, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::{clock, http, kv, log, types};
use crate::grants::{Denial, Grants};
use crate::io::{Clock, HttpClients, KvStore, PrivateResolution};
use crate::limits::Limits;

/// How often the epoch ticks; the CPU budget is counted in these ticks.
pub(crate) const EPOCH_TICK: std::time::Duration = std::time::Duration::from_millis(10);
/// How much of the guest's stderr is kept for error messages.
const STDERR_CAPACITY: usize = 4096;

/// Shared host services, one per runtime.
pub(crate) struct HostIo {
    pub http: HttpClients,
    pub kv: Arc<dyn KvStore>,
    pub clock: Arc<dyn Clock>,
}

/// What one call is allowed, and who it is for.
pub(crate) struct CallScope {
    pub connector: Arc<str>,
    pub kv_scope: Arc<str>,
    pub grants: Arc<Grants>,
    pub limits: Arc<Limits>,
    /// The connection's outbound rate limit, if any.
    pub rate: Option<Arc<crate::rate::RateLimiter>>,
}

/// Trap marker: the guest asked for a host it was not granted.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostDeniedTrap(pub Denial);

/// Trap marker: CPU budget spent.
#[derive(Debug, thiserror::Error)]
#[error("cpu budget exceeded")]
pub(crate) struct CpuExceededTrap;

/// Trap marker: memory growth past the limit.
#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded: asked for {requested} bytes")]
pub(crate) struct MemoryExceededTrap {
    pub requested: u64,
}

/// Trap marker: a host service failed (state store).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct HostFailureTrap(pub String);

/// The state of one store: one call of one connector.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    scope: Arc<CallScope>,
    io: Arc<HostIo>,
    pub op: String,
    cpu_ticks: u64,
    max_cpu_ticks: u64,
    http_requests: u32,
    log_lines: u32,
}

impl CallState {
    pub fn new(scope: Arc<CallScope>, io: Arc<HostIo>, op: &str) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Deny by default: no env, args, preopens, sockets or name lookups; stdout discarded.
        let wasi = WasiCtxBuilder::new().stderr(stderr.clone()).build();
        let max_cpu_ticks = (scope.limits.cpu_time.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
        CallState {
            wasi,
            table: ResourceTable::new(),
            stderr,
            scope,
            io,
            op: op.to_string(),
            cpu_ticks: 0,
            max_cpu_ticks,
            http_requests: 0,
            log_lines: 0,
        }
    }

    /// The tail of what the guest wrote to stderr, as text.
    pub fn stderr_tail(&self) -> String {
        let bytes = self.stderr.contents();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// Called by the epoch deadline: counts CPU ticks, traps when over budget, and otherwise
    /// yields to tokio so other tasks keep running next to a busy guest.
    pub fn on_epoch(mut ctx: StoreContextMut<'_, CallState>) -> wasmtime::Result<UpdateDeadline> {
        let state = ctx.data_mut();
        state.cpu_ticks += 1;
        if state.cpu_ticks > state.max_cpu_ticks {
            return Err(wasmtime::Error::new(CpuExceededTrap));
        }
        Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl ResourceLimiter for CallState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.scope.limits.memory_bytes {
            return Err(wasmtime::Error::new(MemoryExceededTrap { requested: desired as u64 }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl types::Host for CallState {}

/// Headers a connector may not set: the host derives them from the URL and body, and letting a
/// guest set `Host` would let it reach other virtual hosts on a granted address.
fn is_forbidden_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "host" | "connection" | "content-length" | "transfer-encoding" | "te" | "upgrade" | "keep-alive"
    ) || n.starts_with("proxy-")
}

fn has_source<'a, E: std::error::Error + 'static>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a E> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        cur = err.source();
    }
    None
}

/// The error text of a reqwest error without its URL (query strings may carry tokens).
fn describe_reqwest(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut msg = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(s) = cur {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        cur = s.source();
    }
    msg
}

impl http::Host for CallState {
    async fn send(
        &mut self,
        request: http::Request,
    ) -> wasmtime::Result<Result<http::Response, http::HttpError>> {
        use http::HttpError;
        let limits = self.scope.limits.clone();
        self.http_requests += 1;
        if self.http_requests > limits.http_max_requests {
            return Ok(Err(HttpError::InvalidRequest(format!(
                "more than {} http requests in one call",
                limits.http_max_requests
            ))));
        }
        let url = match url::Url::parse(&request.url) {
            Ok(u) => u,
            Err(e) => return Ok(Err(HttpError::InvalidRequest(format!("bad url: {e}")))),
        };
        if let Err(denial) = self.scope.grants.check(&url) {
            return Err(wasmtime::Error::new(HostDeniedTrap(denial)));
        }
        if let Some(rate) = &self.scope.rate {
            rate.acquire().await;
        }
        let method = match request.method.to_ascii_uppercase().as_str() {
            m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => {
                reqwest::Method::from_bytes(m.as_bytes()).unwrap_or(reqwest::Method::GET)
            }
            other => return Ok(Err(HttpError::InvalidRequest(format!("unsupported method {other:?}")))),
        };
        let client =
            if self.scope.grants.allow_private() { &self.io.http.private } else { &self.io.http.public };
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &request.headers {
            if is_forbidden_header(name) {
                continue;
            }
            let name = match reqwest::header::HeaderName::from_bytes(name.as_bytes()) {
                Ok(n) => n,
                Err(_) => return Ok(Err(HttpError::InvalidRequest(format!("bad header name {name:?}")))),
            };
            let value = match reqwest::header::HeaderValue::from_str(value) {
                Ok(v) => v,
                Err(_) => return Ok(Err(HttpError::InvalidRequest(format!("bad value for header {name}")))),
            };
            headers.append(name, value);
        }
        let timeout = request
            .timeout_ms
            .map(|ms| std::time::Duration::from_millis(u64::from(ms)).min(limits.http_timeout))
            .unwrap_or(limits.http_timeout);
        let mut builder = client.request(method.clone(), url.clone()).headers(headers).timeout(timeout);
        if let Some(body) = request.body {
            builder = builder.body(body);
        }
        let started = Instant::now();
        let host = url.host_str().unwrap_or_default().to_string();
        let mut response = match builder.send().await {
            Ok(r) => r,
            Err(e) => {
                if let Some(p) = has_source::<PrivateResolution>(&e) {
                    let shown = format!("{}://{}{}", url.scheme(), host, url.path());
                    return Err(wasmtime::Error::new(HostDeniedTrap(Denial {
                        url: shown,
                        reason: p.to_string(),
                    })));
                }
                let timed_out = e.is_timeout();
                let connect = e.is_connect();
                let msg = describe_reqwest(e);
                tracing::debug!(connector = %self.scope.connector, %method, %host, error = %msg, "outbound request failed");
                return Ok(Err(if timed_out {
                    HttpError::Timeout(msg)
                } else if connect {
                    HttpError::Connect(msg)
                } else {
                    HttpError::Protocol(msg)
                }));
            }
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let max = limits.http_max_response_bytes;
        if response.content_length().is_some_and(|len| len > max) {
            return Ok(Err(HttpError::TooLarge(format!("response body larger than {max} bytes"))));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if (body.len() + chunk.len()) as u64 > max {
                        return Ok(Err(HttpError::TooLarge(format!(
                            "response body larger than {max} bytes"
                        ))));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    let timed_out = e.is_timeout();
                    let msg = describe_reqwest(e);
                    return Ok(Err(if timed_out {
                        HttpError::Timeout(msg)
                    } else {
                        HttpError::Connect(msg)
                    }));
                }
            }
        }
        tracing::debug!(
            connector = %self.scope.connector, %method, %host, status,
            bytes = body.len(), elapsed_ms = started.elapsed().as_millis() as u64, "outbound request"
        );
        Ok(Ok(http::Response { status, headers, body }))
    }
}

impl log::Host for CallState {
    async fn log(&mut self, level: log::Level, message: String) -> wasmtime::Result<()> {
        let limits = &self.scope.limits;
        self.log_lines += 1;
        if self.log_lines > limits.log_lines {
            if self.log_lines == limits.log_lines + 1 {
                tracing::warn!(connector = %self.scope.connector, op = %self.op, "connector log limit reached; further lines of this call dropped");
            }
            return Ok(());
        }
        let mut message = message;
        if message.len() > limits.log_line_bytes {
            let mut cut = limits.log_line_bytes;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let (connector, op) = (&*self.scope.connector, self.op.as_str());
        match level {
            log::Level::Trace => tracing::trace!(target: "qiao::connector", connector, op, "{message}"),
            log::Level::Debug => tracing::debug!(target: "qiao::connector", connector, op, "{message}"),
            log::Level::Info => tracing::info!(target: "qiao::connector", connector, op, "{message}"),
            log::Level::Warn => tracing::warn!(target: "qiao::connector", connector, op, "{message}"),
            log::Level::Error => tracing::error!(target: "qiao::connector", connector, op, "{message}"),
        }
        Ok(())
    }
}

impl kv::Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        if key.len() > self.scope.limits.kv_key_bytes {
            return Ok(None);
        }
        self.io
            .kv
            .get(&self.scope.kv_scope, &key)
            .await
            .map_err(|e| wasmtime::Error::new(HostFailureTrap(e.to_string())))
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let limits = &self.scope.limits;
        if key.is_empty() || key.len() > limits.kv_key_bytes {
            return Ok(Err(format!("kv key must be 1 to {} bytes", limits.kv_key_bytes)));
        }
        if value.len() > limits.kv_value_bytes {
            return Ok(Err(format!("kv value larger than {} bytes", limits.kv_value_bytes)));
        }
        self.io
            .kv
            .set(&self.scope.kv_scope, &key, value)
            .await
            .map(Ok)
            .map_err(|e| wasmtime::Error::new(HostFailureTrap(e.to_string())))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<()> {
        self.io
            .kv
            .delete(&self.scope.kv_scope, &key)
            .await
            .map_err(|e| wasmtime::Error::new(HostFailureTrap(e.to_string())))
    }
}

impl clock::Host for CallState {
    async fn now_ms(&mut self) -> wasmtime::Result<u64> {
        Ok(self.io.clock.now_ms())
    }
}
