//! What the connector says about itself. The schemas live in `schemas/*.json` beside the
//! crate and are embedded as text (parsed at `describe` time: smaller than `json!`).

use qiao_sdk::{Info, Operation, OperationKind, Value};

/// The connector id.
pub const ID: &str = "dingtalk";
/// The connector version.
pub const VERSION: &str = "0.1.0";
/// Action: a message through a custom group robot.
pub const ROBOT_SEND: &str = "robot-send";
/// Action: a work notification.
pub const WORK_NOTIFY: &str = "work-notify";
/// Action: start an approval.
pub const CREATE_APPROVAL: &str = "create-approval";
/// Trigger: finished approvals.
pub const APPROVALS_COMPLETED: &str = "approvals-completed";
/// Trigger: attendance results.
pub const ATTENDANCE_RECORDS: &str = "attendance-records";

const CONFIG: &str = include_str!("../schemas/config.json");
const ROBOT_IN: &str = include_str!("../schemas/robot-send.input.json");
const ROBOT_OUT: &str = include_str!("../schemas/robot-send.output.json");
const NOTIFY_IN: &str = include_str!("../schemas/work-notify.input.json");
const NOTIFY_OUT: &str = include_str!("../schemas/work-notify.output.json");
const APPROVAL_IN: &str = include_str!("../schemas/create-approval.input.json");
const APPROVAL_OUT: &str = include_str!("../schemas/create-approval.output.json");
const COMPLETED_PARAMS: &str = include_str!("../schemas/approvals-completed.params.json");
const COMPLETED_OUT: &str = include_str!("../schemas/approvals-completed.output.json");
const ATTENDANCE_PARAMS: &str = include_str!("../schemas/attendance-records.params.json");
const ATTENDANCE_OUT: &str = include_str!("../schemas/attendance-records.output.json");

fn action(name: &str, description: &str, input: &str, output: &str) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Action,
        description: description.into(),
        params_schema: None,
        input_schema: Some(schema(input)),
        output_schema: Some(schema(output)),
    }
}

fn trigger(name: &str, description: &str, params: &str, output: &str) -> Operation {
    Operation {
        name: name.into(),
        kind: OperationKind::Trigger,
        description: description.into(),
        params_schema: Some(schema(params)),
        input_schema: None,
        output_schema: Some(schema(output)),
    }
}

pub(crate) fn info() -> Info {
    Info {
        id: ID.into(),
        version: VERSION.into(),
        title: "DingTalk (钉钉)".into(),
        description: "DingTalk open platform: group robot messages, work notifications, OA approvals, \
                      attendance results and encrypted event callbacks."
            .into(),
        config_schema: schema(CONFIG),
        operations: vec![
            action(
                ROBOT_SEND,
                "Sends a text or markdown message through a custom group robot (signed).",
                ROBOT_IN,
                ROBOT_OUT,
            ),
            action(
                WORK_NOTIFY,
                "Sends a work notification (text, markdown or OA) to users.",
                NOTIFY_IN,
                NOTIFY_OUT,
            ),
            action(
                CREATE_APPROVAL,
                "Starts an OA approval instance with form values.",
                APPROVAL_IN,
                APPROVAL_OUT,
            ),
            trigger(
                APPROVALS_COMPLETED,
                "Approval instances of one process that finished (agreed, refused or terminated) since the last poll.",
                COMPLETED_PARAMS,
                COMPLETED_OUT,
            ),
            trigger(
                ATTENDANCE_RECORDS,
                "Attendance results of the given users, for every day that is over.",
                ATTENDANCE_PARAMS,
                ATTENDANCE_OUT,
            ),
        ],
        hosts: vec![
            "{config.oapi_url}".into(),
            "{config.api_url}".into(),
            "{config.base_url}".into(),
            "oapi.dingtalk.com".into(),
            "api.dingtalk.com".into(),
        ],
        webhook: true,
    }
}

/// An embedded schema; the tests prove each one parses, so the fallback is never used.
fn schema(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Bool(true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    #[test]
    fn schemas_parse_and_secrets_are_marked() {
        for text in [
            CONFIG,
            ROBOT_IN,
            ROBOT_OUT,
            NOTIFY_IN,
            NOTIFY_OUT,
            APPROVAL_IN,
            APPROVAL_OUT,
            COMPLETED_PARAMS,
            COMPLETED_OUT,
            ATTENDANCE_PARAMS,
            ATTENDANCE_OUT,
        ] {
            assert!(serde_json::from_str::<Value>(text).is_ok_and(|v| v.is_object()), "{text}");
        }
        let info = info();
        assert_eq!(info.check(), Ok(()));
        let mut secrets = info.secret_fields();
        secrets.sort();
        assert_eq!(secrets, ["aes_key", "app_secret", "robot_access_token", "robot_secret", "token"]);
        assert_eq!(
            info.config_schema["properties"]["oapi_url"]["default"],
            json!(crate::config::DEFAULT_OAPI_URL)
        );
    }
}
