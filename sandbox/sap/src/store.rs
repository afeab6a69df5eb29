//! What the fake holds: the entities of every set, the number ranges, and the log of writes.

use std::collections::HashMap;

use serde_json::Value;

use crate::model::{Entity, EntitySet};
use crate::seed;

/// The fake's data. Cloned to roll back a failed `$batch` changeset.
#[derive(Clone, Debug, Default)]
pub struct Data {
    /// Entities by entity set name.
    pub sets: HashMap<&'static str, Vec<Entity>>,
    /// The next purchase requisition number.
    pub next_pr: u64,
    /// Generated GUIDs so far (for new projects and WBS elements).
    pub next_guid: usize,
    /// Every write, in order: `{"op", "entity_set", "key", "fields", "at_ms"}`.
    pub writes: Vec<Value>,
}

impl Data {
    /// The seeded state.
    pub fn seeded() -> Self {
        Data {
            sets: seed::all(),
            next_pr: seed::FIRST_PR + seed::PR_COUNT as u64,
            next_guid: 0,
            writes: Vec::new(),
        }
    }

    /// The entities of `set` (none for an unknown set).
    pub fn rows(&self, set: &str) -> &[Entity] {
        self.sets.get(set).map(Vec::as_slice).unwrap_or_default()
    }

    /// The entity of `set` with `key`.
    pub fn find(&self, set: &EntitySet, key: &[Value]) -> Option<&Entity> {
        self.rows(set.name).iter().find(|e| e.has_key(set, key))
    }

    /// The position of the entity of `set` with `key`.
    pub fn position(&self, set: &EntitySet, key: &[Value]) -> Option<usize> {
        self.rows(set.name).iter().position(|e| e.has_key(set, key))
    }

    /// A fresh GUID for a created entity.
    pub fn new_guid(&mut self, kind: u8) -> String {
        self.next_guid += 1;
        seed::guid(kind, 0x10_0000 + self.next_guid)
    }
}
