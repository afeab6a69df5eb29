//! What the connector says about itself. The schemas live in `schemas/*.json` beside this
//! crate and are embedded as text.

use qiao_sdk::{Info, Operation, OperationKind, Value, json};

/// The connector id.
pub const ID: &str = "jira";
/// The connector version.
pub const VERSION: &str = "0.1.0";
/// Trigger: issues whose `updated` moved.
pub const ISSUES_UPDATED: &str = "issues-updated";
/// Trigger: worklogs created or changed.
pub const WORKLOGS_UPDATED: &str = "worklogs-updated";
/// Action: create an issue.
pub const CREATE_ISSUE: &str = "create-issue";
/// Action: move an issue to a status.
pub const TRANSITION_ISSUE: &str = "transition-issue";
/// Action: comment on an issue.
pub const ADD_COMMENT: &str = "add-comment";
/// Action: log work on an issue.
pub const ADD_WORKLOG: &str = "add-worklog";

const CONFIG: &str = include_str!("../schemas/config.json");
const ISSUES_PARAMS: &str = include_str!("../schemas/issues-updated.params.json");
const WORKLOGS_PARAMS: &str = include_str!("../schemas/worklogs-updated.params.json");
const CREATE_INPUT: &str = include_str!("../schemas/create-issue.input.json");
const TRANSITION_INPUT: &str = include_str!("../schemas/transition-issue.input.json");
const COMMENT_INPUT: &str = include_str!("../schemas/add-comment.input.json");
const WORKLOG_INPUT: &str = include_str!("../schemas/add-worklog.input.json");

fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Bool(true))
}

fn trigger(name: &str, description: &str, params: &str, output: Value) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Trigger,
        description: description.into(),
        params_schema: Some(schema(params)),
        input_schema: None,
        output_schema: Some(output),
    }
}

fn action(name: &str, description: &str, input: &str) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Action,
        description: description.into(),
        params_schema: None,
        input_schema: Some(schema(input)),
        output_schema: Some(json!({"type": "object"})),
    }
}

pub(crate) fn info() -> Info {
    Info {
        id: ID.into(),
        version: VERSION.into(),
        title: "Jira Cloud".into(),
        description: "Jira Cloud (REST v3, API token): updated issues and worklogs as triggers; create, \
                      transition, comment and log work as actions; signed admin webhooks."
            .into(),
        config_schema: schema(CONFIG),
        operations: vec![
            trigger(
                ISSUES_UPDATED,
                "Issues created or updated since the last poll (enhanced JQL search).",
                ISSUES_PARAMS,
                crate::issues::output_schema(),
            ),
            trigger(
                WORKLOGS_UPDATED,
                "Worklogs created or updated since the last poll, with their issue.",
                WORKLOGS_PARAMS,
                crate::worklogs::output_schema(),
            ),
            action(
                CREATE_ISSUE,
                "Creates an issue (description as ADF); a retry returns the issue created before.",
                CREATE_INPUT,
            ),
            action(
                TRANSITION_ISSUE,
                "Moves an issue to a status; already there is success.",
                TRANSITION_INPUT,
            ),
            action(
                ADD_COMMENT,
                "Adds a comment (text as ADF); a retry returns the comment added before.",
                COMMENT_INPUT,
            ),
            action(
                ADD_WORKLOG,
                "Logs time on an issue; a retry returns the worklog added before.",
                WORKLOG_INPUT,
            ),
        ],
        hosts: vec!["{config.base_url}".into()],
        webhook: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_parse_and_info_passes_the_contract_checks() {
        for text in [
            CONFIG,
            ISSUES_PARAMS,
            WORKLOGS_PARAMS,
            CREATE_INPUT,
            TRANSITION_INPUT,
            COMMENT_INPUT,
            WORKLOG_INPUT,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()), "{text}");
        }
        let info = info();
        assert_eq!(info.check(), Ok(()));
        assert_eq!(info.secret_fields(), ["api_token", "webhook_secret"]);
        assert_eq!(info.operations.len(), 6);
    }
}
