//! Rows and mutation status: list, get, upsert (POST), update (PUT), delete one and
//! many (DELETE), and `GET /mutationStatus/{requestId}`. Every write answers 202.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{json_body, AppState};
use crate::api_error::ApiError;
use crate::data::model::Row;
use crate::data::pagination::ListQuery;
use crate::data::render::{self, RowFormat, ValueFormat};
use crate::data::rows::{
    self as edits, decode_sync_token, encode_sync_token, DeleteRowsBody, RowFilter, RowSort,
    UpdateBody, UpsertBody,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/docs/{doc}/tables/{table}/rows",
            get(list_rows).post(upsert_rows).delete(delete_rows),
        )
        .route(
            "/docs/{doc}/tables/{table}/rows/{row}",
            get(get_row).put(update_row).delete(delete_row),
        )
        .route("/mutationStatus/{request_id}", get(mutation_status))
}

type Accepted = (StatusCode, Json<Value>);

fn row_format(q: &ListQuery) -> Result<RowFormat, ApiError> {
    let value_format = ValueFormat::parse(q.get("valueFormat"))
        .ok_or_else(|| ApiError::bad_request("Invalid valueFormat"))?;
    Ok(RowFormat {
        use_column_names: q.flag("useColumnNames")?.unwrap_or(false),
        value_format,
        visible_only: q.flag("visibleOnly")?.unwrap_or(false),
    })
}

async fn list_rows(
    State(state): State<AppState>,
    Path((doc, table)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 500)?;
    let sort = RowSort::parse(q.get("sortBy"))?;
    let mut format = row_format(&q)?;
    // Coda: `sortBy=natural` implies `visibleOnly=true`.
    format.visible_only |= sort == RowSort::Natural;
    let since = q.get("syncToken").map(decode_sync_token).transpose()?;

    let store = state.store();
    let doc = store.doc(&doc)?;
    let table = doc.table(&table)?;
    let base = doc.base_of(table);
    let filter = q
        .get("query")
        .map(|raw| RowFilter::parse(base, raw))
        .transpose()?;
    let mut rows: Vec<&Row> = base
        .rows
        .iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.matches(r)))
        .filter(|r| since.is_none_or(|seq| r.updated_seq > seq))
        .collect();
    sort.sort(&mut rows);
    let total = rows.len();
    let items = rows
        .into_iter()
        .map(|r| render::row(&state.urls, doc, table, r, format))
        .collect();
    let list_url = format!("{}/rows", state.urls.table(&doc.id, &table.id));
    let mut body = q.envelope(items, limit, &list_url, uri.query());
    if q.is_last_page(total, limit) {
        body["nextSyncToken"] = json!(encode_sync_token(store.ids.current_seq()));
    }
    Ok(Json(body))
}

async fn get_row(
    State(state): State<AppState>,
    Path((doc, table, row)): Path<(String, String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let format = row_format(&ListQuery::from_uri(&uri)?)?;
    let store = state.store();
    let doc = store.doc(&doc)?;
    let table = doc.table(&table)?;
    let row = doc
        .base_of(table)
        .row(&row)
        .ok_or_else(ApiError::not_found)?;
    let mut body = render::row(&state.urls, doc, table, row, format);
    body["parent"] = render::table_ref(&state.urls, doc, table);
    Ok(Json(body))
}

async fn upsert_rows(
    State(state): State<AppState>,
    Path((doc, table)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let body: UpsertBody = json_body(body)?;
    let mut store = state.store();
    let (doc, ids) = store.doc_mut(&doc)?;
    let added = edits::upsert(doc, ids, &table, &body)?;
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "addedRowIds": added })),
    ))
}

async fn update_row(
    State(state): State<AppState>,
    Path((doc, table, row)): Path<(String, String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let body: UpdateBody = json_body(body)?;
    let mut store = state.store();
    let (doc, ids) = store.doc_mut(&doc)?;
    let id = edits::update(doc, ids, &table, &row, &body)?;
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "id": id })),
    ))
}

async fn delete_row(
    State(state): State<AppState>,
    Path((doc, table, row)): Path<(String, String, String)>,
) -> Result<Accepted, ApiError> {
    let mut store = state.store();
    let (doc, _) = store.doc_mut(&doc)?;
    let id = edits::delete_one(doc, &table, &row)?;
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "id": id })),
    ))
}

/// `DELETE …/rows` carries a JSON body, which must be read.
async fn delete_rows(
    State(state): State<AppState>,
    Path((doc, table)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Accepted, ApiError> {
    let body: DeleteRowsBody = json_body(body)?;
    let mut store = state.store();
    let (doc, _) = store.doc_mut(&doc)?;
    edits::delete_many(doc, &table, &body.row_ids)?;
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "rowIds": body.row_ids })),
    ))
}

/// Writes are applied at once, so every ID the mock issued is complete.
async fn mutation_status(
    State(state): State<AppState>,
    Path(request_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state.store().knows_mutation(&request_id) {
        Ok(Json(json!({ "completed": true })))
    } else {
        Err(ApiError::not_found())
    }
}
