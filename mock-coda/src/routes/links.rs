//! `GET /resolveBrowserLink?url=…`: map a browser URL to the API resource it shows.
//!
//! Understands the mock's own `browserLink`s (`/d/_d{doc}/_su{page}`,
//! `/d/_d{doc}/#_tu{table}/_ru{row}`) and Coda-style ones with a name before the
//! marker (`/d/Launch-Hub_dAbCDeFGH/Status_suXYZ`); a short ID matches a full ID
//! ending with it.

use axum::extract::State;
use axum::http::Uri;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::AppState;
use crate::api_error::ApiError;
use crate::data::model::Doc;
use crate::data::pagination::ListQuery;
use crate::data::render::{self, RowFormat};

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/resolveBrowserLink", get(resolve_browser_link))
}

#[derive(Debug, Default, PartialEq, Eq)]
struct LinkParts<'a> {
    doc: &'a str,
    page: Option<&'a str>,
    table: Option<&'a str>,
    row: Option<&'a str>,
}

fn parse_link(url: &str) -> Option<LinkParts<'_>> {
    let after = &url[url.find("/d/")? + 3..];
    let mut segments = after
        .split(['/', '#', '?', '&'])
        .filter(|segment| !segment.is_empty());
    let doc_segment = segments.next()?;
    let mut parts = LinkParts {
        doc: &doc_segment[doc_segment.rfind("_d")? + 2..],
        ..LinkParts::default()
    };
    for segment in segments {
        let marker = |m: &str| segment.rfind(m).map(|i| &segment[i + m.len()..]);
        if let Some(row) = marker("_ru") {
            parts.row = Some(row);
        } else if let Some(table) = marker("_tu") {
            parts.table = Some(table);
        } else if let Some(page) = marker("_su") {
            parts.page = Some(page);
        }
    }
    (!parts.doc.is_empty()).then_some(parts)
}

fn matches_id(id: &str, key: &str) -> bool {
    !key.is_empty() && (id == key || id.ends_with(key))
}

/// The most specific resource the link names; with `degrade`, unresolvable
/// parts fall back to the enclosing resource instead of 404.
fn resolve(
    state: &AppState,
    doc: &Doc,
    parts: &LinkParts<'_>,
    degrade: bool,
) -> Result<Value, ApiError> {
    let urls = &state.urls;
    let mut resource = render::doc(urls, doc);
    let missing = |resource: Value| {
        if degrade {
            Ok(resource)
        } else {
            Err(ApiError::not_found())
        }
    };
    if let Some(key) = parts.page {
        match doc
            .pages
            .iter()
            .find(|p| !p.deleted && matches_id(&p.id, key))
        {
            Some(page) => resource = render::page_ref(urls, doc, page),
            None => return missing(resource),
        }
    }
    if let Some(key) = parts.table {
        let Some(table) = doc.tables.iter().find(|t| matches_id(&t.id, key)) else {
            return missing(resource);
        };
        resource = render::table_ref(urls, doc, table);
        if let Some(key) = parts.row {
            let base = doc.base_of(table);
            let Some(row) = base.rows.iter().find(|r| matches_id(&r.id, key)) else {
                return missing(resource);
            };
            resource = render::row(urls, doc, table, row, RowFormat::default());
        }
    }
    Ok(resource)
}

async fn resolve_browser_link(
    State(state): State<AppState>,
    uri: Uri,
) -> Result<Json<Value>, ApiError> {
    let q = ListQuery::from_uri(&uri)?;
    let url = q
        .get("url")
        .ok_or_else(|| ApiError::bad_request("The url parameter is required"))?;
    let degrade = q.flag("degradeGracefully")?.unwrap_or(false);
    let parts = parse_link(url).ok_or_else(|| ApiError::bad_request("Not a Coda doc link"))?;
    let store = state.store();
    let doc = store.doc(parts.doc)?;
    let resource = resolve(&state, doc, &parts, degrade)?;
    let summary = json!({
        "type": resource["type"],
        "id": resource["id"],
        "name": resource["name"],
        "href": resource["href"],
    });
    Ok(Json(json!({
        "type": "apiLink",
        "href": resource["href"],
        "browserLink": url,
        "resource": summary,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mock_and_coda_style_links() {
        let mock =
            parse_link("http://127.0.0.1:1/d/_dAbCDeFGH/#_tugrid-pqRst-U/_rui-Row00001").unwrap();
        assert_eq!(
            mock,
            LinkParts {
                doc: "AbCDeFGH",
                page: None,
                table: Some("grid-pqRst-U"),
                row: Some("i-Row00001")
            }
        );
        let coda =
            parse_link("https://coda.io/d/Launch-Hub_dAbCDeFGH/Launch-Status_sumnO").unwrap();
        assert_eq!(coda.doc, "AbCDeFGH");
        assert_eq!(coda.page, Some("mnO"));
        assert_eq!(parse_link("https://coda.io/docs"), None);
    }
}
