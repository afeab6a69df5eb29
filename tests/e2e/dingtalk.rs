//! The DingTalk connector, built to Wasm, against the DingTalk fake (being written).
