//! A loaded connector and its connections. Every call runs in a fresh store and instance
//! (a few microseconds with the pooling allocator), so no state leaks between calls and a
//! guest that trapped is simply dropped.

use std::sync::Arc;

use qiao_contract::{ActionOutput, Batch, ConnectorInfo, OperationKind, WebhookResult};
use serde::Deserialize;
use serde_json::Value;
use wasmtime::Store;

use crate::bindings::{ConnectorPre, handler};
use crate::convert;
use crate::error::{CallError, ConnectError, LoadError};
use crate::grants::Grants;
use crate::limits::{Limits, LimitsOverride};
use crate::rate::{RateLimiter, RateSpec};
use crate::runtime::RuntimeInner;
use crate::state::{
    CallScope, CallState, CpuExceededTrap, HostDeniedTrap, HostFailureTrap, MemoryExceededTrap,
};

/// What an admin decides for one connector: limits and outbound hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorPolicy {
    /// Changes to the runtime's default limits.
    #[serde(default)]
    pub limits: LimitsOverride,
    /// Host patterns granted (templated from the connection config). `None` grants what the
    /// connector asks for in `describe().hosts`.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    /// Whether private, loopback and link-local addresses may be reached (on-premise ERPs).
    #[serde(default)]
    pub allow_private: bool,
}

struct ConnectorInner {
    runtime: Arc<RuntimeInner>,
    pre: ConnectorPre<CallState>,
    info: ConnectorInfo,
    id: Arc<str>,
    sha256: String,
    source: String,
    limits: Arc<Limits>,
    policy: ConnectorPolicy,
    from_cache: bool,
}

/// A compiled, pre-linked, described connector. Cheap to clone.
#[derive(Clone)]
pub struct Connector {
    inner: Arc<ConnectorInner>,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.inner.info.id)
            .field("version", &self.inner.info.version)
            .field("source", &self.inner.source)
            .finish_non_exhaustive()
    }
}

/// The result of one store's call, before classification.
type Raw<T> = Result<wasmtime::Result<T>, tokio::time::error::Elapsed>;

impl Connector {
    pub(crate) async fn describe_and_build(
        runtime: Arc<RuntimeInner>,
        pre: ConnectorPre<CallState>,
        source_name: &str,
        sha256: String,
        limits: Limits,
        policy: ConnectorPolicy,
        from_cache: bool,
    ) -> Result<Connector, LoadError> {
        let placeholder = ConnectorInfo {
            id: source_name.to_string(),
            version: String::new(),
            title: String::new(),
            description: String::new(),
            config_schema: Value::Null,
            operations: Vec::new(),
            hosts: Vec::new(),
            webhook: false,
        };
        let mut connector = Connector {
            inner: Arc::new(ConnectorInner {
                runtime,
                pre,
                id: Arc::from(source_name),
                info: placeholder,
                sha256,
                source: source_name.to_string(),
                limits: Arc::new(limits),
                policy,
                from_cache,
            }),
        };
        let describe_err = |error: CallError| LoadError::Describe {
            source_name: source_name.to_string(),
            error: Box::new(error),
        };
        let scope = connector.scope(Arc::from(""), Grants::none());
        let raw_info = connector
            .run(scope, "describe", async |store, h| h.call_describe(store).await)
            .await
            .map_err(describe_err)?;
        let info = convert::info(raw_info).map_err(|m| describe_err(connector.malformed("describe", m)))?;
        info.check().map_err(|problems| LoadError::BadDescription {
            source_name: source_name.to_string(),
            problems,
        })?;
        let inner = Arc::get_mut(&mut connector.inner).ok_or_else(|| LoadError::Link {
            source_name: source_name.to_string(),
            message: "connector handle shared during load".into(),
        })?;
        inner.id = Arc::from(info.id.as_str());
        inner.info = info;
        tracing::debug!(connector = %inner.id, version = %inner.info.version, source = %inner.source, cached = from_cache, "connector loaded");
        Ok(connector)
    }

    /// What the connector said about itself.
    pub fn info(&self) -> &ConnectorInfo {
        &self.inner.info
    }

    /// The connector id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// sha256 of the component bytes, hex.
    pub fn sha256(&self) -> &str {
        &self.inner.sha256
    }

    /// Where it was loaded from.
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn was_cached(&self) -> bool {
        self.inner.from_cache
    }

    /// Checks a connection config with the connector's `validate-config` (no network).
    pub async fn validate_config(&self, config: &Value) -> Result<(), CallError> {
        let config = config.to_string();
        let scope = self.scope(Arc::from(""), Grants::none());
        self.run(scope, "validate-config", async |store, h| h.call_validate_config(store, &config).await)
            .await?
            .map_err(|e| CallError::Connector(convert::error(e)))
    }

    /// Binds the connector to a connection config. `kv_scope` partitions its `kv` state (use
    /// one per connection). The granted hosts are the policy's patterns, or the connector's
    /// own `hosts`, templated from `config`.
    pub fn connect(&self, kv_scope: &str, config: &Value) -> Result<Connection, ConnectError> {
        if !config.is_object() {
            return Err(ConnectError::NotAnObject { connector: self.id().to_string() });
        }
        let templates = self.inner.policy.hosts.as_ref().unwrap_or(&self.inner.info.hosts);
        let (grants, unresolved) = Grants::resolve(templates, config, self.inner.policy.allow_private)
            .map_err(|cause| ConnectError::Pattern { connector: self.id().to_string(), cause })?;
        if !unresolved.is_empty() {
            tracing::debug!(connector = %self.id(), ?unresolved, "host templates without a config value grant nothing");
        }
        Ok(Connection {
            connector: self.clone(),
            scope: self.scope(Arc::from(kv_scope), grants),
            config: Arc::new(config.to_string()),
        })
    }

    fn scope(&self, kv_scope: Arc<str>, grants: Grants) -> Arc<CallScope> {
        Arc::new(CallScope {
            connector: self.inner.id.clone(),
            kv_scope,
            grants: Arc::new(grants),
            limits: self.inner.limits.clone(),
            rate: None,
        })
    }

    fn store(&self, scope: Arc<CallScope>, op: &str) -> Store<CallState> {
        let runtime = &self.inner.runtime;
        let mut store = Store::new(&runtime.engine, CallState::new(scope, runtime.io.clone(), op));
        store.limiter(|s| s);
        store.epoch_deadline_callback(CallState::on_epoch);
        store.set_epoch_deadline(1);
        store
    }

    /// Runs `f` on a fresh instance in a fresh store for `scope`, under the call timeout, and
    /// turns the outcome into a value or the matching [`CallError`].
    async fn run<R>(
        &self,
        scope: Arc<CallScope>,
        op: &str,
        f: impl AsyncFnOnce(&mut Store<CallState>, &handler::Guest) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        let mut store = self.store(scope, op);
        let pre = &self.inner.pre;
        let raw = tokio::time::timeout(self.inner.limits.call_timeout, async {
            let instance = pre.instantiate_async(&mut store).await?;
            f(&mut store, instance.qiao_connector_handler()).await
        })
        .await;
        self.settle(raw, &store)
    }

    fn check_op(&self, op: &str, kind: OperationKind) -> Result<(), CallError> {
        match self.inner.info.operation(op) {
            Some(o) if o.kind == kind => Ok(()),
            _ => Err(CallError::UnknownOperation {
                connector: self.id().to_string(),
                op: op.to_string(),
                kind,
                available: self
                    .inner
                    .info
                    .operations
                    .iter()
                    .filter(|o| o.kind == kind)
                    .map(|o| o.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    fn malformed(&self, op: &str, m: convert::Malformed) -> CallError {
        CallError::MalformedOutput { connector: self.id().to_string(), op: op.to_string(), detail: m.0 }
    }

    /// Turns what came out of a store into a value or the matching [`CallError`].
    fn settle<T>(&self, raw: Raw<T>, store: &Store<CallState>) -> Result<T, CallError> {
        let err = match raw {
            Ok(Ok(value)) => return Ok(value),
            Err(_elapsed) => None,
            Ok(Err(e)) => Some(e),
        };
        // Named only on the way to an error: a successful call allocates nothing here.
        let state = store.data();
        let connector = self.id().to_string();
        let op = state.op.clone();
        let Some(err) = err else {
            return Err(CallError::Timeout { connector, op, timeout: self.inner.limits.call_timeout });
        };
        if let Some(HostDeniedTrap(denial)) = err.downcast_ref::<HostDeniedTrap>() {
            return Err(CallError::HostDenied { connector, denial: denial.to_string() });
        }
        if err.downcast_ref::<CpuExceededTrap>().is_some() {
            return Err(CallError::CpuBudgetExceeded { connector, op, budget: self.inner.limits.cpu_time });
        }
        if let Some(m) = err.downcast_ref::<MemoryExceededTrap>() {
            return Err(CallError::MemoryExceeded {
                connector,
                op,
                limit_bytes: self.inner.limits.memory_bytes,
                requested_bytes: m.requested,
            });
        }
        if let Some(HostFailureTrap(message)) = err.downcast_ref::<HostFailureTrap>() {
            return Err(CallError::Host { connector, message: message.clone() });
        }
        if err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() {
            return Err(CallError::Host { connector, message: format!("{err}") });
        }
        let message = match err.downcast_ref::<wasmtime::Trap>() {
            Some(trap) => format!("wasm trap: {trap}"),
            None => format!("{err}"),
        };
        Err(CallError::Trap { connector, op, message, stderr: state.stderr_tail() })
    }
}

/// A connector bound to one connection config: the unit flows call.
#[derive(Clone)]
pub struct Connection {
    connector: Connector,
    scope: Arc<CallScope>,
    config: Arc<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds secrets: never print it.
        f.debug_struct("Connection")
            .field("connector", &self.connector.id())
            .field("kv_scope", &self.scope.kv_scope)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// The connector behind this connection.
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The hosts this connection may reach.
    pub fn grants(&self) -> &Grants {
        &self.scope.grants
    }

    /// Limits this connection's outbound HTTP requests to `spec`. Connections with the same
    /// connector and config share one limiter (across flows), and a `rate-limited` answer with
    /// a retry-after pauses it for everyone.
    pub fn with_rate_limit(mut self, spec: RateSpec) -> Connection {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.config.as_bytes());
        let key =
            format!("{}@{}:{}", self.connector.id(), self.connector.info().version, hex::encode(digest));
        let limiter = self.connector.inner.runtime.rate_limiters.get(key, spec);
        let s = &self.scope;
        self.scope = Arc::new(CallScope {
            connector: s.connector.clone(),
            kv_scope: s.kv_scope.clone(),
            grants: s.grants.clone(),
            limits: s.limits.clone(),
            rate: Some(limiter),
        });
        self
    }

    /// The limiter of this connection, if it has a rate limit.
    pub fn rate_limiter(&self) -> Option<&Arc<RateLimiter>> {
        self.scope.rate.as_ref()
    }

    /// A throttle answer pauses the connection's limiter for its retry-after.
    fn note_throttle<T>(&self, result: &Result<T, CallError>) {
        if let (Some(rate), Err(e)) = (&self.scope.rate, result)
            && let Some(ms) = e.connector_error().and_then(|c| c.retry_after_ms())
        {
            rate.pause(std::time::Duration::from_millis(ms));
        }
    }

    /// Checks this connection's config with `validate-config`.
    pub async fn validate(&self) -> Result<(), CallError> {
        let config: Value = serde_json::from_str(&self.config).unwrap_or(Value::Null);
        self.connector.validate_config(&config).await
    }

    /// Runs a trigger operation: one page of records.
    pub async fn poll(&self, op: &str, params: &Value, cursor: Option<&str>) -> Result<Batch, CallError> {
        self.connector.check_op(op, OperationKind::Trigger)?;
        let params = params.to_string();
        let batch = self
            .connector
            .run(self.scope.clone(), op, async |store, h| {
                h.call_poll(store, op, &self.config, &params, cursor).await
            })
            .await?
            .map_err(|e| CallError::Connector(convert::error(e)));
        self.note_throttle(&batch);
        convert::batch(batch?).map_err(|m| self.connector.malformed(op, m))
    }

    /// Runs an action operation on one input.
    pub async fn invoke(
        &self,
        op: &str,
        input: &Value,
        idempotency_key: &str,
    ) -> Result<ActionOutput, CallError> {
        self.connector.check_op(op, OperationKind::Action)?;
        let input = input.to_string();
        let output = self
            .connector
            .run(self.scope.clone(), op, async |store, h| {
                h.call_invoke(store, op, &self.config, &input, idempotency_key).await
            })
            .await?
            .map_err(|e| CallError::Connector(convert::error(e)));
        self.note_throttle(&output);
        convert::action_output(output?).map_err(|m| self.connector.malformed(op, m))
    }

    /// Verifies and decodes a webhook delivery.
    pub async fn verify_webhook(
        &self,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<WebhookResult, CallError> {
        if !self.connector.info().webhook {
            return Err(CallError::UnknownOperation {
                connector: self.connector.id().to_string(),
                op: "verify-webhook".into(),
                kind: OperationKind::Trigger,
                available: "none (the connector does not accept webhooks)".into(),
            });
        }
        let headers = headers.to_vec();
        let result = self
            .connector
            .run(self.scope.clone(), "verify-webhook", async |store, h| {
                h.call_verify_webhook(store, &self.config, &headers, body).await
            })
            .await?
            .map_err(|e| CallError::Connector(convert::error(e)))?;
        convert::webhook(result).map_err(|m| self.connector.malformed("verify-webhook", m))
    }
}
