//! Loading the trigger: exactly one kind; cron patterns and time zones; poll operations,
//! intervals and params; webhook paths, secrets, verifying connectors and delivery-id headers.

use std::collections::BTreeMap;

use qiao_contract::OperationKind;

use crate::duration::Duration;
use crate::load::Loader;
use crate::plan::{ConnectionPlan, TriggerPlan};
use crate::secrets::{Secret, SecretSource};
use crate::spec::{Data, TriggerSpec};
use crate::static_value::{self, StaticValue};

impl Loader<'_> {
    pub(crate) fn trigger(
        &mut self,
        t: &TriggerSpec,
        connections: &BTreeMap<String, Option<ConnectionPlan>>,
        secrets: &dyn SecretSource,
    ) -> Option<TriggerPlan> {
        let set: Vec<&str> = [
            ("manual", t.manual.is_some()),
            ("schedule", t.schedule.is_some()),
            ("poll", t.poll.is_some()),
            ("webhook", t.webhook.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        if set.len() != 1 {
            let found = if set.is_empty() { "none".to_string() } else { set.join(" and ") };
            self.error(
                "trigger",
                format!("trigger must have exactly one of manual, schedule, poll, webhook; found {found}"),
            );
            return None;
        }
        if t.manual.is_some() {
            return Some(TriggerPlan::Manual);
        }
        if let Some(s) = &t.schedule {
            let parser = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .year(croner::parser::Year::Disallowed)
                .build();
            let cron = match cron_fields_problem(&s.cron)
                .map_or_else(|| parser.parse(&s.cron).map_err(|e| tidy(&e.to_string())), Err)
            {
                Ok(cron) => Some(cron),
                Err(why) => {
                    self.error("trigger.schedule.cron", format!("invalid cron pattern {:?}: {why}", s.cron));
                    None
                }
            };
            let name = s.timezone.clone().unwrap_or_else(|| "UTC".into());
            let tz = jiff::tz::TimeZone::get(&name)
                .map_err(|_| {
                    self.error(
                        "trigger.schedule.timezone",
                        format!("unknown time zone {name:?}: use an IANA name such as \"Asia/Shanghai\" or \"UTC\""),
                    )
                })
                .ok();
            return Some(TriggerPlan::Schedule {
                cron: Box::new(cron?),
                pattern: s.cron.clone(),
                timezone: tz?,
                timezone_name: name,
            });
        }
        if let Some(p) = &t.poll {
            let conn = self.connection(connections, &p.connection, "trigger.poll.connection");
            let op_ok = conn.is_some_and(|c| {
                self.operation(c, &p.operation, OperationKind::Trigger, "trigger.poll.operation")
            });
            let every = self.duration(&p.every, "trigger.poll.every");
            if every.is_some_and(|d| d < Duration::from_secs(1)) {
                self.error("trigger.poll.every", format!("poll interval {:?} is shorter than 1s", p.every));
            }
            let params_data = p.params.clone().unwrap_or(Data::Map(Vec::new()));
            let params = self.resolve_static(&params_data, "trigger.poll.params", secrets);
            if op_ok
                && let Some(schema) = conn
                    .and_then(|c| c.connector.operation(&p.operation))
                    .and_then(|o| o.params_schema.as_ref())
            {
                self.check_schema(schema, &params, "trigger.poll.params");
            }
            return Some(TriggerPlan::Poll {
                connection: conn?.id.clone(),
                operation: p.operation.clone(),
                every: every?,
                params,
            });
        }
        let w = t.webhook.as_ref()?;
        let path_ok = w.path.starts_with('/')
            && w.path.chars().all(|c| c.is_ascii_alphanumeric() || "/_.~-".contains(c));
        if !path_ok {
            self.error("trigger.webhook.path", format!("invalid webhook path {:?}: start with '/' and use letters, digits, '/', '-', '_', '.', '~'", w.path));
        }
        let secret = w.secret.as_ref().map(|s| {
            if !static_value::has_reference(s) {
                self.error(
                    "trigger.webhook.secret",
                    "webhook secret must be a reference: write \"${secret.NAME}\"",
                );
            }
            match self.resolve_static(&Data::String(s.clone()), "trigger.webhook.secret", secrets) {
                StaticValue::Secret(s) => s,
                StaticValue::String(s) => Secret::new(s),
                _ => Secret::default(),
            }
        });
        let delivery_id = w.delivery_id.as_ref().map(|name| {
            if !is_header_name(name) {
                self.error(
                    "trigger.webhook.delivery_id",
                    format!(
                        "invalid header name {name:?}: use 1-100 letters, digits and !#$%&'*+-.^_`|~ (e.g. \"X-Request-Id\")"
                    ),
                );
            }
            name.to_ascii_lowercase()
        });
        let connection = match &w.connection {
            Some(name) => {
                let conn = self.connection(connections, name, "trigger.webhook.connection");
                if let Some(c) = conn
                    && !c.connector.webhook
                {
                    self.error(
                        "trigger.webhook.connection",
                        format!(
                            "connector {:?} of connection {name:?} does not verify webhooks",
                            c.connector.id
                        ),
                    );
                }
                Some(conn?.id.clone())
            }
            None => None,
        };
        let delivery_ok = w.delivery_id.as_deref().is_none_or(is_header_name);
        (path_ok && delivery_ok).then(|| TriggerPlan::Webhook {
            path: w.path.clone(),
            secret,
            connection,
            delivery_id,
        })
    }
}

/// Whether `name` is a valid HTTP header name (RFC 9110 `token`), at most 100 characters.
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// A clearer message than croner's for the usual mistakes: wrong field count, a number out of
/// its field's range.
fn cron_fields_problem(pattern: &str) -> Option<String> {
    let fields: Vec<&str> = pattern.split_whitespace().collect();
    if fields.first().is_some_and(|f| f.starts_with('@')) {
        return None;
    }
    if fields.len() != 5 {
        return Some(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        ));
    }
    const FIELDS: [(&str, u32, u32); 5] = [
        ("minute", 0, 59),
        ("hour", 0, 23),
        ("day-of-month", 1, 31),
        ("month", 1, 12),
        ("day-of-week", 0, 7),
    ];
    for (field, (name, lo, hi)) in fields.iter().zip(FIELDS) {
        // Numbers that are values: not step sizes (`*/15`) nor nth-weekday counts (`5#3`).
        let mut after_step = false;
        for token in field.split_inclusive(|c: char| !c.is_ascii_digit()) {
            let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
            if !digits.is_empty()
                && !after_step
                && let Ok(n) = digits.parse::<u32>()
                && !(lo..=hi).contains(&n)
            {
                return Some(format!("{name} {n} is out of range {lo}-{hi}"));
            }
            after_step = token.ends_with(['/', '#']);
        }
    }
    None
}

/// croner's message as a lowercase clause without the final period.
fn tidy(message: &str) -> String {
    let m = message.trim().trim_end_matches('.');
    let mut chars = m.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names() {
        for ok in ["X-Request-Id", "x-dingtalk-callback-id", "Idempotency-Key", "a", "x_id.1~"] {
            assert!(is_header_name(ok), "{ok}");
        }
        for bad in ["", "X Request Id", "x-id:", "x-ïd", "(id)", &"x".repeat(101)] {
            assert!(!is_header_name(bad), "{bad}");
        }
    }

    #[test]
    fn cron_field_checks() {
        for ok in
            ["*/15 * * * *", "0 2 * * 1-5", "0 9 1,15 * MON#2", "30 23 L * *", "@daily", "0 0 * JAN-MAR 0,7"]
        {
            assert_eq!(cron_fields_problem(ok), None, "{ok}");
        }
        assert_eq!(cron_fields_problem("0 24 * * *").as_deref(), Some("hour 24 is out of range 0-23"));
        assert_eq!(cron_fields_problem("0 0 0 * *").as_deref(), Some("day-of-month 0 is out of range 1-31"));
        assert_eq!(cron_fields_problem("0 0 * 1-13 *").as_deref(), Some("month 13 is out of range 1-12"));
        assert_eq!(cron_fields_problem("*/90 * * * *"), None, "step sizes are not values");
        assert_eq!(
            cron_fields_problem("* * *").as_deref(),
            Some("expected 5 fields (minute hour day-of-month month day-of-week), got 3")
        );
        assert_eq!(tidy("Component error: Number out of bounds."), "component error: Number out of bounds");
    }
}
