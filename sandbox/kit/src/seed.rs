//! Master data shared by every fake: the same people, projects, cost centers and materials,
//! each with the identifiers each system uses for it. A flow that moves a Jira worklog into a
//! Kingdee cost voucher maps `PROJECTS[i].jira_key` onto `PROJECTS[i].kingdee_cost_center`;
//! these tables are what an integrator's lookup table holds.

/// An employee, as each system knows them.
#[derive(Debug, Clone, Copy)]
pub struct Person {
    /// Chinese display name.
    pub name: &'static str,
    /// Work e-mail (Jira user, DingTalk org e-mail).
    pub email: &'static str,
    /// Jira Cloud account id.
    pub jira_account_id: &'static str,
    /// DingTalk userid.
    pub dingtalk_user_id: &'static str,
    /// Employee number in the ERPs (Kingdee `BD_Empinfo.FNumber`, Yonyou staff code).
    pub employee_no: &'static str,
    /// Hourly labour rate in CNY, used for cost bookings.
    pub hourly_rate: &'static str,
}

/// Employees.
pub const PEOPLE: &[Person] = &[
    Person {
        name: "张伟",
        email: "zhang.wei@qiao-demo.cn",
        jira_account_id: "5b10a2844c20165700ede21a",
        dingtalk_user_id: "zhangwei01",
        employee_no: "E0001",
        hourly_rate: "180.00",
    },
    Person {
        name: "李娜",
        email: "li.na@qiao-demo.cn",
        jira_account_id: "5b10ac8d82e05b22cc7d4ef5",
        dingtalk_user_id: "lina02",
        employee_no: "E0002",
        hourly_rate: "160.00",
    },
    Person {
        name: "王强",
        email: "wang.qiang@qiao-demo.cn",
        jira_account_id: "5b109f2e9729b51b54dc274d",
        dingtalk_user_id: "wangqiang03",
        employee_no: "E0003",
        hourly_rate: "150.00",
    },
    Person {
        name: "刘洋",
        email: "liu.yang@qiao-demo.cn",
        jira_account_id: "5b10ac8d82e05b22cc7d4ef6",
        dingtalk_user_id: "liuyang04",
        employee_no: "E0004",
        hourly_rate: "200.00",
    },
    Person {
        name: "陈静",
        email: "chen.jing@qiao-demo.cn",
        jira_account_id: "5b10a2844c20165700ede21b",
        dingtalk_user_id: "chenjing05",
        employee_no: "E0005",
        hourly_rate: "140.00",
    },
    Person {
        name: "赵磊",
        email: "zhao.lei@qiao-demo.cn",
        jira_account_id: "5b109f2e9729b51b54dc274e",
        dingtalk_user_id: "zhaolei06",
        employee_no: "E0006",
        hourly_rate: "170.00",
    },
];

/// A project, as each system knows it.
#[derive(Debug, Clone, Copy)]
pub struct Project {
    /// Jira project key.
    pub jira_key: &'static str,
    /// Chinese project name.
    pub name: &'static str,
    /// SAP enterprise project (external id, `A_EnterpriseProject.Project`).
    pub sap_project: &'static str,
    /// SAP WBS elements of the project (`A_EnterpriseProjectElement.ProjectElement`).
    pub sap_wbs: &'static [&'static str],
    /// SAP cost center (controlling area `A000`).
    pub sap_cost_center: &'static str,
    /// Kingdee cost center number (`FCostCenterId.FNumber`).
    pub kingdee_cost_center: &'static str,
    /// Yonyou department / cost center code.
    pub yonyou_dept: &'static str,
    /// Project budget in CNY.
    pub budget: &'static str,
    /// Index into [`PEOPLE`] of the project manager.
    pub manager: usize,
}

/// Projects.
pub const PROJECTS: &[Project] = &[
    Project {
        jira_key: "ERP",
        name: "ERP系统升级",
        sap_project: "P-100001",
        sap_wbs: &["P-100001.1", "P-100001.2"],
        sap_cost_center: "10101101",
        kingdee_cost_center: "CB0101",
        yonyou_dept: "D0101",
        budget: "500000.00",
        manager: 0,
    },
    Project {
        jira_key: "MES",
        name: "智能制造MES实施",
        sap_project: "P-100002",
        sap_wbs: &["P-100002.1", "P-100002.2", "P-100002.3"],
        sap_cost_center: "10101102",
        kingdee_cost_center: "CB0102",
        yonyou_dept: "D0102",
        budget: "800000.00",
        manager: 1,
    },
    Project {
        jira_key: "CRM",
        name: "客户关系管理平台",
        sap_project: "P-100003",
        sap_wbs: &["P-100003.1"],
        sap_cost_center: "10101201",
        kingdee_cost_center: "CB0201",
        yonyou_dept: "D0201",
        budget: "300000.00",
        manager: 3,
    },
    Project {
        jira_key: "OPS",
        name: "数据中心运维",
        sap_project: "P-100004",
        sap_wbs: &["P-100004.1", "P-100004.2"],
        sap_cost_center: "10101301",
        kingdee_cost_center: "CB0301",
        yonyou_dept: "D0301",
        budget: "200000.00",
        manager: 5,
    },
];

/// A material with its stock.
#[derive(Debug, Clone, Copy)]
pub struct Material {
    /// Material number (SAP `Material`, Kingdee `FNumber`).
    pub number: &'static str,
    /// Chinese description.
    pub name: &'static str,
    /// Base unit of measure.
    pub unit: &'static str,
    /// Plant.
    pub plant: &'static str,
    /// Storage location.
    pub storage_location: &'static str,
    /// Unrestricted stock, in the base unit.
    pub stock: &'static str,
    /// Standard price in CNY.
    pub price: &'static str,
}

/// Materials.
pub const MATERIALS: &[Material] = &[
    Material {
        number: "M-1001",
        name: "服务器机柜",
        unit: "EA",
        plant: "1010",
        storage_location: "0001",
        stock: "12",
        price: "8500.00",
    },
    Material {
        number: "M-1002",
        name: "千兆交换机",
        unit: "EA",
        plant: "1010",
        storage_location: "0001",
        stock: "3",
        price: "4200.00",
    },
    Material {
        number: "M-1003",
        name: "六类网线",
        unit: "M",
        plant: "1010",
        storage_location: "0002",
        stock: "1500",
        price: "3.20",
    },
    Material {
        number: "M-1004",
        name: "工业平板电脑",
        unit: "EA",
        plant: "1010",
        storage_location: "0001",
        stock: "0",
        price: "6800.00",
    },
];

/// Jira workflow statuses of the demo projects (Chinese site language), with their category.
pub const JIRA_STATUSES: &[(&str, &str, &str)] = &[
    // (id, name, statusCategory key)
    ("10000", "待办", "new"),
    ("3", "进行中", "indeterminate"),
    ("10001", "测试中", "indeterminate"),
    ("10002", "完成", "done"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managers_exist_and_keys_are_unique() {
        for p in PROJECTS {
            assert!(p.manager < PEOPLE.len(), "{}", p.jira_key);
        }
        let mut keys: Vec<_> = PROJECTS.iter().map(|p| p.jira_key).collect();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), PROJECTS.len());
    }
}
