//! Connector `kv` state persisted in the store.

use qiao_host::{KvError, KvFuture, KvStore};
use qiao_store::Store;

/// [`KvStore`] over the state store, so cached tokens and sessions survive restarts.
#[derive(Clone)]
pub struct StoreKv(pub Store);

impl KvStore for StoreKv {
    fn get<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, Option<Vec<u8>>> {
        Box::pin(async move { self.0.kv_get(scope, key).map_err(|e| KvError(e.to_string())) })
    }

    fn set<'a>(&'a self, scope: &'a str, key: &'a str, value: Vec<u8>) -> KvFuture<'a, ()> {
        Box::pin(async move { self.0.kv_set(scope, key, value).await.map_err(|e| KvError(e.to_string())) })
    }

    fn delete<'a>(&'a self, scope: &'a str, key: &'a str) -> KvFuture<'a, ()> {
        Box::pin(async move { self.0.kv_delete(scope, key).await.map_err(|e| KvError(e.to_string())) })
    }
}
