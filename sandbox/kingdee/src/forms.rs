//! The business objects (forms) the fake knows, and their seed data from
//! `qiao_sandbox_kit::seed`.
//!
//! Base data: cost centers (`CB_CostCenter`, `CB0101`…), employees (`BD_Empinfo`, `E0001`…),
//! materials (`BD_MATERIAL`, `M-1001`…). Bills: the project labour-cost bill `PRJ_LaborCost`
//! (a custom BOS form, see the README for why) and purchase requisitions `PUR_Requisition`
//! with their `FEntity` entry table.

use qiao_sandbox_kit::seed;
use serde_json::{Value, json};

/// A reference to base data: the field, the base-data form, the label shown in messages.
#[derive(Debug, Clone, Copy)]
pub struct RefField {
    /// Field key in the model (`FCostCenterId`).
    pub field: &'static str,
    /// Base-data form id (`CB_CostCenter`).
    pub form: &'static str,
    /// Chinese label.
    pub label: &'static str,
}

/// A bill form's rules.
#[derive(Debug, Clone, Copy)]
pub struct BillDef {
    /// Prefix of generated bill numbers (`RGCB` → `RGCB000001`).
    pub prefix: &'static str,
    /// Required header fields with their labels.
    pub required: &'static [(&'static str, &'static str)],
    /// Header base-data references.
    pub refs: &'static [RefField],
    /// Header fields that must be numbers greater than zero, with their labels.
    pub positive: &'static [(&'static str, &'static str)],
    /// The entry table, if the bill has one.
    pub entry: Option<EntryDef>,
}

/// An entry table's rules.
#[derive(Debug, Clone, Copy)]
pub struct EntryDef {
    /// Entry key (`FEntity`).
    pub key: &'static str,
    /// Fields of the entry (to tell entry fields from header fields in queries).
    pub fields: &'static [&'static str],
    /// Required entry fields with their labels.
    pub required: &'static [(&'static str, &'static str)],
    /// Entry base-data references.
    pub refs: &'static [RefField],
    /// Entry fields that must be numbers greater than zero.
    pub positive: &'static [(&'static str, &'static str)],
}

/// A form.
#[derive(Debug, Clone, Copy)]
pub struct FormDef {
    /// FormId.
    pub id: &'static str,
    /// Chinese name.
    pub name: &'static str,
    /// `None` for base data (read-only here).
    pub bill: Option<BillDef>,
}

/// The project labour-cost bill.
pub const LABOR_COST: &str = "PRJ_LaborCost";
/// Purchase requisitions.
pub const REQUISITION: &str = "PUR_Requisition";
/// Cost centers.
pub const COST_CENTER: &str = "CB_CostCenter";
/// Employees.
pub const EMPLOYEE: &str = "BD_Empinfo";
/// Materials.
pub const MATERIAL: &str = "BD_MATERIAL";

/// Every form, base data first.
pub const FORMS: &[FormDef] = &[
    FormDef { id: COST_CENTER, name: "成本中心", bill: None },
    FormDef { id: EMPLOYEE, name: "员工", bill: None },
    FormDef { id: MATERIAL, name: "物料", bill: None },
    FormDef {
        id: LABOR_COST,
        name: "项目人工成本单",
        bill: Some(BillDef {
            prefix: "RGCB",
            required: &[
                ("FDate", "业务日期"),
                ("FCostCenterId", "成本中心"),
                ("FEmployeeId", "员工"),
                ("FHours", "工时"),
            ],
            refs: &[
                RefField { field: "FCostCenterId", form: COST_CENTER, label: "成本中心" },
                RefField { field: "FEmployeeId", form: EMPLOYEE, label: "员工" },
            ],
            positive: &[("FHours", "工时")],
            entry: None,
        }),
    },
    FormDef {
        id: REQUISITION,
        name: "采购申请单",
        bill: Some(BillDef {
            prefix: "CGSQ",
            required: &[("FApplicationDate", "申请日期")],
            refs: &[RefField { field: "FApplicantId", form: EMPLOYEE, label: "申请人" }],
            positive: &[],
            entry: Some(EntryDef {
                key: "FEntity",
                fields: &["FEntryID", "FSeq", "FMaterialId", "FReqQty", "FEntryNote"],
                required: &[("FMaterialId", "物料编码"), ("FReqQty", "申请数量")],
                refs: &[RefField { field: "FMaterialId", form: MATERIAL, label: "物料编码" }],
                positive: &[("FReqQty", "申请数量")],
            }),
        }),
    },
];

/// The form `id` (matched case-insensitively, like the server).
pub fn form(id: &str) -> Option<&'static FormDef> {
    FORMS.iter().find(|f| f.id.eq_ignore_ascii_case(id))
}

/// How many labour-cost bills are seeded.
pub const SEEDED_LABOR_COST: usize = 160;
/// How many requisitions are seeded.
pub const SEEDED_REQUISITIONS: usize = 30;

/// Seed rows per form, in FormId order of [`FORMS`]; ids are assigned by the caller through
/// `next_id`.
pub fn seed_rows(next_id: &mut dyn FnMut() -> i64) -> Vec<(&'static str, Vec<Value>)> {
    let audited = "2025-01-02T09:00:00";
    let cost_centers: Vec<Value> = seed::PROJECTS
        .iter()
        .map(|p| {
            json!({"FID": next_id(), "FNumber": p.kingdee_cost_center, "FName": format!("{}成本中心", p.name),
                   "FDocumentStatus": "C", "FForbidStatus": "A", "FModifyDate": audited})
        })
        .collect();
    let employees: Vec<Value> = seed::PEOPLE
        .iter()
        .map(|p| {
            json!({"FID": next_id(), "FNumber": p.employee_no, "FName": p.name, "FStaffNumber": p.employee_no,
                   "FEmail": p.email, "FDocumentStatus": "C", "FForbidStatus": "A", "FModifyDate": audited})
        })
        .collect();
    let materials: Vec<Value> = seed::MATERIALS
        .iter()
        .map(|m| {
            json!({"FID": next_id(), "FNumber": m.number, "FName": m.name, "FSpecification": "",
                   "FBaseUnitId": {"FNumber": m.unit}, "FDocumentStatus": "C", "FForbidStatus": "A",
                   "FModifyDate": audited})
        })
        .collect();
    vec![(COST_CENTER, cost_centers), (EMPLOYEE, employees), (MATERIAL, materials)]
}

/// A base-data reference as stored on a bill: internal id, number and name.
pub fn reference(row: &Value) -> Value {
    json!({"Id": row["FID"], "FNumber": row["FNumber"], "FName": row["FName"]})
}

/// The status of seeded bill `i`: mostly audited, some created or under approval.
pub fn seeded_status(i: usize) -> &'static str {
    match i % 5 {
        0 => "A",
        1 => "B",
        _ => "C",
    }
}

/// The modify time of seeded bill `i`: 37 minutes apart from 2025-03-01 09:00 (UTC+8), every
/// tenth bill sharing the instant of the one before (so cursors must handle ties).
pub fn seeded_modified(i: usize) -> String {
    let step = if i % 10 == 9 { i - 1 } else { i };
    let minutes = step as i64 * 37;
    let base = 9 * 60 + minutes;
    let day = 1 + base / (24 * 60);
    let (month, day) = if day > 31 { (4, day - 31) } else { (3, day) };
    let mins = base % (24 * 60);
    format!("2025-{month:02}-{day:02}T{:02}:{:02}:00", mins / 60, mins % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_times_increase_with_ties() {
        assert_eq!(seeded_modified(0), "2025-03-01T09:00:00");
        assert_eq!(seeded_modified(1), "2025-03-01T09:37:00");
        assert_eq!(seeded_modified(9), seeded_modified(8));
        let all: Vec<String> = (0..SEEDED_LABOR_COST).map(seeded_modified).collect();
        assert!(all.windows(2).all(|w| w[0] <= w[1]), "{all:?}");
        assert!(form("prj_laborcost").is_some());
    }
}
