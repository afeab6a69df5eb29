//! Small key-value state scoped to one connection: cached tokens, session ids, CSRF tokens.
//! The host makes a fresh connector instance per call, so this is the only memory between
//! calls. Two connections of the same connector never see each other's keys.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Error, Result, sys};

/// The value stored under `key`.
pub fn get(key: &str) -> Option<Vec<u8>> {
    sys::kv_get(key)
}

/// The JSON value stored under `key`; `None` when absent or when it does not decode as `T`
/// (treat it as a cache miss).
pub fn get_json<T: DeserializeOwned>(key: &str) -> Option<T> {
    get(key).and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// Stores `value` under `key`. The host refuses keys and values over its size limits; that
/// is a `permanent` error.
pub fn set(key: &str, value: &[u8]) -> Result<()> {
    sys::kv_set(key, value).map_err(|e| Error::permanent(format!("kv set of key {key:?} refused: {e}")))
}

/// Stores `value` as JSON under `key`.
pub fn set_json<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| Error::permanent(format!("kv value for key {key:?} does not serialize to JSON: {e}")))?;
    set(key, &bytes)
}

/// Removes `key` (nothing happens when it is absent).
pub fn delete(key: &str) {
    sys::kv_delete(key);
}
