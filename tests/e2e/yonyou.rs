//! The Yonyou YonBIP connector, built to Wasm, against the Yonyou YonBIP fake (being written).
