//! The Yonyou YonBIP (用友) connector (`yonyou`): self-built app tokens signed with
//! HMAC-SHA256 and cached in kv, any paged list API as the trigger `list`, document saves with
//! per-item batch outcomes (`save`) and any API call (`call`).
//!
//! Built on `qiao-sdk` only; it compiles to a `wasm32-wasip2` component and natively, where the
//! unit tests run against `qiao_sdk::testing::MockHost`. `README.md` beside this crate
//! documents the operations, config, error mapping and assumptions.

mod api;
mod call;
mod config;
mod describe;
mod envelope;
mod list;
mod save;
mod sign;

use qiao_sdk::{ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value};

pub use config::{DEFAULT_IDEMPOTENCY_FIELD, DEFAULT_TOKEN_PATH};
pub use describe::{CALL, ID, LIST, SAVE, VERSION};
pub use sign::{check_key, sign};

/// The Yonyou YonBIP connector.
pub struct Yonyou;

impl Connector for Yonyou {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::load(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            LIST => list::run(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            SAVE => save::run(req),
            CALL => call::run(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }
}

qiao_sdk::export_connector!(Yonyou);

#[cfg(test)]
mod tests;
