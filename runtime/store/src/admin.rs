//! State the server keeps beside the engine's: API tokens (only their hashes), the audit log
//! of state-changing admin calls, webhook delivery ids (so a redelivered event is accepted
//! once), and which flows an operator disabled.
//!
//! The store does not know what a role means or how a token is hashed; the server decides.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::model::{BatchMeta, EncodedRecord};
use crate::store::{Store, decode, encode, insert_batch};

/// token hash (hex) → `ApiToken`.
const API_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_tokens");
/// id → `AuditEntry`.
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");
/// (flow, delivery id) → when it was accepted (ms since the epoch).
const DELIVERIES: TableDefinition<(&str, &str), u64> = TableDefinition::new("webhook_deliveries");
/// flow → when it was disabled (ms since the epoch).
const DISABLED_FLOWS: TableDefinition<&str, u64> = TableDefinition::new("disabled_flows");

pub(crate) fn create_tables(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(API_TOKENS)?;
    txn.open_table(AUDIT)?;
    txn.open_table(DELIVERIES)?;
    txn.open_table(DISABLED_FLOWS)?;
    Ok(())
}

/// An API token as stored: never the token itself, only its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiToken {
    /// Its id (shown in listings, used to revoke).
    pub id: u64,
    /// A name for people (`ci-deploy`).
    pub name: String,
    /// The role (`viewer`, `operator`, `admin`).
    pub role: String,
    /// When it was created (ms since the epoch).
    pub created_ms: u64,
}

/// One state-changing admin call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Who: the token's name and id (`ci-deploy#4`), or `cli` for local commands.
    pub actor: String,
    /// The actor's role.
    pub role: String,
    /// HTTP method or CLI command.
    pub action: String,
    /// The route or object (`/api/v1/flows/orders/disable`).
    pub target: String,
    /// The answer's HTTP status (or 0 for CLI commands).
    pub status: u16,
}

/// How a webhook delivery was taken in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Stored as this batch.
    Stored(u64),
    /// Its delivery id was seen before for the flow; nothing was stored.
    Duplicate,
}

impl Store {
    // ----- webhook deliveries ---------------------------------------------------------------

    /// Persists a webhook delivery as a batch (like [`Store::enqueue_batch`]) unless its
    /// `delivery` id was already accepted for `flow`; the check and the insert are one
    /// transaction, so concurrent redeliveries store it once.
    pub async fn enqueue_delivery(
        &self,
        flow: &str,
        delivery: Option<&str>,
        meta: BatchMeta,
        records: &[EncodedRecord],
    ) -> Result<Delivery, StoreError> {
        let id = self.allocate(1);
        let flow = flow.to_string();
        let delivery = delivery.map(str::to_string);
        let now = meta.created_ms;
        let meta_bytes = encode(&meta)?;
        let encoded = records.to_vec();
        let duplicate = Arc::new(AtomicBool::new(false));
        let seen = duplicate.clone();
        self.write(move |txn| {
            if let Some(d) = &delivery {
                let mut table = txn.open_table(DELIVERIES)?;
                if table.get((flow.as_str(), d.as_str()))?.is_some() {
                    // Not an error: an error would fail every write of the group.
                    seen.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                table.insert((flow.as_str(), d.as_str()), now)?;
            }
            insert_batch(txn, &flow, id, &meta_bytes, &encoded)
        })
        .await?;
        Ok(if duplicate.load(Ordering::Relaxed) { Delivery::Duplicate } else { Delivery::Stored(id) })
    }

    /// Forgets delivery ids accepted before `before_ms` (a sender redelivers within hours,
    /// not weeks). Returns how many were removed.
    pub async fn prune_deliveries(&self, before_ms: u64) -> Result<usize, StoreError> {
        let old: Vec<(String, String)> = {
            let txn = self.db().begin_read()?;
            let table = txn.open_table(DELIVERIES)?;
            let mut old = Vec::new();
            for row in table.iter()? {
                let (k, v) = row?;
                if v.value() < before_ms {
                    let (f, d) = k.value();
                    old.push((f.to_string(), d.to_string()));
                }
            }
            old
        };
        let n = old.len();
        if n > 0 {
            self.write(move |txn| {
                let mut table = txn.open_table(DELIVERIES)?;
                for (f, d) in &old {
                    table.remove((f.as_str(), d.as_str()))?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(n)
    }

    // ----- API tokens -----------------------------------------------------------------------

    /// Stores a new token by its hash. Refuses a name already in use.
    pub async fn create_token(
        &self,
        name: &str,
        role: &str,
        hash: &str,
        now_ms: u64,
    ) -> Result<ApiToken, StoreError> {
        if self.list_tokens()?.iter().any(|t| t.name == name) {
            return Err(StoreError::Conflict(format!("a token named {name:?} exists")));
        }
        let token =
            ApiToken { id: self.allocate(1), name: name.into(), role: role.into(), created_ms: now_ms };
        let bytes = encode(&token)?;
        let hash = hash.to_string();
        self.write(move |txn| {
            txn.open_table(API_TOKENS)?.insert(hash.as_str(), bytes.as_slice())?;
            Ok(())
        })
        .await?;
        Ok(token)
    }

    /// The token with this hash, if it exists (not revoked).
    pub fn token_by_hash(&self, hash: &str) -> Result<Option<ApiToken>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(API_TOKENS)?;
        match table.get(hash)? {
            Some(v) => Ok(Some(decode("api token", v.value())?)),
            None => Ok(None),
        }
    }

    /// Every token, by id.
    pub fn list_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(API_TOKENS)?;
        let mut out: Vec<ApiToken> = Vec::new();
        for row in table.iter()? {
            out.push(decode("api token", row?.1.value())?);
        }
        out.sort_by_key(|t| t.id);
        Ok(out)
    }

    /// Deletes the token with this id or name; returns it.
    pub async fn revoke_token(&self, id_or_name: &str) -> Result<ApiToken, StoreError> {
        let found = {
            let txn = self.db().begin_read()?;
            let table = txn.open_table(API_TOKENS)?;
            let mut found = None;
            for row in table.iter()? {
                let (k, v) = row?;
                let t: ApiToken = decode("api token", v.value())?;
                if t.name == id_or_name || t.id.to_string() == id_or_name {
                    found = Some((k.value().to_string(), t));
                    break;
                }
            }
            found
        };
        let Some((hash, token)) = found else {
            return Err(StoreError::NotFound(format!("token {id_or_name:?}")));
        };
        self.write(move |txn| {
            txn.open_table(API_TOKENS)?.remove(hash.as_str())?;
            Ok(())
        })
        .await?;
        Ok(token)
    }

    // ----- audit log ------------------------------------------------------------------------

    /// Appends an entry to the audit log.
    pub async fn append_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        let id = self.allocate(1);
        let bytes = encode(entry)?;
        self.write(move |txn| {
            txn.open_table(AUDIT)?.insert(id, bytes.as_slice())?;
            Ok(())
        })
        .await
    }

    /// The newest `limit` audit entries, newest first.
    pub fn list_audit(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(AUDIT)?;
        let mut out = Vec::new();
        for row in table.iter()?.rev().take(limit) {
            out.push(decode("audit entry", row?.1.value())?);
        }
        Ok(out)
    }

    // ----- disabled flows -------------------------------------------------------------------

    /// Marks a flow disabled (or enabled again); survives restarts.
    pub async fn set_flow_disabled(&self, flow: &str, disabled: bool, now_ms: u64) -> Result<(), StoreError> {
        let flow = flow.to_string();
        self.write(move |txn| {
            let mut table = txn.open_table(DISABLED_FLOWS)?;
            if disabled {
                table.insert(flow.as_str(), now_ms)?;
            } else {
                table.remove(flow.as_str())?;
            }
            Ok(())
        })
        .await
    }

    /// The flows marked disabled.
    pub fn disabled_flows(&self) -> Result<BTreeSet<String>, StoreError> {
        let txn = self.db().begin_read()?;
        let table = txn.open_table(DISABLED_FLOWS)?;
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            out.insert(row?.0.value().to_string());
        }
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::{RecordState, RecordStatus};
    use serde_json::json;

    fn rec() -> RecordState {
        RecordState {
            key: "k".into(),
            data: json!({}),
            next_step: 0,
            outputs: Default::default(),
            status: RecordStatus::Pending,
        }
    }

    #[tokio::test]
    async fn a_delivery_id_is_stored_once_even_concurrently() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let store = store.clone();
            tasks.spawn(async move {
                let meta = BatchMeta { run_id: 1, next_cursor: None, created_ms: 10 };
                store.enqueue_delivery("f", Some("d-1"), meta, &[EncodedRecord::encode(&rec())?]).await
            });
        }
        let mut stored = 0;
        while let Some(r) = tasks.join_next().await {
            if let Delivery::Stored(_) = r?? {
                stored += 1;
            }
        }
        assert_eq!(stored, 1);
        assert_eq!(store.pending_batches("f")?.len(), 1);
        let meta = BatchMeta { run_id: 1, next_cursor: None, created_ms: 10 };
        assert!(matches!(
            store.enqueue_delivery("f", None, meta.clone(), &[EncodedRecord::encode(&rec())?]).await?,
            Delivery::Stored(_)
        ));
        assert!(matches!(
            store.enqueue_delivery("g", Some("d-1"), meta, &[EncodedRecord::encode(&rec())?]).await?,
            Delivery::Stored(_)
        ));
        assert_eq!(store.prune_deliveries(11).await?, 2);
        Ok(())
    }

    #[tokio::test]
    async fn tokens_audit_and_flags() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = Store::open(dir.path())?;
        let t = store.create_token("ci", "operator", "abc", 1).await?;
        assert!(store.create_token("ci", "admin", "def", 1).await.is_err(), "names are unique");
        assert_eq!(store.token_by_hash("abc")?, Some(t.clone()));
        assert_eq!(store.revoke_token("ci").await?.id, t.id);
        assert_eq!(store.token_by_hash("abc")?, None);
        let entry = AuditEntry {
            at_ms: 1,
            actor: "ci#1".into(),
            role: "operator".into(),
            action: "POST".into(),
            target: "/x".into(),
            status: 200,
        };
        store.append_audit(&entry).await?;
        assert_eq!(store.list_audit(10)?, vec![entry]);
        store.set_flow_disabled("f", true, 1).await?;
        assert!(store.disabled_flows()?.contains("f"));
        store.set_flow_disabled("f", false, 1).await?;
        assert!(store.disabled_flows()?.is_empty());
        Ok(())
    }
}
