//! Seed data from the shared master data (`qiao_sandbox_kit::seed`): enterprise projects and
//! their WBS elements, cost centers in controlling area A000, material stock, and purchase
//! requisitions, plus generated WBS elements and requisitions so every set pages.

use std::collections::HashMap;

use qiao_sandbox_kit::seed::{MATERIALS, PEOPLE, PROJECTS};
use serde_json::{Map, Value, json};

use crate::model::Entity;

/// 2024-05-01T00:00:00Z: seeded change times start here.
pub const SEED_EPOCH_MS: i64 = 1_714_521_600_000;
/// 9999-12-31T00:00:00Z, the open end of a validity period.
pub const END_OF_TIME_MS: i64 = 253_402_214_400_000;
/// How many WBS elements are seeded (the seed's own plus generated children).
pub const WBS_COUNT: usize = 120;
/// How many purchase requisitions are seeded.
pub const PR_COUNT: usize = 110;
/// The first purchase requisition number.
pub const FIRST_PR: u64 = 10_000_001;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

const PHASES: &[&str] = &[
    "需求分析",
    "方案设计",
    "系统开发",
    "集成测试",
    "用户培训",
    "数据迁移",
    "上线切换",
    "运维支持",
    "硬件采购",
    "项目验收",
];

/// `fa163e9c-1d2e-1eda-b0b0-<kind><n>`: stable GUIDs, one namespace per kind.
pub fn guid(kind: u8, n: usize) -> String {
    format!("fa163e9c-1d2e-1eda-b0b0-{kind:02x}{n:010x}")
}

fn entity(fields: Value, changed_ms: i64) -> Entity {
    let fields: Map<String, Value> = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    Entity { fields, changed_ms }
}

/// Every seeded entity set.
pub fn all() -> HashMap<&'static str, Vec<Entity>> {
    let mut sets = HashMap::new();
    sets.insert("A_EnterpriseProject", projects());
    sets.insert("A_EnterpriseProjectElement", wbs_elements());
    sets.insert("A_CostCenter", cost_centers());
    sets.insert("A_MatlStkInAcctMod", stock());
    let (headers, items) = requisitions();
    sets.insert("A_PurchaseRequisitionHeader", headers);
    sets.insert("A_PurchaseRequisitionItem", items);
    sets
}

fn projects() -> Vec<Entity> {
    PROJECTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let changed = SEED_EPOCH_MS + i as i64 * DAY_MS;
            entity(
                json!({
                    "ProjectUUID": guid(1, i + 1),
                    "ProjectInternalID": format!("{:08}", 101 + i),
                    "Project": p.sap_project,
                    "ProjectDescription": p.name,
                    "EnterpriseProjectType": "YP02",
                    "ProjectStartDate": SEED_EPOCH_MS - 30 * DAY_MS,
                    "ProjectEndDate": SEED_EPOCH_MS + 365 * DAY_MS,
                    "ProcessingStatus": "10",
                    "ResponsibleCostCenter": p.sap_cost_center,
                    "ProfitCenter": "YB101",
                    "CompanyCode": "1010",
                    "ControllingArea": "A000",
                    "Plant": "1010",
                    "ProjectCurrency": "CNY",
                    "ProjectManagerName": PEOPLE[p.manager].name,
                    "LastChangeDateTime": changed,
                }),
                changed,
            )
        })
        .collect()
}

/// The WBS elements: first the seed's own (`P-100001.1`, ...), then generated children
/// (`P-100001.1.03`) until [`WBS_COUNT`]. Change times advance one hour every three
/// elements, so several elements share a change time (paging must break ties on the key).
fn wbs_elements() -> Vec<Entity> {
    let mut out = Vec::new();
    let mut tops: Vec<(usize, &str, String)> = Vec::new();
    for (pi, p) in PROJECTS.iter().enumerate() {
        for (wi, wbs) in p.sap_wbs.iter().enumerate() {
            let n = out.len();
            let uuid = guid(2, n + 1);
            tops.push((pi, wbs, uuid.clone()));
            out.push(wbs_entity(
                n,
                pi,
                wbs,
                &format!("{} - {}", p.name, PHASES[wi % PHASES.len()]),
                &uuid,
                &guid(1, pi + 1),
            ));
        }
    }
    let mut child = 0;
    while out.len() < WBS_COUNT {
        let (pi, parent, parent_uuid) = &tops[child % tops.len()];
        let seq = child / tops.len() + 1;
        let n = out.len();
        let id = format!("{parent}.{seq:02}");
        let desc = format!("{} - {}{}", PROJECTS[*pi].name, PHASES[(child + seq) % PHASES.len()], seq);
        out.push(wbs_entity(n, *pi, &id, &desc, &guid(2, n + 1), parent_uuid));
        child += 1;
    }
    out
}

fn wbs_entity(n: usize, pi: usize, id: &str, desc: &str, uuid: &str, parent: &str) -> Entity {
    let p = &PROJECTS[pi];
    let changed = SEED_EPOCH_MS + (n / 3) as i64 * HOUR_MS;
    let start = SEED_EPOCH_MS + (n % 12) as i64 * 7 * DAY_MS;
    entity(
        json!({
            "ProjectElementUUID": uuid,
            "ProjectElement": id,
            "WBSElementInternalID": format!("{:08}", 1000 + n),
            "ProjectUUID": guid(1, pi + 1),
            "ParentObjectUUID": parent,
            "ProjectElementDescription": desc,
            "PlannedStartDate": start,
            "PlannedEndDate": start + 60 * DAY_MS,
            "ResponsibleCostCenter": p.sap_cost_center,
            "CostCenter": p.sap_cost_center,
            "ProfitCenter": "YB101",
            "CompanyCode": "1010",
            "ControllingArea": "A000",
            "WBSElementIsBillingElement": n.is_multiple_of(4),
            "ProcessingStatus": "10",
            "LastChangeDateTime": changed,
        }),
        changed,
    )
}

fn cost_centers() -> Vec<Entity> {
    let mut out: Vec<Entity> = PROJECTS
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let manager = &PEOPLE[p.manager];
            cost_center(p.sap_cost_center, &format!("{}项目组", p.name), manager.name, "E", END_OF_TIME_MS, i)
        })
        .collect();
    let extra = [("10101901", "信息技术部", "H"), ("10102001", "财务部", "H"), ("10102101", "采购部", "H")];
    for (n, (cc, name, cat)) in extra.iter().enumerate() {
        out.push(cost_center(cc, name, PEOPLE[n % PEOPLE.len()].name, cat, END_OF_TIME_MS, out.len()));
    }
    // An expired validity period of the first cost center: the third key part matters.
    out.push(cost_center(
        PROJECTS[0].sap_cost_center,
        "ERP系统升级（旧）",
        PEOPLE[0].name,
        "E",
        SEED_EPOCH_MS - 122 * DAY_MS,
        out.len(),
    ));
    out
}

fn cost_center(cc: &str, name: &str, person: &str, category: &str, end: i64, n: usize) -> Entity {
    let start =
        if end == END_OF_TIME_MS { SEED_EPOCH_MS - 121 * DAY_MS } else { SEED_EPOCH_MS - 3 * 365 * DAY_MS };
    entity(
        json!({
            "ControllingArea": "A000",
            "CostCenter": cc,
            "ValidityEndDate": end,
            "ValidityStartDate": start,
            "CompanyCode": "1010",
            "BusinessArea": "",
            "CostCenterName": name,
            "CostCtrResponsiblePersonName": person,
            "CostCtrResponsibleUser": format!("CB{:08}", 9_980_000 + n),
            "CostCenterCategory": category,
            "CostCenterCurrency": "CNY",
            "ProfitCenter": "YB101",
        }),
        SEED_EPOCH_MS + n as i64 * HOUR_MS,
    )
}

fn stock() -> Vec<Entity> {
    let blank = |m: &str, plant: &str, sloc: &str| {
        json!({
            "Material": m, "Plant": plant, "StorageLocation": sloc, "Batch": "", "Supplier": "",
            "Customer": "", "WBSElementInternalID": "", "SDDocument": "", "SDDocumentItem": "",
            "InventorySpecialStockType": "", "InventoryStockType": "01", "WBSElementExternalID": "",
        })
    };
    let mut out = Vec::new();
    for (i, m) in MATERIALS.iter().enumerate() {
        let mut row = blank(m.number, m.plant, m.storage_location);
        row["MaterialBaseUnit"] = json!(m.unit);
        row["MatlWrhsStkQtyInMatlBaseUnit"] = json!(format!("{}.000", m.stock));
        out.push(entity(row, SEED_EPOCH_MS + i as i64 * HOUR_MS));
        // Project stock (special stock Q) for the first WBS element of each project.
        let p = &PROJECTS[i % PROJECTS.len()];
        let mut q = blank(m.number, m.plant, m.storage_location);
        q["InventorySpecialStockType"] = json!("Q");
        q["WBSElementInternalID"] = json!(format!("{:08}", 1000 + i));
        q["WBSElementExternalID"] = json!(p.sap_wbs[0]);
        q["MaterialBaseUnit"] = json!(m.unit);
        q["MatlWrhsStkQtyInMatlBaseUnit"] = json!(format!("{}.000", 2 + i));
        out.push(entity(q, SEED_EPOCH_MS + i as i64 * HOUR_MS));
    }
    out
}

/// Requisitions `10000001…`, each with one to three items on the seed's materials, assigned
/// to a project WBS element (`P`) or a cost center (`K`).
fn requisitions() -> (Vec<Entity>, Vec<Entity>) {
    let (mut headers, mut items) = (Vec::new(), Vec::new());
    for n in 0..PR_COUNT {
        let pr = (FIRST_PR + n as u64).to_string();
        let p = &PROJECTS[n % PROJECTS.len()];
        let changed = SEED_EPOCH_MS + (n / 2) as i64 * HOUR_MS + 30 * 60_000;
        let first = &MATERIALS[n % MATERIALS.len()];
        headers.push(entity(
            json!({
                "PurchaseRequisition": pr,
                "PurchaseRequisitionType": "NB",
                "PurReqnDescription": format!("{} - {}采购", p.name, first.name),
                "SourceDetermination": false,
                "CreatedByUser": format!("CB{:08}", 9_980_000 + p.manager),
                "LastChangeDateTime": changed,
            }),
            changed,
        ));
        for k in 0..(1 + n % 3) {
            let m = &MATERIALS[(n + k) % MATERIALS.len()];
            let project = k % 2 == 0;
            items.push(entity(
                json!({
                    "PurchaseRequisition": pr,
                    "PurchaseRequisitionItem": format!("{:05}", (k + 1) * 10),
                    "PurchaseRequisitionItemText": m.name,
                    "Material": m.number,
                    "MaterialGroup": "L001",
                    "Plant": m.plant,
                    "RequestedQuantity": format!("{}.000", 1 + (n + k) % 9),
                    "BaseUnit": m.unit,
                    "PurchaseRequisitionPrice": m.price,
                    "PurReqnPriceQuantity": "1",
                    "PurReqnItemCurrency": "CNY",
                    "AccountAssignmentCategory": if project { "P" } else { "K" },
                    "CostCenter": if project { "" } else { p.sap_cost_center },
                    "WBSElement": if project { p.sap_wbs[0] } else { "" },
                    "PurReqnReleaseStatus": if n % 5 == 0 { "02" } else { "01" },
                    "PurchasingOrganization": "1010",
                    "DeliveryDate": SEED_EPOCH_MS + (14 + n as i64 % 30) * DAY_MS,
                    "LastChangeDateTime": changed,
                }),
                changed,
            ));
        }
    }
    (headers, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_use_the_shared_master_data_and_page() {
        let sets = all();
        let wbs = &sets["A_EnterpriseProjectElement"];
        assert_eq!(wbs.len(), WBS_COUNT);
        assert_eq!(wbs[0].fields["ProjectElement"], "P-100001.1");
        assert!(
            wbs[0].fields["ProjectElementDescription"].as_str().unwrap_or_default().contains("ERP系统升级")
        );
        let mut ids: Vec<_> = wbs.iter().map(|e| e.fields["ProjectElement"].to_string()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), WBS_COUNT, "WBS ids are unique");
        assert_eq!(sets["A_PurchaseRequisitionHeader"].len(), PR_COUNT);
        assert!(sets["A_PurchaseRequisitionItem"].len() > PR_COUNT);
        assert!(sets["A_CostCenter"].iter().all(|c| c.fields["ControllingArea"] == "A000"));
        assert_eq!(sets["A_MatlStkInAcctMod"].len(), 2 * MATERIALS.len());
    }
}
