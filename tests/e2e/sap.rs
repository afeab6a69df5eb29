//! The SAP S/4HANA connector, built to Wasm, against the SAP S/4HANA fake (being written).
