//! Docs and their named formulas: `GET /docs[/{docId}[/formulas[/{formula}]]]`.

use axum::extract::{Path, State};
use axum::http::Uri;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::Value;

use super::AppState;
use crate::api_error::ApiError;
use crate::data::pagination::ListQuery;
use crate::data::render;
use crate::edge::Caller;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(list_docs))
        .route("/docs/{doc}", get(get_doc))
        .route("/docs/{doc}/formulas", get(list_formulas))
        .route("/docs/{doc}/formulas/{formula}", get(get_formula))
}

async fn list_docs(
    State(state): State<AppState>,
    Extension(Caller(who)): Extension<Caller>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 100)?;
    let is_owner = q.flag("isOwner")?;
    let is_published = q.flag("isPublished")?;
    let name_query = q.get("query").map(str::to_lowercase);
    let store = state.store();
    let items: Vec<Value> = store
        .docs
        .iter()
        .filter(|d| is_owner.is_none_or(|want| (d.owner == who.login_id) == want))
        .filter(|d| is_published.is_none_or(|want| d.published == want))
        .filter(|d| {
            name_query
                .as_ref()
                .is_none_or(|n| d.name.to_lowercase().contains(n))
        })
        .filter(|d| q.get("workspaceId").is_none_or(|w| d.workspace_id == w))
        .filter(|d| q.get("folderId").is_none_or(|f| d.folder_id == f))
        .map(|d| render::doc(&state.urls, d))
        .collect();
    let list_url = format!("{}/docs", state.base_url());
    Ok(Json(q.envelope(items, limit, &list_url, uri.query())))
}

async fn get_doc(
    State(state): State<AppState>,
    Path(doc): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    Ok(Json(render::doc(&state.urls, store.doc(&doc)?)))
}

async fn list_formulas(
    State(state): State<AppState>,
    Path(doc): Path<String>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let limit = q.limit(25, 100)?;
    let store = state.store();
    let doc = store.doc(&doc)?;
    let items = doc
        .formulas
        .iter()
        .map(|f| render::formula(&state.urls, doc, f, false))
        .collect();
    let list_url = format!("{}/formulas", state.urls.doc(&doc.id));
    Ok(Json(q.envelope(items, limit, &list_url, uri.query())))
}

async fn get_formula(
    State(state): State<AppState>,
    Path((doc, formula)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let store = state.store();
    let doc = store.doc(&doc)?;
    Ok(Json(render::formula(
        &state.urls,
        doc,
        doc.formula(&formula)?,
        true,
    )))
}
