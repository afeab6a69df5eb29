//! The fake's starting data: ~120 issues over the shared projects and ~200 worklogs by the
//! shared people, generated deterministically around the sandbox clock's "now".

use std::collections::BTreeMap;

use qiao_sandbox_kit::seed::{JIRA_STATUSES, PEOPLE, PROJECTS};
use serde_json::json;

use crate::model::{ISSUE_TYPES, Issue, User, Worklog};

/// Issues per project.
pub const ISSUES_PER_PROJECT: u32 = 30;
/// Seeded worklogs.
pub const WORKLOGS: u64 = 200;
/// First issue id.
pub const FIRST_ISSUE_ID: u64 = 10_001;
/// First worklog id.
pub const FIRST_WORKLOG_ID: u64 = 30_001;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Subject areas per project, in project order.
const AREAS: [&[&str]; 4] = [
    &["采购订单", "销售发货", "库存盘点", "成本核算", "总账凭证", "应付账款"],
    &["工单排程", "质量检验", "设备点检", "生产报工", "物料追溯", "工艺路线"],
    &["客户档案", "商机跟进", "合同审批", "报价单", "售后工单", "会员积分"],
    &["服务器巡检", "数据库备份", "网络割接", "监控告警", "证书续期", "机房搬迁"],
];

const WORK: &[&str] = &[
    "流程优化",
    "接口对接",
    "数据迁移",
    "性能调优",
    "缺陷修复",
    "需求评审",
    "上线准备",
    "单元测试",
    "文档编写",
    "用户培训",
];

const LABELS: &[&str] = &["紧急", "客户需求", "二期", "技术债"];

const WORKLOG_NOTES: &[&str] =
    &["需求沟通", "编码实现", "联调测试", "现场支持", "问题排查", "方案评审", "数据核对", "部署上线"];

/// The custom field holding an issue's SAP WBS element (`WBS 元素`).
pub const WBS_FIELD: &str = "customfield_10100";

/// Issue N of a project carries the project's N-th top WBS element (so those issues map one
/// to one onto SAP WBS elements); other issues leave the field empty.
fn wbs_field(project: usize, number: u32) -> serde_json::Map<String, serde_json::Value> {
    let mut custom = serde_json::Map::new();
    if let Some(wbs) = PROJECTS[project].sap_wbs.get(number as usize - 1) {
        custom.insert(WBS_FIELD.into(), json!(wbs));
    }
    custom
}

/// Generates the issues and worklogs, `now_ms` being the sandbox clock at start.
pub fn generate(now_ms: i64) -> (Vec<Issue>, Vec<Worklog>) {
    let mut rng = fastrand::Rng::with_seed(0x71a0);
    let mut issues = Vec::new();
    let mut id = FIRST_ISSUE_ID;
    for number in 1..=ISSUES_PER_PROJECT {
        for (project, areas) in AREAS.iter().enumerate().take(PROJECTS.len()) {
            let area = areas[rng.usize(..areas.len())];
            let work = WORK[rng.usize(..WORK.len())];
            let created_ms = now_ms - 12 * DAY - rng.i64(0..18 * DAY) + i64::from(number) * MINUTE;
            // Updates spread over the last ten days, distinct to the millisecond.
            let updated_ms =
                (now_ms - 2 * HOUR - rng.i64(0..10 * DAY)).max(created_ms + HOUR) + id as i64 % 1000;
            let labels =
                if rng.u8(..4) == 0 { vec![LABELS[rng.usize(..LABELS.len())].to_string()] } else { vec![] };
            issues.push(Issue {
                id,
                project,
                number,
                issue_type: rng.usize(..ISSUE_TYPES.len()),
                summary: format!("{area}{work}"),
                description: Some(json!({"type": "doc", "version": 1, "content": [
                    {"type": "paragraph", "content": [{"type": "text", "text": format!("{}：{area}{work}，详见需求文档。", PROJECTS[project].name)}]}
                ]})),
                status: rng.usize(..JIRA_STATUSES.len()),
                assignee: (rng.u8(..8) != 0).then(|| User::Person(rng.usize(..PEOPLE.len()))),
                reporter: User::Person(PROJECTS[project].manager),
                labels,
                custom: wbs_field(project, number),
                estimate_seconds: 3600 * rng.u64(2..=40),
                created_ms,
                updated_ms,
                comments: vec![],
                properties: BTreeMap::new(),
            });
            id += 1;
        }
    }
    let mut worklogs = Vec::new();
    for n in 0..WORKLOGS {
        let issue = &issues[rng.usize(..issues.len())];
        let seconds = 1800 * rng.u64(1..=16);
        let started_ms = (now_ms - rng.i64(HOUR..14 * DAY)) / MINUTE * MINUTE;
        let logged_ms = (started_ms + seconds as i64 * 1000 + rng.i64(0..2 * HOUR)).min(now_ms - 10 * MINUTE);
        let mut updated_ms = logged_ms;
        if rng.u8(..5) == 0 {
            updated_ms = (logged_ms + rng.i64(MINUTE..DAY)).min(now_ms - 5 * MINUTE);
        }
        let note = WORKLOG_NOTES[rng.usize(..WORKLOG_NOTES.len())];
        worklogs.push(Worklog {
            id: FIRST_WORKLOG_ID + n,
            issue_id: issue.id,
            author: User::Person(rng.usize(..PEOPLE.len())),
            comment: Some(json!({"type": "doc", "version": 1, "content": [
                {"type": "paragraph", "content": [{"type": "text", "text": format!("{note}：{}", issue.summary)}]}
            ]})),
            started_ms,
            time_spent_seconds: seconds,
            created_ms: logged_ms,
            // Distinct to the millisecond, like real update stamps.
            updated_ms: updated_ms + n as i64,
            properties: BTreeMap::new(),
        });
    }
    (issues, worklogs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_deterministic_and_realistic() {
        let now = 1_714_612_443_512;
        let (issues, worklogs) = generate(now);
        assert_eq!(issues.len(), 120);
        assert_eq!(worklogs.len(), 200);
        assert!(issues.iter().all(|i| i.updated_ms < now && i.updated_ms > now - 11 * DAY));
        assert!(worklogs.iter().all(|w| w.updated_ms < now - 60_000));
        let mut stamps: Vec<i64> = worklogs.iter().map(|w| w.updated_ms).collect();
        stamps.sort_unstable();
        stamps.dedup();
        assert_eq!(stamps.len(), 200, "worklog update stamps are distinct");
        let (again, _) = generate(now);
        assert_eq!(again[7].summary, issues[7].summary);
        assert!(issues.iter().any(|i| i.status_name() == "进行中"));
    }
}
