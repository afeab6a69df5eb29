//! Protocol-faithful fake of the Yonyou YonBIP (用友) open API, for tests, the demo and the
//! benchmarks. Built on `qiao-sandbox-kit`; nothing in qiao's runtime depends on it.
//!
//! - Self-built app tokens: `GET …/open-auth/selfAppAuth/getAccessToken` (and the newer
//!   `…/base/v1/getAccessToken`) with `appKey`, `timestamp` and the HMAC-SHA256 `signature`
//!   ([`sign`]); `{"code":"00000","data":{"access_token","expire":7200}}`.
//! - Business APIs under `/iuap-api-gateway` (and at the root) take `access_token` as a query
//!   parameter and answer `{code, message, data}`; a bad or expired token is `310036`.
//! - Paged lists (`pageIndex`, `pageSize`, `simpleVOs`, `queryOrders`) over projects, staff,
//!   materials, departments and 180 payment applications; vouchers saved one at a time or in
//!   batches with per-item failures and `resubmitCheckKey` deduplication.
//!
//! Codes the spec leaves open (throttle, bad signature, unknown app) are in [`code`].

mod data;
mod envelope;
mod fake;
mod query;
mod sign;
mod vouchers;

pub use data::{ACCBOOK_CODE, DEPARTMENTS, PAYMENT_APPLY_COUNT, SUBJECTS};
pub use envelope::{RETRY_AFTER_SECS, code};
pub use fake::{
    APP_KEY, APP_SECRET, AUTH_PREFIX, GATEWAY_PREFIX, TENANT_ID, TIMESTAMP_SKEW_MS, TOKEN_PATH,
    TOKEN_PATH_V1, TOKEN_TTL_SECS, YonyouFake, paths,
};
pub use query::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
pub use sign::{sign, string_to_sign};
pub use vouchers::MAX_CHECK_KEY_LEN;

#[cfg(test)]
mod tests;
