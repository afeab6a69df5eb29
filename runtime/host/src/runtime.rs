//! The runtime: one wasmtime engine, one linker, the shared host services and the compile
//! cache. Cheap to clone; every [`Connector`] it loads keeps it alive.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::bindings;
use crate::cache::CompileCache;
use crate::connector::{Connector, ConnectorPolicy};
use crate::error::{LoadError, RuntimeError};
use crate::io::{Clock, HttpClients, KvStore, MemoryKv, SystemClock};
use crate::limits::Limits;
use crate::state::{CallState, EPOCH_TICK, HostIo};

/// How a [`Runtime`] is set up. `Default` gives an in-memory kv store, the system clock, no
/// compile cache and the default [`Limits`].
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// Limits every connector gets unless its policy overrides them.
    pub limits: Limits,
    /// Instances that can be alive at once (size of the instance pool).
    pub max_instances: u32,
    /// Highest memory limit a connector policy may set; sizes the pool's memory slots.
    pub max_memory_bytes: u64,
    /// Use the pooling allocator (falls back to on-demand allocation if the machine refuses
    /// the virtual memory reservation).
    pub pooling: bool,
    /// Connector state.
    pub kv: Arc<dyn KvStore>,
    /// Connector time.
    pub clock: Arc<dyn Clock>,
    /// Connect timeout of the outbound HTTP clients.
    pub http_connect_timeout: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            limits: Limits::default(),
            max_instances: 1000,
            max_memory_bytes: 1 << 30,
            pooling: true,
            kv: Arc::new(MemoryKv::new()),
            clock: Arc::new(SystemClock),
            http_connect_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) struct RuntimeInner {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    pub io: Arc<HostIo>,
    pub cache: Option<CompileCache>,
    pub limits: Limits,
    pub max_memory_bytes: u64,
    pub pooling: bool,
    pub rate_limiters: crate::rate::RateLimiters,
}

/// Loads connectors and runs their calls in the sandbox.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<RuntimeInner>,
}

fn engine_config(pooling: Option<&RuntimeConfig>) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // Profiling builds only: a perf map names the connectors' compiled functions in `perf`.
    #[cfg(feature = "profiling")]
    if std::env::var_os("QIAO_WASM_PERFMAP").is_some() {
        cfg.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if let Some(rc) = pooling {
        let n = rc.max_instances.max(1);
        let mut p = PoolingAllocationConfig::default();
        p.total_component_instances(n)
            .total_core_instances(n.saturating_mul(8))
            .total_memories(n.saturating_mul(2))
            .total_tables(n.saturating_mul(4))
            .total_stacks(n)
            .max_memory_size(rc.max_memory_bytes as usize)
            // Reuse a slot by resetting only the pages the last call dirtied (Linux >= 6.7),
            // instead of unmapping it: this keeps instantiation at a few microseconds.
            .linear_memory_keep_resident(2 << 20)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(p));
    }
    cfg
}

impl Runtime {
    /// Builds the engine, links the host imports and starts the epoch ticker.
    pub fn new(config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let (engine, pooling) = if config.pooling {
            match Engine::new(&engine_config(Some(&config))) {
                Ok(e) => (e, true),
                Err(e) => {
                    tracing::warn!(error = %e, "pooling allocator unavailable; using on-demand instance allocation");
                    (
                        Engine::new(&engine_config(None)).map_err(|e| RuntimeError::Engine(e.to_string()))?,
                        false,
                    )
                }
            }
        } else {
            (Engine::new(&engine_config(None)).map_err(|e| RuntimeError::Engine(e.to_string()))?, false)
        };
        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| RuntimeError::Linker(e.to_string()))?;
        bindings::Connector::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| RuntimeError::Linker(e.to_string()))?;
        let http = HttpClients::new(config.http_connect_timeout)
            .map_err(|e| RuntimeError::HttpClient(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(
                CompileCache::open(dir).map_err(|cause| RuntimeError::Cache { path: dir.clone(), cause })?,
            ),
            None => None,
        };
        start_epoch_ticker(&engine)
            .map_err(|e| RuntimeError::Engine(format!("failed to start the epoch ticker: {e}")))?;
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                io: Arc::new(HostIo { http, kv: config.kv, clock: config.clock }),
                cache,
                limits: config.limits,
                max_memory_bytes: config.max_memory_bytes,
                pooling,
                rate_limiters: Default::default(),
            }),
        })
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The compile cache, if configured.
    pub fn cache(&self) -> Option<&CompileCache> {
        self.inner.cache.as_ref()
    }

    /// Loads a connector component from a file.
    pub async fn load_file(&self, path: &Path, policy: ConnectorPolicy) -> Result<Connector, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|cause| LoadError::Read { path: path.to_path_buf(), cause })?;
        self.load_bytes(&path.display().to_string(), bytes, policy).await
    }

    /// Loads a connector component from memory; `source_name` names it in errors.
    pub async fn load_bytes(
        &self,
        source_name: &str,
        wasm: Vec<u8>,
        policy: ConnectorPolicy,
    ) -> Result<Connector, LoadError> {
        let sha256 = hex::encode(Sha256::digest(&wasm));
        let limits = self.inner.limits.with(&policy.limits);
        if limits.memory_bytes > self.inner.max_memory_bytes {
            return Err(LoadError::Policy {
                source_name: source_name.to_string(),
                message: format!(
                    "memory limit {} bytes is above the runtime maximum of {} bytes",
                    limits.memory_bytes, self.inner.max_memory_bytes
                ),
            });
        }
        let inner = self.inner.clone();
        let sha = sha256.clone();
        let compiled = tokio::task::spawn_blocking(move || match &inner.cache {
            Some(cache) => cache.load_or_compile(&inner.engine, &wasm, &sha),
            None => Component::new(&inner.engine, &wasm).map(|c| (c, false)),
        })
        .await
        .map_err(|e| LoadError::Compile { source_name: source_name.to_string(), message: e.to_string() })?;
        let (component, from_cache) = compiled.map_err(|e| LoadError::Compile {
            source_name: source_name.to_string(),
            message: one_line(&format!("{e:#}")),
        })?;
        let pre =
            self.inner.linker.instantiate_pre(&component).and_then(bindings::ConnectorPre::new).map_err(
                |e| LoadError::Link {
                    source_name: source_name.to_string(),
                    message: one_line(&format!("{e:#}")),
                },
            )?;
        Connector::describe_and_build(
            self.inner.clone(),
            pre,
            source_name,
            sha256,
            limits,
            policy,
            from_cache,
        )
        .await
    }
}

/// Ticks the engine's epoch from an OS thread (not a tokio task: it must tick even when every
/// worker is busy running guests). The thread ends when the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new().name("qiao-epoch".into()).spawn(move || {
        loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        }
    })?;
    Ok(())
}

/// wasmtime's multi-line messages on one line, for logs and terminals.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}
