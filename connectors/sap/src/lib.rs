//! The SAP S/4HANA connector (`sap`): OData v2 (SAP Gateway) and v4 (RAP) services.
//!
//! The trigger `entities-changed` emits the entities of one entity set whose change
//! timestamp moved, following server-driven paging; the actions `get`, `query`, `create` and
//! `update` read and write any entity set, with the CSRF handshake (token and session cookies
//! cached in `kv`) and optimistic locking through ETags. `create` and `update` also take a list
//! of items and send them as one `$batch`, one changeset per item, answering one outcome per
//! item. Values are normalized on the way out (ISO dates, decimals as numbers, no
//! `__metadata`).
//!
//! Built on `qiao-sdk` only; it compiles to a `wasm32-wasip2` component and natively, where
//! its unit tests run against `qiao_sdk::testing::MockHost`. `README.md` beside this crate
//! documents operations, config, error mapping and assumptions.

mod actions;
mod batch;
mod client;
mod config;
mod describe;
mod errors;
mod keys;
mod poll;
mod values;

use qiao_sdk::{ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value};

pub use describe::{CREATE, ENTITIES_CHANGED, GET, ID, QUERY, UPDATE, VERSION};

/// The SAP S/4HANA connector.
pub struct SapConnector;

impl Connector for SapConnector {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::load(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            ENTITIES_CHANGED => poll::run(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            GET => actions::get(req),
            QUERY => actions::query(req),
            CREATE => actions::create(req),
            UPDATE => actions::update(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }
}

qiao_sdk::export_connector!(SapConnector);

#[cfg(test)]
mod tests;
