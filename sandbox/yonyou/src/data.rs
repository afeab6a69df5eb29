//! The seeded master and business data: departments, staff, projects and materials from
//! `qiao_sandbox_kit::seed`, plus generated payment applications (付款申请单) to page through.

use qiao_sandbox_kit::seed::{MATERIALS, PEOPLE, PROJECTS};
use serde_json::{Value, json};

/// How many payment applications are seeded.
pub const PAYMENT_APPLY_COUNT: usize = 180;

/// The account book the voucher APIs accept.
pub const ACCBOOK_CODE: &str = "0001";

/// Base of the 19-digit ids.
const ID_BASE: u64 = 2_172_161_512_886_528_000;

/// A 19-digit id in a numbered family (`family` 1..9), as Yonyou issues them.
pub fn id(family: u64, n: u64) -> u64 {
    ID_BASE + family * 10_000_000 + n
}

/// Departments: code, name, parent code.
pub const DEPARTMENTS: &[(&str, &str, &str)] = &[
    ("D01", "研发中心", ""),
    ("D0101", "研发一部", "D01"),
    ("D0102", "智能制造事业部", "D01"),
    ("D02", "营销中心", ""),
    ("D0201", "市场部", "D02"),
    ("D03", "运营中心", ""),
    ("D0301", "信息中心", "D03"),
];

/// Accounting subjects the voucher API accepts: code, name.
pub const SUBJECTS: &[(&str, &str)] = &[
    ("1002", "银行存款"),
    ("2202", "应付账款"),
    ("2211", "应付职工薪酬"),
    ("5001", "生产成本"),
    ("5301", "研发支出"),
    ("6602", "管理费用"),
];

/// The department of person `i`: the one of the project they manage, else round robin.
fn person_dept(i: usize) -> &'static str {
    PROJECTS
        .iter()
        .find(|p| p.manager == i)
        .map(|p| p.yonyou_dept)
        .unwrap_or_else(|| PROJECTS[i % PROJECTS.len()].yonyou_dept)
}

fn dept_name(code: &str) -> &'static str {
    DEPARTMENTS.iter().find(|d| d.0 == code).map(|d| d.1).unwrap_or("")
}

/// `data` of the department tree query: a flat array with parent codes.
pub fn departments() -> Vec<Value> {
    DEPARTMENTS
        .iter()
        .enumerate()
        .map(|(i, (code, name, parent))| {
            json!({"id": id(1, i as u64 + 1), "code": code, "name": name, "parent_code": parent,
                   "enable": 1, "pubts": "2024-01-02 09:00:00"})
        })
        .collect()
}

/// Staff records.
pub fn staff() -> Vec<Value> {
    PEOPLE
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let dept = person_dept(i);
            json!({"id": id(2, i as u64 + 1), "code": p.employee_no, "name": p.name, "email": p.email,
                   "dept_code": dept, "dept_name": dept_name(dept), "hourly_rate": p.hourly_rate,
                   "enable": 1, "pubts": format!("2024-01-{:02} 10:00:00", i + 3)})
        })
        .collect()
}

/// Project records. A project's Yonyou code is its Jira key (the seed has no other).
pub fn projects() -> Vec<Value> {
    PROJECTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let manager = &PEOPLE[p.manager];
            json!({"id": id(3, i as u64 + 1), "code": p.jira_key, "name": p.name,
                   "dept_code": p.yonyou_dept, "dept_name": dept_name(p.yonyou_dept),
                   "manager_code": manager.employee_no, "manager_name": manager.name,
                   "budget": p.budget.parse::<f64>().unwrap_or(0.0), "currency": "CNY",
                   "status": 1, "enable": 1, "pubts": format!("2024-02-{:02} 09:30:00", i + 1)})
        })
        .collect()
}

/// Material records.
pub fn materials() -> Vec<Value> {
    MATERIALS
        .iter()
        .enumerate()
        .map(|(i, m)| {
            json!({"id": id(4, i as u64 + 1), "code": m.number, "name": m.name, "unit": m.unit,
                   "price": m.price.parse::<f64>().unwrap_or(0.0), "stock": m.stock,
                   "pubts": format!("2024-03-{:02} 14:00:00", i + 1)})
        })
        .collect()
}

const PURPOSES: &[&str] =
    &["差旅费报销", "外包服务费", "设备采购付款", "软件许可费", "会议培训费", "办公用品采购"];

/// Payment applications (付款申请单), one every 37 minutes from 2024-05-01 08:00, spread over
/// the projects and their staff; amounts are deterministic.
pub fn payment_applies() -> Vec<Value> {
    (0..PAYMENT_APPLY_COUNT)
        .map(|n| {
            let project = &PROJECTS[n % PROJECTS.len()];
            let person = &PEOPLE[(n * 5 + 1) % PEOPLE.len()];
            let minutes = 8 * 60 + n * 37;
            let (day, hour, minute) = (1 + minutes / (24 * 60), (minutes / 60) % 24, minutes % 60);
            let stamp = format!("2024-05-{day:02} {hour:02}:{minute:02}:00");
            let amount = ((n * 7919) % 4_800 + 200) as f64 * 10.0 + if n % 3 == 0 { 0.5 } else { 0.0 };
            json!({
                "id": id(5, n as u64 + 1),
                "code": format!("FKSQ-2024-{:04}", n + 1),
                "vouchdate": format!("2024-05-{day:02} 00:00:00"),
                "dept_code": project.yonyou_dept,
                "dept_name": dept_name(project.yonyou_dept),
                "project_code": project.jira_key,
                "project_name": project.name,
                "staff_code": person.employee_no,
                "staff_name": person.name,
                "description": PURPOSES[n % PURPOSES.len()],
                "oriSum": amount,
                "currency": "CNY",
                "status": if n % 4 == 0 { 0 } else { 1 },
                "pubts": stamp,
            })
        })
        .collect()
}

/// Account books (the legacy `{success, data}` base-doc answer).
pub fn accbooks() -> Vec<Value> {
    vec![json!({"id": id(6, 1), "code": ACCBOOK_CODE, "name": "乔科技主账簿", "currency": "CNY"})]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_are_unique_and_nineteen_digits() {
        let all: Vec<Value> =
            [departments(), staff(), projects(), materials(), payment_applies(), accbooks()].concat();
        let mut ids: Vec<u64> = all.iter().filter_map(|r| r["id"].as_u64()).collect();
        assert_eq!(ids.len(), all.len());
        assert!(ids.iter().all(|i| i.to_string().len() == 19));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn payment_applies_are_ordered_by_pubts_and_reference_known_departments() {
        let rows = payment_applies();
        assert_eq!(rows.len(), PAYMENT_APPLY_COUNT);
        let stamps: Vec<&str> = rows.iter().filter_map(|r| r["pubts"].as_str()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
        assert!(rows.iter().all(|r| DEPARTMENTS.iter().any(|d| r["dept_code"] == d.0)));
        assert_eq!(staff()[0]["dept_code"], "D0101");
    }
}
