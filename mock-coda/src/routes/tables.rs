//! Tables and columns: `GET /docs/{d}/tables[/{t}[/columns[/{c}]]]`.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

use super::AppState;
use crate::api_error::ApiError;
use crate::data::pagination::ListQuery;
use crate::data::render;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs/{doc}/tables", get(list_tables))
        .route("/docs/{doc}/tables/{table}", get(get_table))
        .route("/docs/{doc}/tables/{table}/columns", get(list_columns))
        .route(
            "/docs/{doc}/tables/{table}/columns/{column}",
            get(get_column),
        )
}

async fn list_tables(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 100)?;
    let types = q.all("tableTypes");
    let store = state.store();
    let doc = store.doc(&doc)?;
    let mut tables: Vec<_> = doc
        .tables
        .iter()
        .filter(|t| {
            let kind = if t.view_of.is_some() { "view" } else { "table" };
            types.is_empty() || types.contains(&kind)
        })
        .collect();
    match q.get("sortBy") {
        None => {}
        Some("name") => tables.sort_by(|a, b| a.name.cmp(&b.name)),
        Some(other) => return Err(ApiError::bad_request(format!("Invalid sortBy: {other:?}"))),
    }
    let items = tables
        .into_iter()
        .map(|t| render::table_ref(&state.urls, doc, t))
        .collect();
    let list_url = format!("{}/tables", state.urls.doc(&doc.id));
    Ok(Json(q.envelope(items, limit, &list_url, uri.query())))
}

async fn get_table(
    State(state): State<AppState>,
    Path((doc, table)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let doc = store.doc(&doc)?;
    Ok(Json(render::table(&state.urls, doc, doc.table(&table)?)))
}

async fn list_columns(
    State(state): State<AppState>,
    Path((doc, table)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 100)?;
    let visible_only = q.flag("visibleOnly")?.unwrap_or(false);
    let store = state.store();
    let doc = store.doc(&doc)?;
    let table = doc.table(&table)?;
    let items = doc
        .base_of(table)
        .columns
        .iter()
        .filter(|c| !(visible_only && c.hidden))
        .map(|c| render::column(&state.urls, doc, table, c))
        .collect();
    let list_url = format!("{}/columns", state.urls.table(&doc.id, &table.id));
    Ok(Json(q.envelope(items, limit, &list_url, uri.query())))
}

async fn get_column(
    State(state): State<AppState>,
    Path((doc, table, column)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let doc = store.doc(&doc)?;
    let table = doc.table(&table)?;
    let column = doc
        .base_of(table)
        .column(&column)
        .ok_or_else(ApiError::not_found)?;
    let mut body = render::column(&state.urls, doc, table, column);
    body["parent"] = render::table_ref(&state.urls, doc, table);
    Ok(Json(body))
}
