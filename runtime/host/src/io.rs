//! The host's side of the imports: connector state (`kv`), time (`clock`) and the outbound
//! HTTP clients. Each has a real implementation and one for tests.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::grants::is_private;

/// A boxed future returned by [`KvStore`] methods.
pub type KvFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, KvError>> + Send + 'a>>;

/// The state backend failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("connector state store failed: {0}")]
pub struct KvError(pub String);

/// Connector key-value state, partitioned by scope (one scope per connection).
pub trait KvStore: Send + Sync {
    /// The value of `key` in `scope`.
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>>;
    /// Stores `value` under `key` in `scope`.
    fn set<'a>(&'a self, scope: &'a str, key: &'a str, value: Vec<u8>) -> KvFuture<'a, ()>;
    /// Removes `key` from `scope`.
    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, ()>;
}

type KvMap = HashMap<(String, String), Vec<u8>>;

/// An in-memory [`KvStore`]: for tests, and for one-off runs that need no persistence.
#[derive(Debug, Default)]
pub struct MemoryKv {
    map: Mutex<KvMap>,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn locked(&self) -> Result<std::sync::MutexGuard<'_, KvMap>, KvError> {
        self.map.lock().map_err(|_| KvError("memory kv lock poisoned".into()))
    }

    /// Every key in `scope`, sorted (for tests and inspection).
    pub fn keys(&self, scope: &str) -> Vec<String> {
        let mut keys: Vec<String> = match self.locked() {
            Ok(m) => m.keys().filter(|(s, _)| s == scope).map(|(_, k)| k.clone()).collect(),
            Err(_) => Vec::new(),
        };
        keys.sort();
        keys
    }
}

impl KvStore for MemoryKv {
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { Ok(self.locked()?.get(&(scope.to_string(), key.to_string())).cloned()) })
    }

    fn set<'a>(&'a self, scope: &'a str, key: &'a str, value: Vec<u8>) -> KvFuture<'a, ()> {
        Box::pin(async move {
            self.locked()?.insert((scope.to_string(), key.to_string()), value);
            Ok(())
        })
    }

    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, ()> {
        Box::pin(async move {
            self.locked()?.remove(&(scope.to_string(), key.to_string()));
            Ok(())
        })
    }
}

/// Time as connectors see it through the `clock` import.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or_default()
    }
}

/// Marker error: a name resolved only to addresses the grant does not allow.
#[derive(Debug, thiserror::Error)]
#[error("{name} resolves only to private or loopback addresses and private network access is not granted")]
pub(crate) struct PrivateResolution {
    pub name: String,
}

/// A DNS resolver that drops private, loopback and link-local addresses, so a granted name
/// cannot be pointed at the internal network (DNS rebinding).
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| !is_private(a.ip())).collect();
            if public.is_empty() {
                return Err(
                    Box::new(PrivateResolution { name: host }) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The two shared outbound clients: one that may reach only public addresses, one for
/// connections granted private network access. Both keep connections alive and never follow
/// redirects (a redirect could leave the granted hosts).
///
/// Neither takes a proxy from the environment (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`),
/// which reqwest does by default: through a proxy the target's name is resolved by the proxy,
/// out of reach of [`PublicOnlyResolver`], so a connector without private network access
/// could reach the internal network; and a proxy on a private address would fail every
/// request of the public client. Connections go direct.
pub(crate) struct HttpClients {
    pub public: reqwest::Client,
    pub private: reqwest::Client,
}

impl HttpClients {
    pub fn new(connect_timeout: Duration) -> Result<Self, reqwest::Error> {
        let base = || {
            reqwest::Client::builder()
                .connect_timeout(connect_timeout)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .pool_idle_timeout(Duration::from_secs(90))
                .user_agent(concat!("qiao/", env!("CARGO_PKG_VERSION")))
        };
        Ok(HttpClients {
            public: base().dns_resolver(Arc::new(PublicOnlyResolver)).build()?,
            private: base().build()?,
        })
    }
}
