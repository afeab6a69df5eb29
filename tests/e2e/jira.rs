//! The Jira Cloud connector, built to Wasm, against the Jira Cloud fake (being written).
