//! The DingTalk (钉钉) connector (`dingtalk`): group robot messages, work notifications and
//! approvals as actions; finished approvals and attendance results as triggers; encrypted
//! event callbacks through `verify-webhook`.
//!
//! Built on `qiao-sdk` only; it compiles to a `wasm32-wasip2` component and natively, where
//! its unit tests run against `qiao_sdk::testing::MockHost`. `README.md` beside this crate
//! documents the operations, config, error mapping and assumptions.

mod actions;
mod approvals;
mod attendance;
mod client;
mod config;
mod crypto;
mod describe;
mod errors;
mod time;
mod webhook;

use qiao_sdk::{
    ActionOutput, Batch, Connector, Info, InvokeRequest, PollRequest, Result, Value, WebhookRequest,
    WebhookResult,
};

pub use describe::{
    APPROVALS_COMPLETED, ATTENDANCE_RECORDS, CREATE_APPROVAL, ID, ROBOT_SEND, VERSION, WORK_NOTIFY,
};
pub use webhook::QUERY_HEADER;

/// The DingTalk connector.
pub struct DingTalk;

impl Connector for DingTalk {
    fn describe() -> Info {
        describe::info()
    }

    fn validate_config(config: &Value) -> Result<()> {
        config::Config::load(config).map(|_| ())
    }

    fn poll(req: PollRequest<'_>) -> Result<Batch> {
        match req.op {
            APPROVALS_COMPLETED => approvals::poll(req),
            ATTENDANCE_RECORDS => attendance::poll(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
        match req.op {
            ROBOT_SEND => actions::robot_send(req),
            WORK_NOTIFY => actions::work_notify(req),
            CREATE_APPROVAL => actions::create_approval(req),
            other => Err(qiao_sdk::unknown_operation(other)),
        }
    }

    fn verify_webhook(req: WebhookRequest<'_>) -> Result<WebhookResult> {
        webhook::verify(req)
    }
}

qiao_sdk::export_connector!(DingTalk);
