//! The services and entity sets the fake serves: names, keys, property types, navigation.
//!
//! Entities are held in one internal representation whatever the OData version: strings and
//! GUIDs as JSON strings, decimals as canonical decimal strings, dates as epoch milliseconds
//! (a JSON integer), booleans as booleans. `encode` turns them into the v2 or v4 wire format.

use serde_json::{Map, Value};

/// An EDM primitive type, as far as the fake distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edm {
    /// `Edm.String`.
    Str,
    /// `Edm.Guid`.
    Guid,
    /// `Edm.Decimal` (v2: a JSON string; v4: a JSON number).
    Decimal,
    /// `Edm.Boolean`.
    Bool,
    /// v2 `Edm.DateTime` (`/Date(ms)/`), v4 `Edm.Date` (`2024-05-01`).
    Date,
    /// `Edm.DateTimeOffset` (v2 `/Date(ms+0000)/`, v4 ISO 8601 with `Z`).
    DateTimeOffset,
}

impl Edm {
    /// The EDM type name in `$metadata`, per version.
    pub fn name(self, v4: bool) -> &'static str {
        match self {
            Edm::Str => "Edm.String",
            Edm::Guid => "Edm.Guid",
            Edm::Decimal => "Edm.Decimal",
            Edm::Bool => "Edm.Boolean",
            Edm::Date if v4 => "Edm.Date",
            Edm::Date => "Edm.DateTime",
            Edm::DateTimeOffset => "Edm.DateTimeOffset",
        }
    }
}

/// A to-many navigation property: `name` leads to `target` where `target.to == self.from`.
#[derive(Debug)]
pub struct Nav {
    /// Navigation property name (`to_PurchaseReqnItem`).
    pub name: &'static str,
    /// Target entity set.
    pub target: &'static str,
    /// Property of this entity.
    pub from: &'static str,
    /// Property of the target entity that equals `from`.
    pub to: &'static str,
}

/// An entity set and its type.
#[derive(Debug)]
pub struct EntitySet {
    /// Entity set name (`A_EnterpriseProjectElement`).
    pub name: &'static str,
    /// Key properties, in key order.
    pub keys: &'static [&'static str],
    /// Every property with its type, in `$metadata` order.
    pub props: &'static [(&'static str, Edm)],
    /// To-many navigation properties.
    pub navs: &'static [Nav],
    /// Whether create/update/delete are allowed (stock is read-only).
    pub writable: bool,
    /// The change timestamp property that also drives the ETag, if the type has one.
    pub changed: Option<&'static str>,
}

impl EntitySet {
    /// The type of property `name`.
    pub fn prop(&self, name: &str) -> Option<Edm> {
        self.props.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
    }

    /// The navigation property `name`.
    pub fn nav(&self, name: &str) -> Option<&Nav> {
        self.navs.iter().find(|n| n.name == name)
    }

    /// The entity type name (`A_EnterpriseProjectElementType`).
    pub fn type_name(&self) -> String {
        format!("{}Type", self.name)
    }
}

/// One OData service, reachable as v2 and as v4.
#[derive(Debug)]
pub struct Service {
    /// v2 technical name (`API_ENTERPRISE_PROJECT_SRV`).
    pub v2_name: &'static str,
    /// v2 version served (`0001` unless the path says `;v=0002`).
    pub v2_version: &'static str,
    /// v4 path below `/sap/opu/odata4/sap/`: binding, `srvd_a2x`, `sap`, definition, version.
    pub v4_path: &'static str,
    /// SAP component, for error bodies.
    pub component: &'static str,
    /// Entity sets.
    pub sets: &'static [EntitySet],
}

impl Service {
    /// The entity set `name`.
    pub fn set(&self, name: &str) -> Option<&'static EntitySet> {
        self.sets.iter().find(|s| s.name == name)
    }
}

/// Enterprise projects and their WBS elements.
pub const ENTERPRISE_PROJECT: Service = Service {
    v2_name: "API_ENTERPRISE_PROJECT_SRV",
    v2_version: "0002",
    v4_path: "api_enterpriseproject/srvd_a2x/sap/enterpriseproject/0002",
    component: "PPM-SCL-STR",
    sets: &[
        EntitySet {
            name: "A_EnterpriseProject",
            keys: &["ProjectUUID"],
            props: &[
                ("ProjectUUID", Edm::Guid),
                ("ProjectInternalID", Edm::Str),
                ("Project", Edm::Str),
                ("ProjectDescription", Edm::Str),
                ("EnterpriseProjectType", Edm::Str),
                ("ProjectStartDate", Edm::Date),
                ("ProjectEndDate", Edm::Date),
                ("ProcessingStatus", Edm::Str),
                ("ResponsibleCostCenter", Edm::Str),
                ("ProfitCenter", Edm::Str),
                ("CompanyCode", Edm::Str),
                ("ControllingArea", Edm::Str),
                ("Plant", Edm::Str),
                ("ProjectCurrency", Edm::Str),
                ("ProjectManagerName", Edm::Str),
                ("LastChangeDateTime", Edm::DateTimeOffset),
            ],
            navs: &[Nav {
                name: "to_EnterpriseProjectElement",
                target: "A_EnterpriseProjectElement",
                from: "ProjectUUID",
                to: "ProjectUUID",
            }],
            writable: true,
            changed: Some("LastChangeDateTime"),
        },
        EntitySet {
            name: "A_EnterpriseProjectElement",
            keys: &["ProjectElementUUID"],
            props: &[
                ("ProjectElementUUID", Edm::Guid),
                ("ProjectElement", Edm::Str),
                ("WBSElementInternalID", Edm::Str),
                ("ProjectUUID", Edm::Guid),
                ("ParentObjectUUID", Edm::Guid),
                ("ProjectElementDescription", Edm::Str),
                ("PlannedStartDate", Edm::Date),
                ("PlannedEndDate", Edm::Date),
                ("ResponsibleCostCenter", Edm::Str),
                ("CostCenter", Edm::Str),
                ("ProfitCenter", Edm::Str),
                ("CompanyCode", Edm::Str),
                ("ControllingArea", Edm::Str),
                ("WBSElementIsBillingElement", Edm::Bool),
                ("ProcessingStatus", Edm::Str),
                ("LastChangeDateTime", Edm::DateTimeOffset),
            ],
            navs: &[],
            writable: true,
            changed: Some("LastChangeDateTime"),
        },
    ],
};

/// Cost centers.
pub const COST_CENTER: Service = Service {
    v2_name: "API_COSTCENTER_SRV",
    v2_version: "0001",
    v4_path: "api_costcenter/srvd_a2x/sap/costcenter/0001",
    component: "CO-OM-CCA",
    sets: &[EntitySet {
        name: "A_CostCenter",
        keys: &["ControllingArea", "CostCenter", "ValidityEndDate"],
        props: &[
            ("ControllingArea", Edm::Str),
            ("CostCenter", Edm::Str),
            ("ValidityEndDate", Edm::Date),
            ("ValidityStartDate", Edm::Date),
            ("CompanyCode", Edm::Str),
            ("BusinessArea", Edm::Str),
            ("CostCenterName", Edm::Str),
            ("CostCtrResponsiblePersonName", Edm::Str),
            ("CostCtrResponsibleUser", Edm::Str),
            ("CostCenterCategory", Edm::Str),
            ("CostCenterCurrency", Edm::Str),
            ("ProfitCenter", Edm::Str),
        ],
        navs: &[],
        writable: true,
        changed: None,
    }],
};

/// Purchase requisitions.
pub const PURCHASE_REQ: Service = Service {
    v2_name: "API_PURCHASEREQ_PROCESS_SRV",
    v2_version: "0001",
    v4_path: "api_purchaserequisition_2/srvd_a2x/sap/purchaserequisition/0001",
    component: "MM-PUR-REQ",
    sets: &[
        EntitySet {
            name: "A_PurchaseRequisitionHeader",
            keys: &["PurchaseRequisition"],
            props: &[
                ("PurchaseRequisition", Edm::Str),
                ("PurchaseRequisitionType", Edm::Str),
                ("PurReqnDescription", Edm::Str),
                ("SourceDetermination", Edm::Bool),
                ("CreatedByUser", Edm::Str),
                ("LastChangeDateTime", Edm::DateTimeOffset),
            ],
            navs: &[Nav {
                name: "to_PurchaseReqnItem",
                target: "A_PurchaseRequisitionItem",
                from: "PurchaseRequisition",
                to: "PurchaseRequisition",
            }],
            writable: true,
            changed: Some("LastChangeDateTime"),
        },
        EntitySet {
            name: "A_PurchaseRequisitionItem",
            keys: &["PurchaseRequisition", "PurchaseRequisitionItem"],
            props: &[
                ("PurchaseRequisition", Edm::Str),
                ("PurchaseRequisitionItem", Edm::Str),
                ("PurchaseRequisitionItemText", Edm::Str),
                ("Material", Edm::Str),
                ("MaterialGroup", Edm::Str),
                ("Plant", Edm::Str),
                ("RequestedQuantity", Edm::Decimal),
                ("BaseUnit", Edm::Str),
                ("PurchaseRequisitionPrice", Edm::Decimal),
                ("PurReqnPriceQuantity", Edm::Decimal),
                ("PurReqnItemCurrency", Edm::Str),
                ("AccountAssignmentCategory", Edm::Str),
                ("CostCenter", Edm::Str),
                ("WBSElement", Edm::Str),
                ("PurReqnReleaseStatus", Edm::Str),
                ("PurchasingOrganization", Edm::Str),
                ("DeliveryDate", Edm::Date),
                ("LastChangeDateTime", Edm::DateTimeOffset),
            ],
            navs: &[],
            writable: true,
            changed: Some("LastChangeDateTime"),
        },
    ],
};

/// Material stock (read-only).
pub const MATERIAL_STOCK: Service = Service {
    v2_name: "API_MATERIAL_STOCK_SRV",
    v2_version: "0001",
    v4_path: "api_materialstock/srvd_a2x/sap/materialstock/0001",
    component: "MM-IM-GF",
    sets: &[EntitySet {
        name: "A_MatlStkInAcctMod",
        keys: &[
            "Material",
            "Plant",
            "StorageLocation",
            "Batch",
            "Supplier",
            "Customer",
            "WBSElementInternalID",
            "SDDocument",
            "SDDocumentItem",
            "InventorySpecialStockType",
            "InventoryStockType",
        ],
        props: &[
            ("Material", Edm::Str),
            ("Plant", Edm::Str),
            ("StorageLocation", Edm::Str),
            ("Batch", Edm::Str),
            ("Supplier", Edm::Str),
            ("Customer", Edm::Str),
            ("WBSElementInternalID", Edm::Str),
            ("SDDocument", Edm::Str),
            ("SDDocumentItem", Edm::Str),
            ("InventorySpecialStockType", Edm::Str),
            ("InventoryStockType", Edm::Str),
            ("WBSElementExternalID", Edm::Str),
            ("MaterialBaseUnit", Edm::Str),
            ("MatlWrhsStkQtyInMatlBaseUnit", Edm::Decimal),
        ],
        navs: &[],
        writable: false,
        changed: None,
    }],
};

/// Every service the fake serves.
pub const SERVICES: &[&Service] = &[&ENTERPRISE_PROJECT, &COST_CENTER, &PURCHASE_REQ, &MATERIAL_STOCK];

/// One stored entity: its properties in the internal representation, plus the change time
/// that drives its ETag (for types without a change timestamp too).
#[derive(Clone, Debug, PartialEq)]
pub struct Entity {
    /// Properties, internal representation.
    pub fields: Map<String, Value>,
    /// Sandbox-clock milliseconds of the last change.
    pub changed_ms: i64,
}

impl Entity {
    /// Whether the key properties of this entity equal `key` (internal values, key order).
    pub fn has_key(&self, set: &EntitySet, key: &[Value]) -> bool {
        set.keys.len() == key.len()
            && set.keys.iter().zip(key).all(|(k, v)| match (self.fields.get(*k), v) {
                (Some(Value::String(a)), Value::String(b)) => a.eq_ignore_ascii_case(b),
                (Some(a), b) => a == b,
                (None, _) => false,
            })
    }

    /// The key values, in key order.
    pub fn key(&self, set: &EntitySet) -> Vec<Value> {
        set.keys.iter().map(|k| self.fields.get(*k).cloned().unwrap_or(Value::Null)).collect()
    }
}
