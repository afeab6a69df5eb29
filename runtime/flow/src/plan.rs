//! The validated plan of a flow: what the engine runs. Only [`crate::load`] builds one, so
//! every reference in it resolves: connections exist and carry their connector description,
//! operations exist with the right kind, secrets are resolved, expressions are compiled.

use std::sync::Arc;

use qiao_contract::ConnectorInfo;

use crate::duration::Duration;
use crate::expr::{Expr, ExprEnv, Tables};
use crate::ids::{ConnectionId, FlowId, StepId};
use crate::secrets::Secret;
use crate::static_value::StaticValue;
use crate::template::Template;

/// A validated flow.
#[derive(Debug, Clone)]
pub struct FlowPlan {
    /// The flow id.
    pub id: FlowId,
    /// The description, if any.
    pub description: Option<String>,
    /// The file it was loaded from (as given to the loader).
    pub file: String,
    /// The connections, sorted by id.
    pub connections: Vec<ConnectionPlan>,
    /// What starts the flow.
    pub trigger: TriggerPlan,
    /// The record identity expression, if given.
    pub key: Option<Expr>,
    /// The lookup tables.
    pub tables: Arc<Tables>,
    /// Records processed at once (at least 1).
    pub concurrency: u32,
    /// The steps, in order.
    pub steps: Vec<StepPlan>,
    /// Called for every dead-lettered record.
    pub on_failure: Option<ActionPlan>,
    /// The expression environment the expressions were compiled in.
    pub exprs: ExprEnv,
}

impl FlowPlan {
    /// The connection `id`.
    pub fn connection(&self, id: &ConnectionId) -> Option<&ConnectionPlan> {
        self.connections.iter().find(|c| &c.id == id)
    }

    /// The step `id`.
    pub fn step(&self, id: &str) -> Option<&StepPlan> {
        self.steps.iter().find(|s| s.id.as_str() == id)
    }

    /// The index of the `batch` step, if the flow has one (at most one, checked at load).
    pub fn batch_step(&self) -> Option<(usize, &BatchPlan)> {
        self.steps.iter().enumerate().find_map(|(i, s)| match &s.kind {
            StepKind::Batch(b) => Some((i, b)),
            _ => None,
        })
    }
}

/// A connection with its resolved connector and config.
#[derive(Debug, Clone)]
pub struct ConnectionPlan {
    /// The connection id.
    pub id: ConnectionId,
    /// The reference as written (`jira@^0.1`).
    pub requested: String,
    /// What the resolved connector says about itself (id, exact version, schemas).
    pub connector: ConnectorInfo,
    /// The config with `${env.*}` / `${secret.*}` resolved; secrets print as `***`.
    pub config: StaticValue,
    /// The rate limit, if any.
    pub rate_limit: Option<RateLimit>,
}

/// A token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Average calls per second.
    pub per_second: f64,
    /// Largest burst.
    pub burst: u32,
}

/// What starts the flow.
#[derive(Debug, Clone)]
pub enum TriggerPlan {
    /// Started by hand.
    Manual,
    /// Started on a cron schedule.
    Schedule {
        /// The parsed pattern.
        cron: Box<croner::Cron>,
        /// The pattern as written.
        pattern: String,
        /// The time zone it is read in.
        timezone: jiff::tz::TimeZone,
        /// The IANA name of that zone.
        timezone_name: String,
    },
    /// Polls a trigger operation.
    Poll {
        /// The connection.
        connection: ConnectionId,
        /// The trigger operation.
        operation: String,
        /// The interval.
        every: Duration,
        /// The static params, resolved.
        params: StaticValue,
    },
    /// HTTP callbacks.
    Webhook {
        /// Path below the flow's hook URL.
        path: String,
        /// Shared secret callers must present.
        secret: Option<Secret>,
        /// Connection whose connector verifies deliveries.
        connection: Option<ConnectionId>,
        /// The header that carries the delivery id, lower-case; `None`: the default headers.
        delivery_id: Option<String>,
    },
}

/// One step.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// The step id.
    pub id: StepId,
    /// Runs only when true.
    pub when: Option<Expr>,
    /// What it does.
    pub kind: StepKind,
    /// Retries (action steps; the default elsewhere).
    pub retry: RetryPolicy,
    /// What happens to a record when it fails for good.
    pub on_error: OnError,
}

/// The closed set of step kinds.
#[derive(Debug, Clone)]
pub enum StepKind {
    /// Builds a new record.
    Map(Template),
    /// Drops records for which the expression is false.
    Filter(Expr),
    /// Calls a connector action.
    Action(ActionPlan),
    /// Splits the list the expression yields into records.
    Foreach(Expr),
    /// Groups records for the steps after it.
    Batch(BatchPlan),
}

impl StepKind {
    /// `map`, `filter`, `action` or `foreach`.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Map(_) => "map",
            StepKind::Filter(_) => "filter",
            StepKind::Action(_) => "action",
            StepKind::Foreach(_) => "foreach",
            StepKind::Batch(_) => "batch",
        }
    }
}

/// How a `batch` step groups records. The group is one record for the steps after it:
/// `{items: [...], keys: [...], group: <group_by value or null>, count: n}`.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// Records per group (at least 1).
    pub size: u32,
    /// Longest wait of a record for its group, if any.
    pub max_wait: Option<Duration>,
    /// The grouping expression, if any.
    pub group_by: Option<Expr>,
}

/// The largest group a `batch` step forms.
pub const MAX_BATCH_SIZE: u32 = 10_000;

/// A connector action call.
#[derive(Debug, Clone)]
pub struct ActionPlan {
    /// The connection.
    pub connection: ConnectionId,
    /// The action operation.
    pub operation: String,
    /// The input template (the record itself when not given).
    pub input: Template,
}

/// Exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled each time.
    pub backoff: Duration,
    /// Longest wait.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 3, backoff: Duration::from_secs(1), max_backoff: Duration::from_secs(60) }
    }
}

/// What happens to a record whose step failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Park it in the dead-letter queue and call `on_failure`.
    #[default]
    DeadLetter,
    /// Drop it, counted as skipped.
    Skip,
    /// Stop the run.
    Fail,
}
