//! JSON shapes of Coda resources (§3 of the reference), with `href`/`browserLink`
//! pointing at the mock itself so that clients following links stay offline.

use serde_json::{json, Map, Value};

use super::model::{value_as_text, Column, Doc, Formula, Page, Row, Table};

/// The mock's own URLs: `origin` is `http://127.0.0.1:PORT`, `base` adds `/apis/v1`.
#[derive(Debug, Clone)]
pub(crate) struct Urls {
    pub origin: String,
    pub base: String,
}

impl Urls {
    pub fn from_base(base: &str) -> Urls {
        let base = base.trim_end_matches('/').to_owned();
        let origin = base
            .strip_suffix("/apis/v1")
            .unwrap_or(base.as_str())
            .to_owned();
        Urls { origin, base }
    }

    pub fn doc(&self, doc: &str) -> String {
        format!("{}/docs/{doc}", self.base)
    }

    pub fn page(&self, doc: &str, page: &str) -> String {
        format!("{}/pages/{page}", self.doc(doc))
    }

    pub fn table(&self, doc: &str, table: &str) -> String {
        format!("{}/tables/{table}", self.doc(doc))
    }

    fn doc_browser(&self, doc: &str) -> String {
        format!("{}/d/_d{doc}", self.origin)
    }

    pub fn export_download(&self, export_id: &str) -> String {
        format!("{}/blobs/export/{export_id}", self.origin)
    }
}

fn workspace(doc: &Doc, urls: &Urls) -> Value {
    json!({
        "id": doc.workspace_id,
        "type": "workspace",
        "organizationId": "org-mock0001",
        "browserLink": format!("{}/docs?workspaceId={}", urls.origin, doc.workspace_id),
        "name": doc.workspace_name,
    })
}

pub(crate) fn doc(urls: &Urls, doc: &Doc) -> Value {
    let live_pages = doc.pages.iter().filter(|p| !p.deleted).count();
    let row_count: usize = doc.tables.iter().map(|t| t.rows.len()).sum();
    let mut value = json!({
        "id": doc.id,
        "type": "doc",
        "href": urls.doc(&doc.id),
        "browserLink": urls.doc_browser(&doc.id),
        "name": doc.name,
        "owner": doc.owner,
        "ownerName": doc.owner_name,
        "createdAt": doc.created_at,
        "updatedAt": doc.updated_at,
        "docSize": {
            "totalRowCount": row_count,
            "tableAndViewCount": doc.tables.len(),
            "pageCount": live_pages,
            "overApiSizeLimit": false,
        },
        "workspace": workspace(doc, urls),
        "folder": {
            "id": doc.folder_id,
            "type": "folder",
            "browserLink": format!("{}/folders/{}", urls.origin, doc.folder_id),
            "name": doc.folder_name,
        },
        "workspaceId": doc.workspace_id,
        "folderId": doc.folder_id,
    });
    if doc.published {
        value["published"] = json!({
            "browserLink": format!("{}/@mock/{}", urls.origin, doc.id),
            "discoverable": true,
            "earnCredit": false,
            "mode": "view",
            "categories": [],
        });
    }
    value
}

pub(crate) fn page_ref(urls: &Urls, doc: &Doc, page: &Page) -> Value {
    json!({
        "id": page.id,
        "type": "page",
        "href": urls.page(&doc.id, &page.id),
        "browserLink": format!("{}/_su{}", urls.doc_browser(&doc.id), page.id),
        "name": page.name,
    })
}

pub(crate) fn page(urls: &Urls, doc: &Doc, page: &Page) -> Value {
    let mut value = page_ref(urls, doc, page);
    let children: Vec<Value> = doc
        .pages
        .iter()
        .filter(|p| !p.deleted && p.parent.as_deref() == Some(page.id.as_str()))
        .map(|p| page_ref(urls, doc, p))
        .collect();
    let parent = page
        .parent
        .as_deref()
        .and_then(|id| doc.pages.iter().find(|p| p.id == id));
    let effectively_hidden = page.is_hidden || parent.is_some_and(|p| p.is_hidden);
    let fields = [
        ("contentType", json!(page.content_type)),
        ("isHidden", json!(page.is_hidden)),
        ("isEffectivelyHidden", json!(effectively_hidden)),
        ("children", json!(children)),
        ("createdAt", json!(page.created_at)),
        ("updatedAt", json!(page.updated_at)),
    ];
    extend(&mut value, fields);
    if let Some(subtitle) = &page.subtitle {
        value["subtitle"] = json!(subtitle);
    }
    if let Some(parent) = parent {
        value["parent"] = page_ref(urls, doc, parent);
    }
    value
}

pub(crate) fn table_ref(urls: &Urls, doc: &Doc, table: &Table) -> Value {
    let mut value = json!({
        "id": table.id,
        "type": "table",
        "tableType": if table.view_of.is_some() { "view" } else { "table" },
        "href": urls.table(&doc.id, &table.id),
        "browserLink": format!("{}/#_tu{}", urls.doc_browser(&doc.id), table.id),
        "name": table.name,
    });
    if let Some(parent) = doc.pages.iter().find(|p| p.id == table.parent) {
        value["parent"] = page_ref(urls, doc, parent);
    }
    value
}

pub(crate) fn table(urls: &Urls, doc: &Doc, table: &Table) -> Value {
    let base = doc.base_of(table);
    let mut value = table_ref(urls, doc, table);
    if let Some(display) = base.display_column_id() {
        value["displayColumn"] = json!({
            "id": display,
            "type": "column",
            "href": format!("{}/columns/{display}", urls.table(&doc.id, &table.id)),
        });
    }
    let fields = [
        ("rowCount", json!(base.rows.len())),
        ("sorts", json!([])),
        ("layout", json!("default")),
        ("createdAt", json!(table.created_at)),
        ("updatedAt", json!(table.updated_at)),
    ];
    extend(&mut value, fields);
    if table.view_of.is_some() {
        value["parentTable"] = table_ref(urls, doc, base);
    }
    value
}

pub(crate) fn column(urls: &Urls, doc: &Doc, table: &Table, column: &Column) -> Value {
    let base = doc.base_of(table);
    let mut value = json!({
        "id": column.id,
        "type": "column",
        "href": format!("{}/columns/{}", urls.table(&doc.id, &table.id), column.id),
        "name": column.name,
        "calculated": column.calculated,
        "format": { "type": column.format, "isArray": column.is_array },
    });
    if base.display_column_id() == Some(column.id.as_str()) {
        value["display"] = json!(true);
    }
    if let Some(formula) = &column.formula {
        value["formula"] = json!(formula);
    }
    value
}

/// A formula as listed; `with_value` adds `value`, as `getFormula` does.
pub(crate) fn formula(urls: &Urls, doc: &Doc, formula: &Formula, with_value: bool) -> Value {
    let mut value = json!({
        "id": formula.id,
        "type": "formula",
        "href": format!("{}/formulas/{}", urls.doc(&doc.id), formula.id),
        "name": formula.name,
    });
    if let Some(parent) = formula
        .parent
        .as_deref()
        .and_then(|id| doc.pages.iter().find(|p| p.id == id))
    {
        value["parent"] = page_ref(urls, doc, parent);
    }
    if with_value {
        value["value"] = formula.value.clone();
    }
    value
}

/// How row values are written out (`useColumnNames`, `valueFormat`, `visibleOnly`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowFormat {
    pub use_column_names: bool,
    pub value_format: ValueFormat,
    pub visible_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ValueFormat {
    #[default]
    Simple,
    SimpleWithArrays,
    Rich,
}

impl ValueFormat {
    pub fn parse(raw: Option<&str>) -> Option<ValueFormat> {
        match raw {
            None | Some("simple") => Some(ValueFormat::Simple),
            Some("simpleWithArrays") => Some(ValueFormat::SimpleWithArrays),
            Some("rich") => Some(ValueFormat::Rich),
            Some(_) => None,
        }
    }

    fn render(self, value: &Value) -> Value {
        match (self, value) {
            // `simple` flattens arrays to comma-joined text; the other formats keep them.
            (ValueFormat::Simple, Value::Array(_)) => json!(value_as_text(value)),
            // `rich` wraps plain text in a Markdown code span, as Coda does.
            (ValueFormat::Rich, Value::String(s)) if !s.is_empty() => json!(format!("```{s}```")),
            (ValueFormat::Rich, Value::Array(items)) => {
                Value::Array(items.iter().map(|v| self.render(v)).collect())
            }
            _ => value.clone(),
        }
    }
}

/// A row as listed; `table` is the table or view it was addressed through.
pub(crate) fn row(urls: &Urls, doc: &Doc, table: &Table, row: &Row, format: RowFormat) -> Value {
    let base = doc.base_of(table);
    let mut values = Map::new();
    for column in &base.columns {
        if format.visible_only && column.hidden {
            continue;
        }
        let value = row.values.get(&column.id).cloned().unwrap_or(json!(""));
        let key = if format.use_column_names {
            column.name.clone()
        } else {
            column.id.clone()
        };
        values.insert(key, format.value_format.render(&value));
    }
    json!({
        "id": row.id,
        "type": "row",
        "href": format!("{}/rows/{}", urls.table(&doc.id, &table.id), row.id),
        "name": base.row_name(row),
        "index": row.index,
        "browserLink": format!("{}/#_tu{}/_ru{}", urls.doc_browser(&doc.id), table.id, row.id),
        "createdAt": row.created_at,
        "updatedAt": row.updated_at,
        "values": values,
    })
}

fn extend<const N: usize>(value: &mut Value, fields: [(&str, Value); N]) {
    if let Value::Object(map) = value {
        for (key, field) in fields {
            map.insert(key.to_owned(), field);
        }
    }
}

/// One content item per non-empty Markdown line, as `GET …/pages/{p}/content` lists them.
pub(crate) fn content_items(page: &Page) -> Vec<Value> {
    page.content
        .lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let (style, text) = line_style(line);
            json!({
                "id": format!("cl-{}-{:04}", page.id, i + 1),
                "type": "line",
                "itemContent": {
                    "style": style,
                    "format": "plainText",
                    "content": text,
                    "lineLevel": 0,
                },
            })
        })
        .collect()
}

fn line_style(line: &str) -> (&'static str, &str) {
    let trimmed = line.trim_start();
    for (prefix, style) in [("### ", "h3"), ("## ", "h2"), ("# ", "h1")] {
        if let Some(rest) = trimmed.strip_prefix(prefix) {
            return (style, rest);
        }
    }
    if let Some(rest) = trimmed
        .strip_prefix("- ")
        .or_else(|| trimmed.strip_prefix("* "))
    {
        return ("bulletedList", rest);
    }
    ("paragraph", trimmed)
}

/// The page as exported: Markdown as stored, or a minimal HTML rendering of it.
pub(crate) fn export_body(page: &Page, html: bool) -> String {
    if !html {
        return page.content.clone();
    }
    let mut out = String::from("<html><body>\n");
    for line in page.content.lines().filter(|l| !l.trim().is_empty()) {
        let (style, text) = line_style(line);
        let tag = match style {
            "bulletedList" => "li",
            "paragraph" => "p",
            heading => heading,
        };
        out.push_str(&format!("<{tag}>{}</{tag}>\n", escape_html(text)));
    }
    out.push_str("</body></html>\n");
    out
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
