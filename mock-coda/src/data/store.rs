//! The shared mutable state behind the data API: docs, issued mutation IDs, exports.
//!
//! Writes are applied at once (Coda applies them asynchronously); `mutationStatus`
//! therefore always reports `completed: true` for IDs the mock issued.

use std::collections::{HashMap, HashSet};

use super::fixture::Fixture;
use super::model::Doc;
use crate::api_error::ApiError;

/// A finished page export, served at its `downloadLink`.
#[derive(Debug, Clone)]
pub(crate) struct Export {
    pub doc_id: String,
    pub page_id: String,
    pub content_type: &'static str,
    pub body: String,
}

/// Counter behind generated IDs and row `updated_seq`; separate from the docs so a
/// write can hold a doc mutably and still mint IDs.
#[derive(Debug, Default)]
pub(crate) struct IdGen {
    seq: u64,
}

impl IdGen {
    /// Bumps and returns the change counter.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    pub fn current_seq(&self) -> u64 {
        self.seq
    }

    /// A fresh ID such as `i-mock000042`.
    pub fn new_id(&mut self, prefix: &str) -> String {
        let n = self.next_seq();
        format!("{prefix}-mock{n:06}")
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    pub docs: Vec<Doc>,
    pub ids: IdGen,
    mutations: HashSet<String>,
    pub exports: HashMap<String, Export>,
}

impl Store {
    pub fn new(fixture: &Fixture) -> Store {
        let mut store = Store {
            docs: fixture.docs.clone(),
            ids: IdGen::default(),
            mutations: HashSet::new(),
            exports: HashMap::new(),
        };
        let mut seq = 0;
        for doc in &mut store.docs {
            for table in &mut doc.tables {
                for row in &mut table.rows {
                    seq += 1;
                    row.updated_seq = seq;
                }
            }
        }
        store.ids.seq = seq;
        store
    }

    /// Issues a `requestId` that `mutationStatus` will know.
    pub fn new_request_id(&mut self) -> String {
        let id = self.ids.new_id("req");
        self.mutations.insert(id.clone());
        id
    }

    pub fn knows_mutation(&self, request_id: &str) -> bool {
        self.mutations.contains(request_id)
    }

    /// Finds a doc by ID, then by exact name.
    pub fn doc(&self, key: &str) -> Result<&Doc, ApiError> {
        super::model::find(&self.docs, key, |d| &d.id, |d| &d.name).ok_or_else(ApiError::not_found)
    }

    /// A doc for writing, together with the ID generator.
    pub fn doc_mut(&mut self, key: &str) -> Result<(&mut Doc, &mut IdGen), ApiError> {
        let id = self.doc(key)?.id.clone();
        let doc = self
            .docs
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or_else(ApiError::not_found)?;
        Ok((doc, &mut self.ids))
    }
}
