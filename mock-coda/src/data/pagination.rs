//! Query parameters and Coda-style pagination (`pageToken` → `nextPageToken`/`nextPageLink`).
//!
//! Coda ignores other parameters when `pageToken` is given, so a client following
//! `nextPageLink` sends nothing else. The token therefore carries the original
//! parameters plus the next offset (hex-encoded JSON: opaque, URL-safe).

use axum::extract::Query;
use axum::http::Uri;
use serde_json::{json, Value};

use crate::api_error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ListQuery {
    params: Vec<(String, String)>,
    offset: usize,
}

impl ListQuery {
    pub fn from_uri(uri: &Uri) -> Result<ListQuery, ApiError> {
        let Query(params) = Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map_err(|e| ApiError::bad_request(format!("Invalid query string: {e}")))?;
        let token = params
            .iter()
            .find(|(k, v)| k == "pageToken" && !v.is_empty())
            .map(|(_, v)| v.clone());
        match token {
            Some(token) => decode_token(&token),
            None => Ok(ListQuery { params, offset: 0 }),
        }
    }

    /// A parameter's value; empty values count as absent (clients send `query=`).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        match self.get(key) {
            None => Ok(None),
            Some("true" | "1") => Ok(Some(true)),
            Some("false" | "0") => Ok(Some(false)),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid value for {key}: {other:?}"
            ))),
        }
    }

    /// Every value of a list parameter, whether repeated or comma-joined.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.params
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// `limit`, defaulted and clamped to `1..=max` (clients send 100 or 200; Coda clamps).
    pub fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        match self.get("limit") {
            None => Ok(default.min(max)),
            Some(raw) => raw
                .parse::<usize>()
                .map(|n| n.clamp(1, max))
                .map_err(|_| ApiError::bad_request(format!("Invalid value for limit: {raw:?}"))),
        }
    }

    /// Cuts one page out of `items` and builds the list envelope around it.
    ///
    /// `list_url` is the absolute URL of the list endpoint; `request_query` is the raw
    /// query string of this request (for `href`).
    pub fn envelope(
        &self,
        items: Vec<Value>,
        limit: usize,
        list_url: &str,
        request_query: Option<&str>,
    ) -> Value {
        let total = items.len();
        let page: Vec<Value> = items.into_iter().skip(self.offset).take(limit).collect();
        let href = match request_query {
            Some(q) if !q.is_empty() => format!("{list_url}?{q}"),
            _ => list_url.to_owned(),
        };
        let mut body = json!({ "items": page, "href": href });
        let next_offset = self.offset.saturating_add(limit);
        if next_offset < total {
            let token = encode_token(&self.params, next_offset);
            body["nextPageLink"] = json!(format!("{list_url}?pageToken={token}"));
            body["nextPageToken"] = json!(token);
        }
        body
    }

    /// Whether this page is the last one (for `nextSyncToken`).
    pub fn is_last_page(&self, total: usize, limit: usize) -> bool {
        self.offset.saturating_add(limit) >= total
    }
}

fn encode_token(params: &[(String, String)], offset: usize) -> String {
    let kept: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "pageToken").collect();
    hex_encode(json!({ "o": offset, "p": kept }).to_string().as_bytes())
}

fn decode_token(token: &str) -> Result<ListQuery, ApiError> {
    let invalid = || ApiError::bad_request("Invalid pageToken");
    let bytes = hex_decode(token).ok_or_else(invalid)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let offset = value["o"].as_u64().ok_or_else(invalid)? as usize;
    let params: Vec<(String, String)> =
        serde_json::from_value(value["p"].clone()).map_err(|_| invalid())?;
    Ok(ListQuery { params, offset })
}

/// Opaque, URL-safe encoding for tokens.
pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> ListQuery {
        ListQuery::from_uri(&format!("/x?{q}").parse().unwrap()).unwrap()
    }

    #[test]
    fn token_carries_params_and_offset() {
        let first = query("query=a&limit=2");
        let body = first.envelope((0..5).map(|i| json!(i)).collect(), 2, "http://h/x", None);
        let token = body["nextPageToken"].as_str().unwrap();
        let second = query(&format!("pageToken={token}&query=ignored"));
        assert_eq!(second.get("query"), Some("a"));
        assert_eq!(second.offset, 2);
        let body = second.envelope((0..5).map(|i| json!(i)).collect(), 2, "http://h/x", None);
        assert_eq!(body["items"], json!([2, 3]));
    }

    #[test]
    fn limit_is_clamped_and_bad_tokens_refused() {
        assert_eq!(query("limit=500").limit(25, 100).unwrap(), 100);
        assert_eq!(query("limit=0").limit(25, 100).unwrap(), 1);
        assert!(query("limit=x").limit(25, 100).is_err());
        assert!(ListQuery::from_uri(&"/x?pageToken=zz".parse().unwrap()).is_err());
        assert_eq!(
            query("tableTypes=table,view&tableTypes=x")
                .all("tableTypes")
                .len(),
            3
        );
    }
}
