//! The flow file as written: serde types for the YAML format (DESIGN §5).
//!
//! These types only describe shape. Names, references, durations, cron patterns and
//! expressions stay plain strings here and are checked by [`crate::load`], which reports every
//! problem with its location instead of stopping at the first. Every struct denies unknown
//! fields, so a typo is an error, not a silently ignored key. The doc comments become the
//! descriptions of the JSON Schema (`qiao schema`).

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};

/// A flow: one trigger, then steps applied to every record it produces.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "qiao flow")]
pub struct FlowSpec {
    /// Kebab-case id of the flow, unique among the flows of a server (`jira-worklogs-to-kingdee`).
    #[schemars(extend("pattern" = KEBAB_PATTERN))]
    pub flow: String,
    /// What the flow does, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// Connections to systems, by kebab-case id.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionSpec>,
    /// What starts the flow: exactly one of `manual`, `schedule`, `poll`, `webhook`.
    pub trigger: TriggerSpec,
    /// Expression naming a record in run history, the dead-letter queue and idempotency keys
    /// (default: the connector's record id, else a hash of the record).
    #[serde(default)]
    pub key: Option<String>,
    /// Lookup tables for `lookup('table', key, default=...)`: name → { key: scalar }.
    #[serde(default)]
    pub tables: BTreeMap<String, TableSpec>,
    /// How many records of this flow are processed at once (default 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub concurrency: Option<u32>,
    /// The steps, applied in order to every record.
    #[serde(default)]
    pub steps: Vec<StepSpec>,
    /// An action called for every record that is dead-lettered; its input may use `error`.
    #[serde(default)]
    pub on_failure: Option<ActionSpec>,
}

/// The pattern of kebab-case ids, for the JSON Schema.
pub const KEBAB_PATTERN: &str = "^[a-z][a-z0-9]*(-[a-z0-9]+)*$";
/// The pattern of durations, for the JSON Schema.
pub const DURATION_PATTERN: &str = "^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$";
/// The pattern of HTTP header names (RFC 9110 `token`), for the JSON Schema.
pub const HEADER_NAME_PATTERN: &str = "^[A-Za-z0-9!#$%&'*+.^_`|~-]+$";

/// A connection to one system through a connector.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionSpec {
    /// The connector, optionally with a semver requirement: `jira` or `jira@^0.1`.
    #[schemars(extend("pattern" = "^[a-z][a-z0-9-]*(@.+)?$"))]
    pub connector: String,
    /// The connection config, checked against the connector's config schema. Static: strings
    /// may contain `${env.NAME}` and `${secret.NAME}` (write `$${` for a literal `${`).
    #[serde(default)]
    #[schemars(extend("type" = ["object", "null"]))]
    pub config: Option<Data>,
    /// Calls per second allowed through this connection, across all flows.
    #[serde(default)]
    pub rate_limit: Option<RateLimitSpec>,
}

/// A token bucket: `per_second` calls on average, bursts of up to `burst`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitSpec {
    /// Average calls per second (may be fractional: 0.5 = one call every two seconds).
    #[schemars(extend("exclusiveMinimum" = 0))]
    pub per_second: f64,
    /// Largest burst (default: `per_second` rounded up, at least 1).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
}

/// What starts the flow. Exactly one field must be set.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct TriggerSpec {
    /// Started by hand (`qiao run`, admin API): `manual: {}`.
    #[serde(default)]
    pub manual: Option<ManualSpec>,
    /// Started on a cron schedule.
    #[serde(default)]
    pub schedule: Option<ScheduleSpec>,
    /// Polls a connector trigger operation at an interval, with a durable cursor.
    #[serde(default)]
    pub poll: Option<PollSpec>,
    /// Started by HTTP callbacks.
    #[serde(default)]
    pub webhook: Option<WebhookSpec>,
}

/// A manual trigger has no settings.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualSpec {}

/// A cron schedule.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// Five-field cron pattern (`minute hour day-of-month month day-of-week`), e.g.
    /// `0 2 * * 1-5`, or a nickname such as `@daily`.
    pub cron: String,
    /// IANA time zone the pattern is read in (`Asia/Shanghai`); default `UTC`.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// Polls a trigger operation of a connection.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PollSpec {
    /// The connection id.
    pub connection: String,
    /// The connector's trigger operation.
    pub operation: String,
    /// Interval between polls: `30s`, `5m`, `1h30m`.
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub every: String,
    /// Static params of the operation, checked against its params schema; strings may contain
    /// `${env.NAME}` and `${secret.NAME}`.
    #[serde(default)]
    #[schemars(extend("type" = ["object", "null"]))]
    pub params: Option<Data>,
}

/// HTTP callbacks delivered to `/hooks/<flow>/<path>`.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSpec {
    /// Path below the flow's hook URL, starting with `/`.
    #[schemars(extend("pattern" = "^/[A-Za-z0-9/_.~-]*$"))]
    pub path: String,
    /// Shared secret callers must present (`${secret.NAME}`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Connection whose connector verifies and decodes deliveries (`verify-webhook`).
    #[serde(default)]
    pub connection: Option<String>,
    /// The request header that carries the delivery id (case-insensitive), e.g.
    /// `X-Request-Id`; deliveries with an id seen before are not processed again. Default:
    /// the first of `X-Delivery-Id`, `X-Atlassian-Webhook-Identifier`, `X-GitHub-Delivery`,
    /// `Idempotency-Key`.
    #[serde(default)]
    #[schemars(length(min = 1, max = 100), extend("pattern" = HEADER_NAME_PATTERN))]
    pub delivery_id: Option<String>,
}

/// A lookup table: key → scalar (string, number, boolean or null).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct TableSpec(pub BTreeMap<String, Data>);

impl JsonSchema for TableSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TableSpec".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A lookup table: key → scalar (string, number, boolean or null).",
            "type": "object",
            "additionalProperties": { "type": ["string", "number", "boolean", "null"] }
        })
    }
}

/// One step. Exactly one of `map`, `filter`, `action`, `foreach`, `batch` must be set.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("oneOf" = [
    {"required": ["map"]}, {"required": ["filter"]}, {"required": ["action"]}, {"required": ["foreach"]},
    {"required": ["batch"]}
]))]
pub struct StepSpec {
    /// Kebab-case id, unique within the flow; an action's output is `steps.<id>.output`.
    #[schemars(extend("pattern" = KEBAB_PATTERN))]
    pub id: String,
    /// Expression; the step runs only for records where it is true (others pass unchanged).
    #[serde(default)]
    pub when: Option<String>,
    /// Builds a new record. Strings are expressions, other scalars are themselves, objects
    /// and lists are walked.
    #[serde(default)]
    pub map: Option<Data>,
    /// Expression; records where it is false stop here (counted as filtered).
    #[serde(default)]
    pub filter: Option<String>,
    /// Calls a connector action; its output is `steps.<id>.output` for later steps.
    #[serde(default)]
    pub action: Option<ActionSpec>,
    /// Expression yielding a list; every item continues as its own record.
    #[serde(default)]
    pub foreach: Option<String>,
    /// Groups records into one record per group (`record.items`) for the steps after it, so
    /// an action after it is called once per group.
    #[serde(default)]
    pub batch: Option<BatchSpec>,
    /// Retries of an action step on `transient` and `rate-limited` errors.
    #[serde(default)]
    pub retry: Option<RetrySpec>,
    /// What happens to a record when the step fails for good (default `dead_letter`).
    #[serde(default)]
    pub on_error: Option<OnErrorSpec>,
}

/// Grouping of records for bulk actions. A group is flushed when it holds `size` records,
/// when its oldest record has waited `max_wait`, or when the trigger has nothing more.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchSpec {
    /// Records per group (1..=10000; default 10000 when only `max_wait` is given).
    #[serde(default)]
    #[schemars(range(min = 1, max = 10000))]
    pub size: Option<u32>,
    /// Longest time a record waits for its group to fill (e.g. `2s`).
    #[serde(default)]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub max_wait: Option<String>,
    /// Expression; records with equal values are grouped together (one group per value).
    #[serde(default)]
    pub group_by: Option<String>,
}

/// A connector action call.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// The connection id.
    pub connection: String,
    /// The connector's action operation.
    pub operation: String,
    /// The input (default: the record). Strings are expressions (`"'CNY'"` is the string
    /// CNY), other scalars are themselves, objects and lists are walked.
    #[serde(default)]
    pub input: Option<Data>,
}

/// Exponential backoff for an action step.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetrySpec {
    /// Attempts in total, the first included (default 3).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub attempts: Option<u32>,
    /// Wait before the second attempt, doubled each time (default `1s`).
    #[serde(default)]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub backoff: Option<String>,
    /// Longest wait between attempts (default `1m`).
    #[serde(default)]
    #[schemars(extend("pattern" = DURATION_PATTERN))]
    pub max_backoff: Option<String>,
}

/// What happens to a record whose step failed for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnErrorSpec {
    /// Park it in the dead-letter queue (and call `on_failure`), then go on.
    DeadLetter,
    /// Drop the record, counted as skipped, and go on.
    Skip,
    /// Stop the run; the record stays unfinished and is retried with the next run.
    Fail,
}

/// A YAML value, order of mapping keys kept. Used where the data rule applies (templates) and
/// for static values (connection config, trigger params).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Data {
    /// `null`, `~` or an empty value.
    #[default]
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer or a float.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// A list.
    List(Vec<Data>),
    /// A mapping, in file order.
    Map(Vec<(String, Data)>),
}

impl JsonSchema for Data {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Data".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Any YAML value. In map/filter/when/foreach/input a string is an expression."
        })
    }
}

impl<'de> Deserialize<'de> for Data {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DataVisitor)
    }
}

struct DataVisitor;

impl<'de> Visitor<'de> for DataVisitor {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Data, E> {
        Ok(Data::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Data, E> {
        Ok(Data::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Data, E> {
        Ok(Data::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Data, E> {
        i64::try_from(v)
            .map(|v| Data::Number(v.into()))
            .or_else(|_| u64::try_from(v).map(|v| Data::Number(v.into())))
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Data, E> {
        u64::try_from(v)
            .map(|v| Data::Number(v.into()))
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Data, E> {
        serde_json::Number::from_f64(v)
            .map(Data::Number)
            .ok_or_else(|| E::custom(format!("{v} is not a finite number")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Data, E> {
        Ok(Data::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Data, E> {
        Ok(Data::String(v))
    }

    fn visit_unit<E>(self) -> Result<Data, E> {
        Ok(Data::Null)
    }

    fn visit_none<E>(self) -> Result<Data, E> {
        Ok(Data::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Data, D::Error> {
        d.deserialize_any(DataVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Data, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Data::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
        while let Some(key) = map.next_key::<String>()? {
            entries.push((key, map.next_value()?));
        }
        Ok(Data::Map(entries))
    }
}

impl Data {
    /// The value as JSON (mapping order becomes JSON object order).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Data::Null => Value::Null,
            Data::Bool(b) => Value::Bool(*b),
            Data::Number(n) => Value::Number(n.clone()),
            Data::String(s) => Value::String(s.clone()),
            Data::List(items) => Value::Array(items.iter().map(Data::to_json).collect()),
            Data::Map(entries) => {
                Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// A short name of the value's type, for messages (`string`, `list`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Data::Null => "null",
            Data::Bool(_) => "boolean",
            Data::Number(_) => "number",
            Data::String(_) => "string",
            Data::List(_) => "list",
            Data::Map(_) => "mapping",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_keeps_types_and_order() -> Result<(), serde_saphyr::Error> {
        let d: Data = serde_saphyr::from_str("b: 1\na: [1.5, true, ~, \"120\", 进行中, '😀']\n")?;
        let Data::Map(entries) = &d else { panic!("not a map: {d:?}") };
        assert_eq!(entries[0].0, "b");
        assert_eq!(entries[0].1, Data::Number(1.into()));
        assert_eq!(d.to_json(), serde_json::json!({"b": 1, "a": [1.5, true, null, "120", "进行中", "😀"]}));
        Ok(())
    }

    #[test]
    fn step_denies_unknown_fields() {
        let err = serde_saphyr::from_str::<StepSpec>("id: a\nmapp: {}\n").map(|_| ()).err();
        assert!(err.is_some_and(|e| e.to_string().contains("mapp")));
    }

    #[test]
    fn trigger_parses_each_kind() -> Result<(), serde_saphyr::Error> {
        let t: TriggerSpec = serde_saphyr::from_str("manual: {}")?;
        assert!(t.manual.is_some());
        let t: TriggerSpec =
            serde_saphyr::from_str("schedule: { cron: '0 2 * * *', timezone: Asia/Shanghai }")?;
        assert_eq!(t.schedule.map(|s| s.cron), Some("0 2 * * *".to_string()));
        let t: TriggerSpec = serde_saphyr::from_str("poll: { connection: jira, operation: x, every: 5m }")?;
        assert_eq!(t.poll.map(|p| p.every), Some("5m".to_string()));
        Ok(())
    }
}
