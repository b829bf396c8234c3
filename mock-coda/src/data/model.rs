//! The in-memory documents, as seeded from a fixture and changed by writes.
//!
//! Field names follow the fixture format (camelCase), which is documented in
//! `README.md`. Row values are keyed by column ID once loaded.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::api_error::ApiError;

const EPOCH: &str = "2026-01-01T00:00:00.000Z";

fn epoch() -> String {
    EPOCH.to_owned()
}

fn default_workspace_id() -> String {
    crate::tokens::DEFAULT_WORKSPACE_ID.to_owned()
}

fn default_workspace_name() -> String {
    "Mock workspace".to_owned()
}

fn default_folder_id() -> String {
    "fl-mock0001".to_owned()
}

fn default_folder_name() -> String {
    "Mock folder".to_owned()
}

fn canvas() -> String {
    "canvas".to_owned()
}

fn text() -> String {
    "text".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Doc {
    pub id: String,
    pub name: String,
    /// The owner's loginId; `isOwner=true` listings compare it with `/whoami`'s.
    pub owner: String,
    pub owner_name: String,
    #[serde(default = "epoch")]
    pub created_at: String,
    #[serde(default = "epoch")]
    pub updated_at: String,
    #[serde(default)]
    pub published: bool,
    #[serde(default = "default_workspace_id")]
    pub workspace_id: String,
    #[serde(default = "default_workspace_name")]
    pub workspace_name: String,
    #[serde(default = "default_folder_id")]
    pub folder_id: String,
    #[serde(default = "default_folder_name")]
    pub folder_name: String,
    #[serde(default)]
    pub pages: Vec<Page>,
    #[serde(default)]
    pub tables: Vec<Table>,
    #[serde(default)]
    pub formulas: Vec<Formula>,
}

/// A named formula and its current value (`GET /docs/{d}/formulas/{f}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Formula {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub value: Value,
    /// The page the formula lives on, if any.
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Page {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub subtitle: Option<String>,
    #[serde(default = "canvas")]
    pub content_type: String,
    #[serde(default)]
    pub is_hidden: bool,
    /// Parent page ID.
    #[serde(default)]
    pub parent: Option<String>,
    /// The page's canvas as Markdown, one line per content item.
    #[serde(default)]
    pub content: String,
    #[serde(default = "epoch")]
    pub created_at: String,
    #[serde(default = "epoch")]
    pub updated_at: String,
    /// A deleted page answers 410, like Coda's.
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Table {
    pub id: String,
    pub name: String,
    /// The page the table lives on.
    pub parent: String,
    /// For a view: the ID of the base table whose columns and rows it shows.
    #[serde(default)]
    pub view_of: Option<String>,
    /// Defaults to the first column.
    #[serde(default)]
    pub display_column: Option<String>,
    #[serde(default)]
    pub columns: Vec<Column>,
    #[serde(default)]
    pub rows: Vec<Row>,
    #[serde(default = "epoch")]
    pub created_at: String,
    #[serde(default = "epoch")]
    pub updated_at: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Column {
    pub id: String,
    pub name: String,
    /// A `ColumnFormatType` such as `text`, `number`, `select`, `date`, `checkbox`.
    #[serde(default = "text")]
    pub format: String,
    #[serde(default)]
    pub is_array: bool,
    #[serde(default)]
    pub calculated: bool,
    #[serde(default)]
    pub formula: Option<String>,
    /// Hidden columns are left out when `visibleOnly=true`.
    #[serde(default)]
    pub hidden: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Row {
    pub id: String,
    /// Keyed by column ID or name in the fixture; by column ID once loaded.
    #[serde(default)]
    pub values: Map<String, Value>,
    #[serde(default = "epoch")]
    pub created_at: String,
    #[serde(default = "epoch")]
    pub updated_at: String,
    /// Creation order within the table; Coda's `index`.
    #[serde(skip)]
    pub index: u64,
    /// Store-wide change counter at the last write; drives `syncToken`.
    #[serde(skip)]
    pub updated_seq: u64,
}

impl Doc {
    /// Finds a live page by ID, then by exact name; deleted pages answer 410.
    pub fn page(&self, key: &str) -> Result<&Page, ApiError> {
        let page =
            find(&self.pages, key, |p| &p.id, |p| &p.name).ok_or_else(ApiError::not_found)?;
        if page.deleted {
            return Err(ApiError::gone());
        }
        Ok(page)
    }

    pub fn page_mut(&mut self, key: &str) -> Result<&mut Page, ApiError> {
        let id = self.page(key)?.id.clone();
        self.pages
            .iter_mut()
            .find(|p| p.id == id)
            .ok_or_else(ApiError::not_found)
    }

    pub fn formula(&self, key: &str) -> Result<&Formula, ApiError> {
        find(&self.formulas, key, |f| &f.id, |f| &f.name).ok_or_else(ApiError::not_found)
    }

    pub fn table(&self, key: &str) -> Result<&Table, ApiError> {
        find(&self.tables, key, |t| &t.id, |t| &t.name).ok_or_else(ApiError::not_found)
    }

    /// The table holding the columns and rows `table` shows: itself, or a view's base.
    pub fn base_of<'a>(&'a self, table: &'a Table) -> &'a Table {
        table
            .view_of
            .as_deref()
            .and_then(|id| self.tables.iter().find(|t| t.id == id))
            .unwrap_or(table)
    }

    /// The base table addressed by `key`, for writes; views are refused like Coda does.
    pub fn base_table_mut(&mut self, key: &str) -> Result<&mut Table, ApiError> {
        let table = self.table(key)?;
        if table.view_of.is_some() {
            return Err(ApiError::bad_request(
                "Row mutations are only supported on base tables, not views",
            ));
        }
        let id = table.id.clone();
        self.tables
            .iter_mut()
            .find(|t| t.id == id)
            .ok_or_else(ApiError::not_found)
    }
}

impl Table {
    pub fn column(&self, key: &str) -> Option<&Column> {
        find(&self.columns, key, |c| &c.id, |c| &c.name)
    }

    pub fn row(&self, key: &str) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.id == key)
            .or_else(|| self.rows.iter().find(|r| self.row_name(r) == key))
    }

    /// The display column's ID (the fixture loader guarantees one when columns exist).
    pub fn display_column_id(&self) -> Option<&str> {
        self.display_column
            .as_deref()
            .or_else(|| self.columns.first().map(|c| c.id.as_str()))
    }

    /// A row's `name`: its display column value as text.
    pub fn row_name(&self, row: &Row) -> String {
        self.display_column_id()
            .and_then(|id| row.values.get(id))
            .map(value_as_text)
            .unwrap_or_default()
    }
}

/// A value rendered as plain text, the way Coda shows it in `name` and `simple` format.
pub(crate) fn value_as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items
            .iter()
            .map(value_as_text)
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

/// Resolves a path parameter the way Coda does: by ID first, then by exact name.
pub(crate) fn find<'a, T>(
    items: &'a [T],
    key: &str,
    id: impl Fn(&T) -> &String,
    name: impl Fn(&T) -> &String,
) -> Option<&'a T> {
    items
        .iter()
        .find(|item| id(item) == key)
        .or_else(|| items.iter().find(|item| name(item) == key))
}
