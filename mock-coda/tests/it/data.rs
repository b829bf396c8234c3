use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

const DOC: &str = "AbCDeFGH";
const TASKS: &str = "/docs/AbCDeFGH/tables/grid-pqRst-U";

#[tokio::test]
async fn every_data_route_requires_a_known_token() {
    let ctx = start().await;
    for path in [
        "/docs",
        "/docs/AbCDeFGH",
        "/mutationStatus/x",
        "/no/such/route",
    ] {
        let (status, body) = ctx.call(Method::GET, &ctx.api(path), None, None).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, unauthorized_body()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn docs_list_filters_and_unknown_ids_get_codas_404() {
    let ctx = start().await;
    let (status, body) = ctx.get("/docs", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 3);
    assert_eq!(body["href"], json!(ctx.api("/docs")));
    assert!(body.get("nextPageToken").is_none());
    let doc = &body["items"][0];
    for field in [
        "id",
        "type",
        "href",
        "browserLink",
        "name",
        "owner",
        "ownerName",
        "createdAt",
        "updatedAt",
        "workspace",
        "folder",
        "workspaceId",
        "folderId",
    ] {
        assert!(doc.get(field).is_some(), "doc lacks {field}");
    }

    let (_, mine) = ctx
        .get("/docs?isOwner=true&query=&isPublished=false", BOB)
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    let (_, mine) = ctx.get("/docs?isOwner=true", BOB).await;
    assert_eq!(mine["items"][0]["name"], "Team Wiki");
    let (_, found) = ctx.get("/docs?query=launch", BOB).await;
    assert_eq!(found["items"][0]["id"], DOC);

    let (status, body) = ctx
        .call(Method::PATCH, &ctx.api("/docs"), Some(ALICE), None)
        .await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!(405))
    );

    let (status, body) = ctx.get("/docs/nope", ALICE).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"statusCode": 404, "statusMessage": "Not Found", "message": "Not Found"})
    );
}

#[tokio::test]
async fn pages_resolve_by_id_or_percent_encoded_name() {
    let ctx = start().await;
    let (status, pages) = ctx.get("/docs/AbCDeFGH/pages", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pages["items"][0]["children"][0]["id"], "canvas-Checklist");
    let (status, page) = ctx.get("/docs/AbCDeFGH/pages/Launch%20Status", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["id"], "canvas-IjkLmnO");
    assert_eq!(page["contentType"], "canvas");
    let (_, content) = ctx
        .get("/docs/AbCDeFGH/pages/canvas-IjkLmnO/content", ALICE)
        .await;
    assert_eq!(
        content["items"][0]["itemContent"]["content"],
        "Launch Status"
    );
    assert_eq!(content["items"][0]["itemContent"]["style"], "h1");
}

#[tokio::test]
async fn tables_and_columns_answer_by_name_and_views_are_listed() {
    let ctx = start().await;
    let (_, tables) = ctx
        .get("/docs/AbCDeFGH/tables?tableTypes=view", ALICE)
        .await;
    assert_eq!(tables["items"][0]["tableType"], "view");
    let (status, table) = ctx.get("/docs/AbCDeFGH/tables/Tasks", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(table["rowCount"], 6);
    assert_eq!(table["displayColumn"]["id"], "c-tuVwxYz");
    let (_, columns) = ctx
        .get(
            &format!("{TASKS}/columns?visibleOnly=true&limit=200"),
            ALICE,
        )
        .await;
    assert_eq!(columns["items"].as_array().unwrap().len(), 6);
    assert_eq!(columns["items"][0]["display"], true);
    assert_eq!(
        columns["items"][0]["format"],
        json!({"type": "text", "isArray": false})
    );
}

#[tokio::test]
async fn row_pagination_round_trips_through_next_page_link() {
    let ctx = start().await;
    let (status, first) = ctx.get(&format!("{TASKS}/rows?limit=4"), ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(first["items"].as_array().unwrap().len(), 4);
    let token = first["nextPageToken"].as_str().unwrap();
    let link = first["nextPageLink"].as_str().unwrap();
    assert!(
        link.starts_with(&ctx.api(TASKS)) && link.ends_with(token),
        "{link}"
    );
    assert!(first.get("nextSyncToken").is_none());

    let (status, second) = ctx.call(Method::GET, link, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(second["items"].as_array().unwrap().len(), 2);
    assert!(second.get("nextPageToken").is_none());
    assert!(second["nextSyncToken"].is_string());

    let ids: HashSet<&str> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["items"].as_array().unwrap())
        .map(|row| row["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6);
}

#[tokio::test]
async fn row_query_filter_survives_pagination() {
    let ctx = start().await;
    let path = format!("{TASKS}/rows?query=%22Status%22:%22Done%22&limit=1&useColumnNames=true");
    let (status, first) = ctx.get(&path, ALICE).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["items"][0]["values"]["Status"], "Done");
    let link = first["nextPageLink"].as_str().unwrap();
    let (_, second) = ctx.call(Method::GET, link, Some(ALICE), None).await;
    assert_eq!(second["items"][0]["values"]["Status"], "Done");
    assert!(second.get("nextPageToken").is_none());

    let (status, body) = ctx.get(&format!("{TASKS}/rows?query=Nope:1"), ALICE).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["statusCode"], 400);
}

#[tokio::test]
async fn upsert_answers_202_and_its_mutation_completes() {
    let ctx = start().await;
    let insert = json!({"rows": [{"cells": [
        {"column": "Name", "value": "Book the venue"},
        {"column": "c-bCdeFgh", "value": "Not started"}
    ]}]});
    let (status, body) = ctx
        .call(
            Method::POST,
            &ctx.api(&format!("{TASKS}/rows")),
            Some(ALICE),
            Some(insert),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let request_id = body["requestId"].as_str().unwrap().to_owned();
    let row_id = body["addedRowIds"][0].as_str().unwrap().to_owned();

    let (status, mutation) = ctx
        .get(&format!("/mutationStatus/{request_id}"), ALICE)
        .await;
    assert_eq!(
        (status, mutation),
        (StatusCode::OK, json!({"completed": true}))
    );
    assert_eq!(
        ctx.get("/mutationStatus/req-unknown", ALICE).await.0,
        StatusCode::NOT_FOUND
    );

    let (status, row) = ctx.get(&format!("{TASKS}/rows/{row_id}"), ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(row["name"], "Book the venue");
    assert_eq!(row["parent"]["id"], "grid-pqRst-U");

    // With keyColumns, a matching row is updated and nothing is added.
    let upsert = json!({"keyColumns": ["Name"], "rows": [{"cells": [
        {"column": "Name", "value": "Book the venue"}, {"column": "Status", "value": "Done"}
    ]}]});
    let (status, body) = ctx
        .call(
            Method::POST,
            &ctx.api(&format!("{TASKS}/rows")),
            Some(ALICE),
            Some(upsert),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["addedRowIds"], json!([]));
    let (_, row) = ctx
        .get(&format!("{TASKS}/rows/{row_id}?useColumnNames=true"), ALICE)
        .await;
    assert_eq!(row["values"]["Status"], "Done");
}

#[tokio::test]
async fn bad_writes_get_validation_errors() {
    let ctx = start().await;
    let url = ctx.api(&format!("{TASKS}/rows"));
    let bad_column = json!({"rows": [{"cells": [{"column": "Colour", "value": "red"}]}]});
    let (status, body) = ctx
        .call(Method::POST, &url, Some(ALICE), Some(bad_column))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["codaDetail"]["validationErrors"][0]["path"],
        "rows[0].cells[0].column"
    );
    let (status, _) = ctx
        .call(Method::POST, &url, Some(ALICE), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let view = ctx.api("/docs/AbCDeFGH/tables/Open%20Tasks/rows");
    let edit = json!({"rows": [{"cells": [{"column": "Name", "value": "x"}]}]});
    let (status, _) = ctx.call(Method::POST, &view, Some(ALICE), Some(edit)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn update_and_delete_rows_answer_202() {
    let ctx = start().await;
    let row_url = ctx.api(&format!("{TASKS}/rows/i-Row00002"));
    let edit = json!({"row": {"cells": [{"column": "Status", "value": "Done"}]}});
    let (status, body) = ctx
        .call(Method::PUT, &row_url, Some(ALICE), Some(edit))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["id"], "i-Row00002");
    assert!(body["requestId"].is_string());

    let (status, body) = ctx.call(Method::DELETE, &row_url, Some(ALICE), None).await;
    assert_eq!(
        (status, body["id"].clone()),
        (StatusCode::ACCEPTED, json!("i-Row00002"))
    );
    assert_eq!(
        ctx.get(&format!("{TASKS}/rows/i-Row00002"), ALICE).await.0,
        StatusCode::NOT_FOUND
    );

    let many = json!({"rowIds": ["i-Row00003", "i-Row00004"]});
    let (status, body) = ctx
        .call(
            Method::DELETE,
            &ctx.api(&format!("{TASKS}/rows")),
            Some(ALICE),
            Some(many),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(body["rowIds"], json!(["i-Row00003", "i-Row00004"]));
    let (_, table) = ctx.get(TASKS, ALICE).await;
    assert_eq!(table["rowCount"], 3);
}

#[tokio::test]
async fn page_export_completes_and_downloads_without_auth() {
    let ctx = start().await;
    let export_url = ctx.api("/docs/AbCDeFGH/pages/canvas-IjkLmnO/export");
    let (status, begun) = ctx
        .call(
            Method::POST,
            &export_url,
            Some(ALICE),
            Some(json!({"outputFormat": "markdown"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(begun["status"], "inProgress");
    let (status, done) = ctx
        .call(
            Method::GET,
            begun["href"].as_str().unwrap(),
            Some(ALICE),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["status"], "complete");
    let link = done["downloadLink"].as_str().unwrap();
    assert!(link.starts_with(&ctx.root("/")), "{link}");

    let download = ctx.http.get(link).send().await.unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/markdown"));
    assert!(download
        .text()
        .await
        .unwrap()
        .starts_with("# Launch Status"));

    let (status, _) = ctx
        .call(
            Method::POST,
            &export_url,
            Some(ALICE),
            Some(json!({"outputFormat": "pdf"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn deleted_pages_are_gone_and_reset_restores_the_seed() {
    let ctx = start().await;
    let page = ctx.api("/docs/AbCDeFGH/pages/canvas-Archive");
    let (status, _) = ctx.call(Method::DELETE, &page, Some(ALICE), None).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, body): (StatusCode, Value) = ctx.call(Method::GET, &page, Some(ALICE), None).await;
    assert_eq!(
        (status, body["statusCode"].clone()),
        (StatusCode::GONE, json!(410))
    );
    let (status, _) = ctx
        .call(Method::POST, &ctx.root("/_mock/reset"), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        ctx.call(Method::GET, &page, Some(ALICE), None).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn formulas_and_browser_links_resolve() {
    let ctx = start().await;
    let (_, formulas) = ctx.get("/docs/AbCDeFGH/formulas", ALICE).await;
    assert_eq!(formulas["items"].as_array().unwrap().len(), 2);
    assert!(formulas["items"][0].get("value").is_none());
    let (status, formula) = ctx
        .get("/docs/AbCDeFGH/formulas/OpenTaskCount", ALICE)
        .await;
    assert_eq!(
        (status, formula["value"].clone()),
        (StatusCode::OK, json!(4))
    );

    let (_, row) = ctx.get(&format!("{TASKS}/rows/i-Row00001"), ALICE).await;
    let link = row["browserLink"].as_str().unwrap();
    let resolve =
        reqwest::Url::parse_with_params(&ctx.api("/resolveBrowserLink"), [("url", link)]).unwrap();
    let (status, resolved) = ctx
        .call(Method::GET, resolve.as_str(), Some(ALICE), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{resolved}");
    assert_eq!(resolved["type"], "apiLink");
    assert_eq!(resolved["resource"]["type"], "row");
    assert_eq!(resolved["resource"]["id"], "i-Row00001");
    assert_eq!(resolved["href"], row["href"]);

    let coda_style = "https://coda.io/d/Launch-Hub_dAbCDeFGH/Nowhere_suZZZ";
    let lenient = reqwest::Url::parse_with_params(
        &ctx.api("/resolveBrowserLink"),
        [("url", coda_style), ("degradeGracefully", "true")],
    )
    .unwrap();
    let (_, resolved) = ctx
        .call(Method::GET, lenient.as_str(), Some(ALICE), None)
        .await;
    assert_eq!(resolved["resource"]["type"], "doc");
}

#[tokio::test]
async fn oversized_bodies_get_413_in_codas_shape() {
    let ctx = start().await;
    let huge = "x".repeat(mock_coda::BODY_LIMIT_BYTES + 1);
    let body = json!({"rows": [{"cells": [{"column": "Name", "value": huge}]}]});
    let (status, body) = ctx
        .call(
            Method::POST,
            &ctx.api(&format!("{TASKS}/rows")),
            Some(ALICE),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["statusCode"], 413);
}
