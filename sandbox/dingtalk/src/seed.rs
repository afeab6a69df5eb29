//! The seeded approvals and attendance records, generated from the shared master data
//! (`qiao_sandbox_kit::seed`) around the sandbox clock's "now".

use qiao_sandbox_kit::seed::{MATERIALS, PEOPLE, PROJECTS};
use serde_json::{Value, json};

use crate::time::{cst_day, cst_midnight, iso_minute, weekday};

/// The material-request process (物料申请): required fields 物料编码, 数量, 用途, 项目; the
/// seeded requests also carry the optional 需求日期.
pub const MATERIAL_PROCESS: &str = "PROC-QIAO-MATERIAL-01";
/// The project-change process (项目变更申请): fields 项目, 变更类型, 变更说明, 预算调整.
pub const CHANGE_PROCESS: &str = "PROC-QIAO-PRJCHANGE-02";
/// How many approval instances are seeded.
pub const SEEDED_INSTANCES: usize = 40;

/// A process template: its code, name and form fields (every one required).
pub struct Process {
    /// `processCode`.
    pub code: &'static str,
    /// Display name.
    pub name: &'static str,
    /// Form field names, in form order.
    pub fields: &'static [&'static str],
}

/// The two seeded processes.
pub const PROCESSES: &[Process] = &[
    Process {
        code: MATERIAL_PROCESS, name: "物料申请", fields: &["物料编码", "数量", "用途", "项目"]
    },
    Process {
        code: CHANGE_PROCESS,
        name: "项目变更申请",
        fields: &["项目", "变更类型", "变更说明", "预算调整"],
    },
];

/// One approval instance, as the fake keeps it.
#[derive(Clone, Debug)]
pub struct Instance {
    /// `processInstanceId`.
    pub id: String,
    /// `processCode`.
    pub process_code: String,
    /// `originatorUserId`.
    pub originator: String,
    /// `originatorDeptId`.
    pub dept_id: i64,
    /// `(name, value)` form values.
    pub form: Vec<(String, String)>,
    /// The approver's userid.
    pub approver: String,
    /// Creation time, epoch ms.
    pub create_ms: i64,
    /// Finish time, epoch ms, once finished.
    pub finish_ms: Option<i64>,
    /// RUNNING, COMPLETED or TERMINATED.
    pub status: &'static str,
    /// agree, refuse or "".
    pub result: &'static str,
    /// `businessId` (approval number).
    pub business_id: String,
}

impl Instance {
    /// The new API's `result` object of `GET /v1.0/workflow/processInstances`.
    pub fn to_json(&self) -> Value {
        let person = PEOPLE.iter().find(|p| p.dingtalk_user_id == self.originator);
        let name = person.map_or(self.originator.as_str(), |p| p.name);
        let process = PROCESSES.iter().find(|p| p.code == self.process_code).map_or("审批", |p| p.name);
        let form: Vec<Value> = self
            .form
            .iter()
            .enumerate()
            .map(|(i, (n, v))| {
                json!({"id": format!("TextField-{:04}", i + 1), "name": n, "value": v,
                       "componentType": "TextField", "extValue": null})
            })
            .collect();
        let mut records = vec![json!({"userId": self.originator, "date": iso_minute(self.create_ms),
                                      "type": "START_PROCESS_INSTANCE", "result": "NONE", "remark": ""})];
        let task_status = match self.status {
            "RUNNING" => "RUNNING",
            "TERMINATED" => "CANCELED",
            _ => "COMPLETED",
        };
        let task_result = match (self.status, self.result) {
            ("COMPLETED", "agree") => "AGREE",
            ("COMPLETED", "refuse") => "REFUSE",
            _ => "NONE",
        };
        if let Some(finish) = self.finish_ms {
            let (op, remark) = match self.status {
                "TERMINATED" => ("TERMINATE_PROCESS_INSTANCE", "申请人撤销"),
                _ if self.result == "refuse" => ("EXECUTE_TASK_NORMAL", "信息不全，请补充后重新提交"),
                _ => ("EXECUTE_TASK_NORMAL", "同意"),
            };
            let user = if self.status == "TERMINATED" { &self.originator } else { &self.approver };
            records.push(json!({"userId": user, "date": iso_minute(finish), "type": op,
                                "result": task_result, "remark": remark}));
        }
        json!({
            "title": format!("{name}提交的{process}"),
            "createTime": iso_minute(self.create_ms),
            "finishTime": self.finish_ms.map(iso_minute),
            "originatorUserId": self.originator,
            "originatorDeptId": self.dept_id.to_string(),
            "status": self.status,
            "result": self.result,
            "businessId": self.business_id,
            "processCode": self.process_code,
            "formComponentValues": form,
            "operationRecords": records,
            "tasks": [{
                "taskId": 60_000_000_000_i64 + self.create_ms % 1_000_000,
                "userId": self.approver,
                "status": task_status,
                "result": task_result,
                "createTime": iso_minute(self.create_ms),
                "finishTime": self.finish_ms.map(iso_minute),
            }],
            "bizAction": "NONE",
            "ccUserIds": [],
        })
    }
}

/// An instance id shaped like DingTalk's (`a171de6c-8bc4-4fa5-9a7f-...`).
pub fn instance_id(rng: &mut fastrand::Rng) -> String {
    let hex = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..n).map(|_| char::from(b"0123456789abcdef"[rng.usize(..16)])).collect()
    };
    format!("{}-{}-{}-{}-{}", hex(rng, 8), hex(rng, 4), hex(rng, 4), hex(rng, 4), hex(rng, 12))
}

/// The `businessId` of an instance created at `ms`, numbered `seq`.
pub fn business_id(ms: i64, seq: usize) -> String {
    let day = crate::time::date_of_day(cst_day(ms)).replace('-', "");
    format!("{day}{:010}", 1_000_000 + seq)
}

/// Forty instances over the last ~28 days: two thirds material requests, one third project
/// changes; every fifth still running, the rest agreed, refused or terminated.
pub fn instances(now_ms: i64) -> Vec<Instance> {
    let mut rng = fastrand::Rng::with_seed(0x0d1b_7a1c);
    (0..SEEDED_INSTANCES)
        .map(|i| {
            let originator = PEOPLE[i % PEOPLE.len()];
            let project = PROJECTS[i % PROJECTS.len()];
            let approver = PEOPLE[project.manager];
            let approver = if approver.dingtalk_user_id == originator.dingtalk_user_id {
                PEOPLE[(i + 1) % PEOPLE.len()]
            } else {
                approver
            };
            let create_ms = now_ms - (SEEDED_INSTANCES - i) as i64 * 17 * 3_600_000;
            let (process_code, form) = if i % 3 == 2 {
                let kinds = ["范围变更", "进度变更", "预算变更"];
                let form = vec![
                    ("项目".to_string(), project.name.to_string()),
                    ("变更类型".to_string(), kinds[i % kinds.len()].to_string()),
                    ("变更说明".to_string(), format!("{}第{}阶段需求调整", project.name, i % 4 + 1)),
                    ("预算调整".to_string(), format!("{}.00", (i % 5) * 10_000)),
                ];
                (CHANGE_PROCESS, form)
            } else {
                let material = MATERIALS[i % MATERIALS.len()];
                // Forms are typed by people: a few agreed requests carry what people type
                // (a worded quantity, an impossible date, a project code that does
                // not exist), for flows that must dead-letter them.
                let quantity = match i {
                    6 => "若干".to_string(),
                    21 => "两箱".to_string(),
                    _ => (i % 7 + 1).to_string(),
                };
                let needed =
                    if i == 16 { "2026-02-30".to_string() } else { format!("2026-12-{:02}", i % 28 + 1) };
                let project_code = if i == 22 { "PRJ-X" } else { project.jira_key };
                let form = vec![
                    ("物料编码".to_string(), material.number.to_string()),
                    ("数量".to_string(), quantity),
                    ("需求日期".to_string(), needed),
                    ("用途".to_string(), format!("{}现场部署", project.name)),
                    ("项目".to_string(), project_code.to_string()),
                ];
                (MATERIAL_PROCESS, form)
            };
            let (status, result) = match i % 5 {
                0 => ("RUNNING", ""),
                1 | 2 => ("COMPLETED", "agree"),
                3 => ("COMPLETED", "refuse"),
                _ => ("TERMINATED", ""),
            };
            let finish_ms = (status != "RUNNING").then(|| create_ms + (2 + (i % 9) as i64) * 3_600_000);
            Instance {
                id: instance_id(&mut rng),
                process_code: process_code.to_string(),
                originator: originator.dingtalk_user_id.to_string(),
                dept_id: 1,
                form,
                approver: approver.dingtalk_user_id.to_string(),
                create_ms,
                finish_ms,
                status,
                result,
                business_id: business_id(create_ms, i),
            }
        })
        .collect()
}

/// How many days of attendance are seeded (ending today, China time).
pub const ATTENDANCE_DAYS: i64 = 30;

/// Attendance rows (`recordresult` items) for every person and every weekday of the last
/// [`ATTENDANCE_DAYS`] days, today included: an OnDuty and an OffDuty row each, mostly
/// Normal, with some Late, Early and NotSigned.
pub fn attendance(now_ms: i64) -> Vec<Value> {
    let today = cst_day(now_ms);
    let mut rows = Vec::new();
    let mut seq: i64 = 0;
    for day in (today - ATTENDANCE_DAYS + 1)..=today {
        if weekday(day) >= 5 {
            continue;
        }
        let work_date = cst_midnight(day);
        for (p, person) in PEOPLE.iter().enumerate() {
            for (k, check_type) in ["OnDuty", "OffDuty"].iter().enumerate() {
                seq += 1;
                let base = work_date + if k == 0 { 9 } else { 18 } * 3_600_000;
                let roll = (day * 7 + p as i64 * 3 + k as i64 * 5).rem_euclid(23);
                let (time_result, user_time, source) = match (k, roll) {
                    (0, 0 | 1) => ("Late", base + (5 + roll * 7) * 60_000, "ATM"),
                    (1, 2) => ("Early", base - 25 * 60_000, "ATM"),
                    (_, 3) => ("NotSigned", base, "SYSTEM"),
                    (0, _) => {
                        ("Normal", base - (2 + roll) * 60_000, if roll % 2 == 0 { "ATM" } else { "USER" })
                    }
                    _ => ("Normal", base + (1 + roll) * 60_000, "ATM"),
                };
                let location = if time_result == "NotSigned" {
                    "NotSigned"
                } else if roll == 7 {
                    "Outside"
                } else {
                    "Normal"
                };
                rows.push(json!({
                    "id": 100_068_640_000_i64 + seq,
                    "userId": person.dingtalk_user_id,
                    "checkType": check_type,
                    "timeResult": time_result,
                    "locationResult": location,
                    "sourceType": source,
                    "baseCheckTime": base,
                    "userCheckTime": user_time,
                    "workDate": work_date,
                    "recordId": 42_833_700_000_i64 + seq,
                    "planId": 145_583_510_000_i64 + seq,
                    "groupId": 685_935_028,
                    "procInstId": null,
                    "approveId": null,
                }));
            }
        }
    }
    rows
}
