//! The Kingdee K/3 Cloud connector, built to Wasm, against the Kingdee K/3 Cloud fake (being written).
