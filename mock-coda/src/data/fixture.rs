//! Fixture files: the documents the mock starts with.
//!
//! The format is documented in `README.md`; `fixtures/default.json` is embedded and
//! used unless `--fixture FILE` (or [`crate::MockCodaConfig::fixture`]) says otherwise.
//! Fixtures are checked once at load so that requests never meet dangling references.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::model::{Doc, Table};
use crate::error::Error;

/// The fixture shipped with the crate.
pub const DEFAULT_FIXTURE_JSON: &str = include_str!("../../fixtures/default.json");

/// A parsed and checked fixture.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub(crate) docs: Vec<Doc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureFile {
    docs: Vec<Doc>,
}

impl Fixture {
    /// Parses and checks fixture JSON.
    pub fn from_json(text: &str) -> Result<Fixture, Error> {
        let file: FixtureFile =
            serde_json::from_str(text).map_err(|e| Error::Fixture(e.to_string()))?;
        let mut docs = file.docs;
        check_unique("doc", docs.iter().map(|d| d.id.as_str()))?;
        for doc in &mut docs {
            normalize_doc(doc)?;
        }
        Ok(Fixture { docs })
    }

    /// Reads and parses a fixture file.
    pub fn from_file(path: &Path) -> Result<Fixture, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        Fixture::from_json(&text)
    }

    /// The embedded default fixture.
    pub fn default_fixture() -> Result<Fixture, Error> {
        Fixture::from_json(DEFAULT_FIXTURE_JSON)
    }

    /// IDs of the fixture's docs, in order.
    pub fn doc_ids(&self) -> Vec<String> {
        self.docs.iter().map(|d| d.id.clone()).collect()
    }
}

fn check_unique<'a>(what: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), Error> {
    let mut seen = HashSet::new();
    for id in ids {
        if id.is_empty() {
            return Err(Error::Fixture(format!("empty {what} id")));
        }
        if !seen.insert(id) {
            return Err(Error::Fixture(format!("duplicate {what} id {id:?}")));
        }
    }
    Ok(())
}

fn normalize_doc(doc: &mut Doc) -> Result<(), Error> {
    let ctx = |msg: String| Error::Fixture(format!("doc {}: {msg}", doc.id));
    check_unique("page", doc.pages.iter().map(|p| p.id.as_str()))?;
    check_unique("table", doc.tables.iter().map(|t| t.id.as_str()))?;
    check_unique("formula", doc.formulas.iter().map(|f| f.id.as_str()))?;
    let page_ids: HashSet<&str> = doc.pages.iter().map(|p| p.id.as_str()).collect();
    for page in &doc.pages {
        if let Some(parent) = &page.parent {
            if !page_ids.contains(parent.as_str()) || parent == &page.id {
                return Err(ctx(format!("page {} has unknown parent {parent}", page.id)));
            }
        }
    }
    for formula in &doc.formulas {
        if let Some(parent) = &formula.parent {
            if !page_ids.contains(parent.as_str()) {
                return Err(ctx(format!(
                    "formula {} has unknown parent {parent}",
                    formula.id
                )));
            }
        }
    }
    let base_ids: HashSet<String> = doc
        .tables
        .iter()
        .filter(|t| t.view_of.is_none())
        .map(|t| t.id.clone())
        .collect();
    for table in &mut doc.tables {
        if !page_ids.contains(table.parent.as_str()) {
            return Err(ctx(format!("table {} has unknown parent page", table.id)));
        }
        if let Some(base) = &table.view_of {
            if !base_ids.contains(base) {
                return Err(ctx(format!("view {} shows unknown table {base}", table.id)));
            }
            // A view shows its base table's columns and rows; its own are not used.
            table.columns.clear();
            table.rows.clear();
            continue;
        }
        normalize_table(table).map_err(|msg| ctx(format!("table {}: {msg}", table.id)))?;
    }
    Ok(())
}

fn normalize_table(table: &mut Table) -> Result<(), String> {
    check_unique("column", table.columns.iter().map(|c| c.id.as_str()))
        .map_err(|e| e.to_string())?;
    check_unique("row", table.rows.iter().map(|r| r.id.as_str())).map_err(|e| e.to_string())?;
    match &table.display_column {
        Some(id) if table.columns.iter().all(|c| &c.id != id) => {
            return Err(format!("unknown display column {id}"));
        }
        None => table.display_column = table.columns.first().map(|c| c.id.clone()),
        Some(_) => {}
    }
    // Re-key values by column ID, so that lookups and renames need one path only.
    let columns = table.columns.clone();
    for (index, row) in table.rows.iter_mut().enumerate() {
        let mut by_id = serde_json::Map::new();
        for (key, value) in std::mem::take(&mut row.values) {
            let column = columns
                .iter()
                .find(|c| c.id == key)
                .or_else(|| columns.iter().find(|c| c.name == key))
                .ok_or_else(|| format!("row {} has a value for unknown column {key}", row.id))?;
            by_id.insert(column.id.clone(), value);
        }
        row.values = by_id;
        row.index = index as u64 + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_fixture_loads() {
        let fixture = Fixture::default_fixture().unwrap();
        assert!(!fixture.docs.is_empty());
    }

    #[test]
    fn dangling_references_are_refused() {
        let bad_parent = r#"{"docs": [{"id": "d", "name": "D", "owner": "o", "ownerName": "O",
            "pages": [{"id": "p", "name": "P", "parent": "nope"}]}]}"#;
        assert!(Fixture::from_json(bad_parent).is_err());
        let bad_column = r#"{"docs": [{"id": "d", "name": "D", "owner": "o", "ownerName": "O",
            "pages": [{"id": "p", "name": "P"}],
            "tables": [{"id": "t", "name": "T", "parent": "p",
                        "columns": [{"id": "c", "name": "C"}],
                        "rows": [{"id": "r", "values": {"X": 1}}]}]}]}"#;
        assert!(Fixture::from_json(bad_column).is_err());
    }
}
