//! Serving a fake: the [`System`] trait, the shared [`Ctx`], the fault layer and [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::admin::{ADMIN_PREFIX, admin_routes};
use crate::{Clock, Faults, Journal, JournalEntry};

/// What every fake of one system shares with the kit: its clock, its armed faults and its
/// journal. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The sandbox clock.
    pub clock: Clock,
    /// Faults armed for this system.
    pub faults: Arc<Faults>,
    /// Requests this system answered.
    pub journal: Arc<Journal>,
}

impl Ctx {
    /// A context on `clock` with nothing armed.
    pub fn new(clock: Clock) -> Self {
        Self { clock, faults: Arc::default(), journal: Arc::default() }
    }
}

/// A protocol fake.
pub trait System: Send + Sync + 'static {
    /// Short name: `jira`, `dingtalk`, `sap`, `kingdee`, `yonyou`.
    fn name(&self) -> &'static str;
    /// The system's own routes, state applied.
    fn routes(self: Arc<Self>) -> Router;
    /// The system's own answer when it throttles a caller (429 + Retry-After for Jira, an error
    /// code in a 200 body for DingTalk, ...).
    fn throttled(&self) -> Response;
    /// The system's own answer for a server error with `status`.
    fn server_error(&self, status: StatusCode) -> Response;
    /// A JSON view of what the system holds now (what was written to it), for
    /// `GET /_sandbox/state` and for tests.
    fn snapshot(&self) -> Value;
    /// Demo credentials to print, as (name, value) pairs.
    fn credentials(&self) -> Vec<(&'static str, String)>;
}

/// A fake being served.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`.
    pub url: String,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `system` on `addr` (port 0 picks a free one) behind the fault layer, with the admin
/// routes under [`ADMIN_PREFIX`]. The server stops when the returned [`Running`] is dropped.
pub async fn start(system: Arc<dyn System>, ctx: Ctx, addr: SocketAddr) -> Result<Running> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {} fake to {addr}", system.name()))?;
    let addr = listener.local_addr()?;
    let layer_state = (system.clone(), ctx.clone());
    let router = system
        .clone()
        .routes()
        .layer(middleware::from_fn_with_state(layer_state, fault_layer))
        .nest(ADMIN_PREFIX, admin_routes(system, ctx));
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(Running { addr, url: format!("http://{addr}"), task })
}

/// Applies the armed generic faults to one request and journals it.
async fn fault_layer(
    State((system, ctx)): State<(Arc<dyn System>, Ctx)>,
    req: Request,
    next: Next,
) -> Response {
    let at_ms = ctx.clock.now_ms();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or_default().to_string();
    let faults = ctx.faults.take_request();
    if faults.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.delay_ms)).await;
    }
    let (resp, fault) = if faults.reset {
        (reset_response(), Some("reset"))
    } else if let Some(status) = faults.fail {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (system.server_error(status), Some("fail"))
    } else if faults.throttle {
        (system.throttled(), Some("throttle"))
    } else {
        (next.run(req).await, (faults.delay_ms > 0).then_some("slow"))
    };
    let status = if faults.reset { 0 } else { resp.status().as_u16() };
    ctx.journal.push(JournalEntry { at_ms, method, path, query, status, fault });
    resp
}

/// A response whose body fails at once: the server drops the connection without completing
/// the answer, which the client sees as a reset connection.
fn reset_response() -> Response {
    let failing = futures::stream::once(async {
        Err::<axum::body::Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected reset",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from_stream(failing))
        .unwrap_or_default()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use axum::routing::get;
    use serde_json::json;

    struct Echo;

    impl System for Echo {
        fn name(&self) -> &'static str {
            "echo"
        }
        fn routes(self: Arc<Self>) -> Router {
            Router::new().route("/hello", get(|| async { "你好" }))
        }
        fn throttled(&self) -> Response {
            Response::builder().status(429).header("retry-after", "7").body(Body::empty()).unwrap()
        }
        fn server_error(&self, status: StatusCode) -> Response {
            Response::builder().status(status).body(Body::from("boom")).unwrap()
        }
        fn snapshot(&self) -> Value {
            json!({"greetings": 1})
        }
        fn credentials(&self) -> Vec<(&'static str, String)> {
            vec![("user", "demo".into())]
        }
    }

    #[tokio::test]
    async fn faults_apply_in_order_and_are_journaled() {
        let ctx = Ctx::new(Clock::new());
        let running = start(Arc::new(Echo), ctx.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let client = reqwest::Client::new();
        let url = format!("{}/hello", running.url);
        let plan = json!({"throttle": 1, "fail": {"count": 1, "status": 503}, "reset": 1});
        let armed =
            client.post(format!("{}/_sandbox/faults", running.url)).body(plan.to_string()).send().await;
        assert_eq!(armed.unwrap().status(), 200);

        let reset = client.get(&url).send().await;
        let reset_failed = match reset {
            Err(_) => true,
            Ok(resp) => resp.text().await.is_err(),
        };
        assert!(reset_failed, "a reset connection must not yield a complete answer");
        assert_eq!(client.get(&url).send().await.unwrap().status(), 503);
        let throttled = client.get(&url).send().await.unwrap();
        assert_eq!(throttled.status(), 429);
        assert_eq!(throttled.headers()["retry-after"], "7");
        assert_eq!(client.get(&url).send().await.unwrap().text().await.unwrap(), "你好");

        let statuses: Vec<_> =
            ctx.journal.matching("GET", "/hello").iter().map(|e| (e.status, e.fault)).collect();
        assert_eq!(
            statuses,
            vec![(0, Some("reset")), (503, Some("fail")), (429, Some("throttle")), (200, None)]
        );
        let bad = client.post(format!("{}/_sandbox/faults", running.url)).body(r#"{"nope":1}"#).send().await;
        assert_eq!(bad.unwrap().status(), 400);
        let state = client.get(format!("{}/_sandbox/state", running.url)).send().await.unwrap();
        let state: Value = serde_json::from_str(&state.text().await.unwrap()).unwrap();
        assert_eq!(state, json!({"greetings": 1}));
    }
}
