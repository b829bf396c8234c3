//! Row reads and writes: the `query` filter, sorting, sync tokens, and the
//! upsert/update/delete edits with Coda's validation errors.

use serde::Deserialize;
use serde_json::Value;

use super::model::{value_as_text, Doc, Row, Table};
use super::pagination::{hex_decode, hex_encode};
use super::store::IdGen;
use crate::api_error::{ApiError, ValidationError};
use crate::time::now_rfc3339;

/// A parsed `query=<column>:<json value>` filter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowFilter {
    column_id: String,
    value: Value,
}

impl RowFilter {
    /// Parses the filter against `table`'s columns. A column name must be JSON-quoted
    /// when it is not a bare ID, and so must a string value; Coda is lenient about the
    /// value, so a value that is not JSON is taken as text.
    pub fn parse(table: &Table, raw: &str) -> Result<RowFilter, ApiError> {
        let bad = || ApiError::bad_request(format!("Invalid query parameter: {raw:?}"));
        let (column_key, value_text) = if raw.starts_with('"') {
            let mut stream = serde_json::Deserializer::from_str(raw).into_iter::<String>();
            let name = stream.next().ok_or_else(bad)?.map_err(|_| bad())?;
            let rest = raw[stream.byte_offset()..]
                .strip_prefix(':')
                .ok_or_else(bad)?;
            (name, rest)
        } else {
            let (column, rest) = raw.split_once(':').ok_or_else(bad)?;
            (column.to_owned(), rest)
        };
        let column = table.column(&column_key).ok_or_else(|| {
            ApiError::bad_request(format!("Unknown column in query: {column_key:?}"))
        })?;
        let value = serde_json::from_str(value_text).unwrap_or_else(|_| Value::from(value_text));
        Ok(RowFilter {
            column_id: column.id.clone(),
            value,
        })
    }

    pub fn matches(&self, row: &Row) -> bool {
        let Some(cell) = row.values.get(&self.column_id) else {
            return false;
        };
        values_equal(cell, &self.value)
            || matches!(cell, Value::Array(items) if items.iter().any(|v| values_equal(v, &self.value)))
    }
}

/// Equal as JSON or as displayed text (so `c-x:12` matches the text `"12"`).
fn values_equal(a: &Value, b: &Value) -> bool {
    a == b || value_as_text(a) == value_as_text(b)
}

/// `sortBy` for rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowSort {
    CreatedAt,
    Natural,
    UpdatedAt,
}

impl RowSort {
    pub fn parse(raw: Option<&str>) -> Result<RowSort, ApiError> {
        match raw {
            None | Some("createdAt") => Ok(RowSort::CreatedAt),
            Some("natural") => Ok(RowSort::Natural),
            Some("updatedAt") => Ok(RowSort::UpdatedAt),
            Some(other) => Err(ApiError::bad_request(format!("Invalid sortBy: {other:?}"))),
        }
    }

    pub fn sort(self, rows: &mut [&Row]) {
        match self {
            RowSort::CreatedAt | RowSort::Natural => rows.sort_by_key(|r| r.index),
            RowSort::UpdatedAt => rows.sort_by_key(|r| r.updated_seq),
        }
    }
}

/// `nextSyncToken`: the change counter at the time of the listing.
pub(crate) fn encode_sync_token(seq: u64) -> String {
    hex_encode(format!("sync:{seq}").as_bytes())
}

pub(crate) fn decode_sync_token(token: &str) -> Result<u64, ApiError> {
    hex_decode(token)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("sync:")?.parse().ok())
        .ok_or_else(|| ApiError::bad_request("Invalid syncToken"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CellEdit {
    pub column: String,
    #[serde(default)]
    pub value: Value,
}

#[derive(Debug, Deserialize)]
pub(crate) struct RowEdit {
    pub cells: Vec<CellEdit>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UpsertBody {
    pub rows: Vec<RowEdit>,
    #[serde(default)]
    pub key_columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct UpdateBody {
    pub row: RowEdit,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteRowsBody {
    pub row_ids: Vec<String>,
}

/// Resolves each cell's column (ID, name, or a column URL) against `table`.
fn resolve_cells(
    table: &Table,
    cells: &[CellEdit],
    path: &str,
    errors: &mut Vec<ValidationError>,
) -> Vec<(String, Value)> {
    let mut resolved = Vec::new();
    for (j, cell) in cells.iter().enumerate() {
        let key = cell
            .column
            .rsplit_once("/columns/")
            .map_or(cell.column.as_str(), |(_, id)| id);
        match table.column(key) {
            Some(column) if column.calculated => errors.push(ValidationError {
                path: format!("{path}.cells[{j}].column"),
                message: format!("Column {:?} is calculated and cannot be set", column.name),
            }),
            Some(column) => resolved.push((column.id.clone(), cell.value.clone())),
            None => errors.push(ValidationError {
                path: format!("{path}.cells[{j}].column"),
                message: format!("Could not find a column matching {:?}", cell.column),
            }),
        }
    }
    resolved
}

fn apply(row: &mut Row, cells: &[(String, Value)], seq: u64, now: &str) {
    for (column_id, value) in cells {
        row.values.insert(column_id.clone(), value.clone());
    }
    row.updated_seq = seq;
    row.updated_at = now.to_owned();
}

/// Inserts or (with `keyColumns`) updates rows; returns the IDs of inserted rows.
pub(crate) fn upsert(
    doc: &mut Doc,
    ids: &mut IdGen,
    table_key: &str,
    body: &UpsertBody,
) -> Result<Vec<String>, ApiError> {
    let table = doc.base_table_mut(table_key)?;
    let mut errors = Vec::new();
    let mut key_ids = Vec::new();
    for (k, key) in body.key_columns.iter().enumerate() {
        match table.column(key) {
            Some(column) => key_ids.push(column.id.clone()),
            None => errors.push(ValidationError {
                path: format!("keyColumns[{k}]"),
                message: format!("Could not find a column matching {key:?}"),
            }),
        }
    }
    let edits: Vec<Vec<(String, Value)>> = body
        .rows
        .iter()
        .enumerate()
        .map(|(i, edit)| resolve_cells(table, &edit.cells, &format!("rows[{i}]"), &mut errors))
        .collect();
    for (i, cells) in edits.iter().enumerate() {
        for key in &key_ids {
            if !cells.iter().any(|(id, _)| id == key) {
                errors.push(ValidationError {
                    path: format!("rows[{i}].cells"),
                    message: format!("Key column {key} must have a value"),
                });
            }
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }

    let now = now_rfc3339();
    let mut added = Vec::new();
    for cells in edits {
        let seq = ids.next_seq();
        let matching: Vec<usize> = if key_ids.is_empty() {
            Vec::new()
        } else {
            table
                .rows
                .iter()
                .enumerate()
                .filter(|(_, row)| {
                    key_ids.iter().all(|key| {
                        let wanted = cells.iter().find(|(id, _)| id == key).map(|(_, v)| v);
                        matches!((row.values.get(key), wanted), (Some(a), Some(b)) if values_equal(a, b))
                    })
                })
                .map(|(i, _)| i)
                .collect()
        };
        if matching.is_empty() {
            let index = table.rows.iter().map(|r| r.index).max().unwrap_or(0) + 1;
            let mut row = Row {
                id: ids.new_id("i"),
                values: serde_json::Map::new(),
                created_at: now.clone(),
                updated_at: now.clone(),
                index,
                updated_seq: seq,
            };
            apply(&mut row, &cells, seq, &now);
            added.push(row.id.clone());
            table.rows.push(row);
        } else {
            for i in matching {
                apply(&mut table.rows[i], &cells, seq, &now);
            }
        }
    }
    table.updated_at = now;
    Ok(added)
}

/// Updates one row's cells; returns the row's ID.
pub(crate) fn update(
    doc: &mut Doc,
    ids: &mut IdGen,
    table_key: &str,
    row_key: &str,
    body: &UpdateBody,
) -> Result<String, ApiError> {
    let table = doc.base_table_mut(table_key)?;
    let row_id = table
        .row(row_key)
        .ok_or_else(ApiError::not_found)?
        .id
        .clone();
    let mut errors = Vec::new();
    let cells = resolve_cells(table, &body.row.cells, "row", &mut errors);
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let now = now_rfc3339();
    let seq = ids.next_seq();
    if let Some(row) = table.rows.iter_mut().find(|r| r.id == row_id) {
        apply(row, &cells, seq, &now);
    }
    table.updated_at = now;
    Ok(row_id)
}

/// Deletes one row; returns its ID.
pub(crate) fn delete_one(
    doc: &mut Doc,
    table_key: &str,
    row_key: &str,
) -> Result<String, ApiError> {
    let table = doc.base_table_mut(table_key)?;
    let row_id = table
        .row(row_key)
        .ok_or_else(ApiError::not_found)?
        .id
        .clone();
    table.rows.retain(|r| r.id != row_id);
    table.updated_at = now_rfc3339();
    Ok(row_id)
}

/// Deletes the listed rows; unknown IDs are ignored, as they may already be gone.
pub(crate) fn delete_many(
    doc: &mut Doc,
    table_key: &str,
    row_ids: &[String],
) -> Result<(), ApiError> {
    let table = doc.base_table_mut(table_key)?;
    table.rows.retain(|r| !row_ids.contains(&r.id));
    table.updated_at = now_rfc3339();
    Ok(())
}
