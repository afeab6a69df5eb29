//! The sandbox kit: what every protocol fake in `sandbox/` shares.
//!
//! A fake is a [`System`]: its own axum routes plus the two answers the kit needs from it (the
//! system's throttle answer and its 5xx answer). [`start`] serves it on loopback behind the
//! fault layer and the admin endpoint:
//!
//! - [`Faults`] holds what a test asked to go wrong next: throttle the next N calls, answer 5xx,
//!   answer slowly, reset connections, expire every token, invalidate CSRF tokens, sign the next
//!   webhook delivery wrongly, fail some items of the next bulk write. Tests call it directly;
//!   `qiao sandbox` users post a [`FaultPlan`] to `/_sandbox/faults`.
//! - [`Clock`] is the time every fake reads; tests advance it to expire tokens for real.
//! - [`Tokens`] issues and checks bearer tokens and sessions with a lifetime and an epoch.
//! - [`Journal`] records every request (time, method, path, status) so tests can count calls,
//!   assert there was no duplicate write and measure call spacing.
//! - [`seed`] is the master data shared by all five systems (people, projects, cost centers),
//!   so flows can map one system's records onto another's.

mod admin;
mod clock;
mod faults;
mod journal;
pub mod seed;
mod server;
mod tokens;
mod webhook;

pub use admin::{ADMIN_PREFIX, admin_routes};
pub use clock::Clock;
pub use faults::{Fail, FaultPlan, Faults, Partial, Slow};
pub use journal::{Journal, JournalEntry};
pub use server::{Ctx, Running, System, start};
pub use tokens::{TokenCheck, Tokens};
pub use webhook::push_json;
