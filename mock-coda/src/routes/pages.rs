//! Pages: list, get, create, update, delete, content, and export (begin → status →
//! download). Exports complete at once, so a client's first poll sees `complete`.

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{json_body, optional_json_body, AppState};
use crate::api_error::ApiError;
use crate::data::model::Page;
use crate::data::pagination::ListQuery;
use crate::data::render;
use crate::data::store::Export;
use crate::time::now_rfc3339;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs/{doc}/pages", get(list_pages).post(create_page))
        .route(
            "/docs/{doc}/pages/{page}",
            get(get_page).put(update_page).delete(delete_page),
        )
        .route("/docs/{doc}/pages/{page}/content", get(page_content))
        .route("/docs/{doc}/pages/{page}/export", post(begin_export))
        .route(
            "/docs/{doc}/pages/{page}/export/{export_id}",
            get(export_status),
        )
}

async fn list_pages(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 100)?;
    let store = state.store();
    let doc = store.doc(&doc)?;
    let items = doc
        .pages
        .iter()
        .filter(|p| !p.deleted)
        .map(|p| render::page(&state.urls, doc, p))
        .collect();
    let list_url = format!("{}/pages", state.urls.doc(&doc.id));
    Ok(Json(q.envelope(items, limit, &list_url, uri.query())))
}

async fn get_page(
    State(state): State<AppState>,
    Path((doc, page)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let doc = store.doc(&doc)?;
    Ok(Json(render::page(&state.urls, doc, doc.page(&page)?)))
}

async fn page_content(
    State(state): State<AppState>,
    Path((doc, page)): Path<(String, String)>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(50, 500)?;
    let store = state.store();
    let doc = store.doc(&doc)?;
    let page = doc.page(&page)?;
    let list_url = format!("{}/content", state.urls.page(&doc.id, &page.id));
    Ok(Json(q.envelope(
        render::content_items(page),
        limit,
        &list_url,
        uri.query(),
    )))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CanvasContent {
    #[serde(default)]
    content: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageContent {
    #[serde(default)]
    canvas_content: Option<CanvasContent>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreatePage {
    name: Option<String>,
    subtitle: Option<String>,
    parent_page_id: Option<String>,
    page_content: Option<PageContent>,
}

async fn create_page(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: CreatePage = optional_json_body(body)?;
    let mut store = state.store();
    let (doc, ids) = store.doc_mut(&doc)?;
    let parent = match &body.parent_page_id {
        Some(key) => Some(doc.page(key)?.id.clone()),
        None => None,
    };
    let now = now_rfc3339();
    let id = ids.new_id("canvas");
    doc.pages.push(Page {
        id: id.clone(),
        name: body.name.unwrap_or_else(|| "Untitled".to_owned()),
        subtitle: body.subtitle,
        content_type: "canvas".to_owned(),
        is_hidden: false,
        parent,
        content: body
            .page_content
            .and_then(|c| c.canvas_content)
            .map(|c| c.content)
            .unwrap_or_default(),
        created_at: now.clone(),
        updated_at: now,
        deleted: false,
    });
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "id": id })),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentUpdate {
    #[serde(default)]
    insertion_mode: Option<String>,
    canvas_content: CanvasContent,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatePage {
    name: Option<String>,
    subtitle: Option<String>,
    is_hidden: Option<bool>,
    content_update: Option<ContentUpdate>,
}

async fn update_page(
    State(state): State<AppState>,
    Path((doc, page)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: UpdatePage = optional_json_body(body)?;
    let mut store = state.store();
    let (doc, _) = store.doc_mut(&doc)?;
    let page = doc.page_mut(&page)?;
    if let Some(name) = body.name {
        page.name = name;
    }
    if body.subtitle.is_some() {
        page.subtitle = body.subtitle;
    }
    if let Some(hidden) = body.is_hidden {
        page.is_hidden = hidden;
    }
    if let Some(update) = body.content_update {
        let text = update.canvas_content.content;
        match update.insertion_mode.as_deref() {
            Some("append") if !page.content.is_empty() => {
                page.content = format!("{}\n{text}", page.content.trim_end_matches('\n'));
            }
            Some("append" | "replace") | None => page.content = text,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid insertionMode: {other:?}"
                )));
            }
        }
    }
    page.updated_at = now_rfc3339();
    let id = page.id.clone();
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "id": id })),
    ))
}

/// Marks the page deleted: later reads answer 410 Gone, as Coda's do.
async fn delete_page(
    State(state): State<AppState>,
    Path((doc, page)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut store = state.store();
    let (doc, _) = store.doc_mut(&doc)?;
    let page = doc.page_mut(&page)?;
    page.deleted = true;
    let id = page.id.clone();
    let request_id = store.new_request_id();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requestId": request_id, "id": id })),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BeginExport {
    output_format: String,
}

async fn begin_export(
    State(state): State<AppState>,
    Path((doc, page)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body: BeginExport = json_body(body)?;
    let (html, content_type) = match body.output_format.as_str() {
        "markdown" => (false, "text/markdown; charset=utf-8"),
        "html" => (true, "text/html; charset=utf-8"),
        other => {
            return Err(ApiError::bad_request(format!(
                "Invalid outputFormat {other:?}: expected \"html\" or \"markdown\""
            )));
        }
    };
    let mut store = state.store();
    let (doc, ids) = store.doc_mut(&doc)?;
    let page = doc.page(&page)?;
    let export = Export {
        doc_id: doc.id.clone(),
        page_id: page.id.clone(),
        content_type,
        body: render::export_body(page, html),
    };
    let id = ids.new_id("export");
    let href = format!(
        "{}/export/{id}",
        state.urls.page(&export.doc_id, &export.page_id)
    );
    store.exports.insert(id.clone(), export);
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": id, "status": "inProgress", "href": href })),
    ))
}

async fn export_status(
    State(state): State<AppState>,
    Path((doc, page, export_id)): Path<(String, String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let doc = store.doc(&doc)?;
    let page = doc.page(&page)?;
    let export = store
        .exports
        .get(&export_id)
        .ok_or_else(ApiError::not_found)?;
    if export.doc_id != doc.id || export.page_id != page.id {
        return Err(ApiError::not_found());
    }
    Ok(Json(json!({
        "id": export_id,
        "status": "complete",
        "href": format!("{}/export/{export_id}", state.urls.page(&doc.id, &page.id)),
        "downloadLink": state.urls.export_download(&export_id),
    })))
}

/// The `downloadLink` target: no auth, like Coda's signed blob URLs.
pub(super) async fn download_export(
    State(state): State<AppState>,
    Path(export_id): Path<String>,
) -> Response {
    let store = state.store();
    match store.exports.get(&export_id) {
        Some(export) => (
            [(header::CONTENT_TYPE, export.content_type)],
            export.body.clone(),
        )
            .into_response(),
        None => ApiError::not_found().into_response(),
    }
}
