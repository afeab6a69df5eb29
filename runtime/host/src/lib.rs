//! The sandboxed WebAssembly host for qiao connectors.
//!
//! A connector is a component built against `wit/connector.wit`. [`Runtime`] owns the one
//! wasmtime engine (pooling allocator, epoch interruption, trimmed features), the linker with
//! the host imports (`http`, `log`, `kv`, `clock`, and WASI with everything denied), the shared
//! outbound HTTP clients and the on-disk compile cache. [`Runtime::load_file`] turns a `.wasm`
//! file into a [`Connector`]: compiled (or taken from the cache), pre-linked once, described.
//! [`Connector::connect`] binds it to one connection config, resolving the granted outbound
//! hosts, and every call on the resulting [`Connection`] runs in a fresh store and instance
//! under the connector's [`Limits`].
//!
//! Whatever a plugin does (loop, allocate, trap, call a host it was not granted, return
//! garbage), the call ends with a typed [`CallError`] and the runtime keeps serving.
//!
//! This is the only crate that depends on wasmtime. It knows nothing of flows or storage:
//! connector state goes through the [`KvStore`] trait, time through [`Clock`].

mod bindings;
mod cache;
mod connector;
mod convert;
mod error;
mod grants;
mod io;
mod limits;
mod rate;
mod runtime;
mod state;

pub use cache::CompileCache;
pub use connector::{Connection, Connector, ConnectorPolicy};
pub use error::{CallError, ConnectError, LoadError, RuntimeError};
pub use grants::{Grants, HostPattern, InvalidPattern};
pub use io::{Clock, KvError, KvFuture, KvStore, MemoryKv, SystemClock};
pub use limits::{Limits, LimitsOverride};
pub use rate::{RateLimiter, RateSpec};
pub use runtime::{Runtime, RuntimeConfig};
