//! Fake of SAP S/4HANA OData v2/v4 (being written).
