//! The authorize page: server-rendered HTML with no external assets, under a strict CSP (no
//! scripts at all; inline styles only; forms post only to this gateway and, for the redirect
//! that follows, to the client's redirect origin; never framed).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the page shows and carries.
pub struct Page<'a> {
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// Whether the client's identity was read from a metadata document at its URL.
    pub verified_url: bool,
    pub resource: &'a str,
    pub service_name: &'a str,
    /// The sealed request handle (hidden field).
    pub handle: &'a str,
    /// A message above the form (for example: Coda refused the token).
    pub error: Option<&'a str>,
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The host (or scheme, for private-use schemes) a redirect URI goes to.
pub fn redirect_host(redirect_uri: &str) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(url) => match url.host_str() {
            Some(host) => match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            },
            None => format!("{}:", url.scheme()),
        },
        Err(_) => redirect_uri.to_string(),
    }
}

/// The CSP source that lets the approval's redirect reach the client (Chromium applies
/// `form-action` to redirects after a form submission).
fn redirect_source(redirect_uri: &str) -> String {
    match reqwest::Url::parse(redirect_uri) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => url.origin().ascii_serialization(),
        Ok(url) => format!("{}:", url.scheme()),
        Err(_) => String::new(),
    }
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1d1f}\
h1{font-size:1.4rem}.box{border:1px solid #ccd;border-radius:8px;padding:1rem;margin:1rem 0;background:#f8f8fb}\
.error{border-color:#c33;background:#fff0f0;color:#800}code{word-break:break-all}\
input[type=password]{width:100%;box-sizing:border-box;padding:.5rem;font:inherit}\
.buttons{display:flex;gap:.75rem;margin-top:1rem}button{font:inherit;padding:.5rem 1.25rem;border-radius:6px;border:1px solid #888;cursor:pointer}\
button.approve{background:#1a5fd0;color:#fff;border-color:#1a5fd0}small{color:#555}";

pub fn render(page: &Page<'_>, status: StatusCode) -> Response {
    let host = redirect_host(page.redirect_uri);
    let error = page
        .error
        .map(|e| {
            format!(
                r#"<div class="box error" role="alert" id="error">{}</div>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let identity = if page.verified_url {
        format!(
            "Its identity was read from <code>{}</code>.",
            escape(page.client_id)
        )
    } else {
        "The client named itself; only the address it returns to is certain.".to_string()
    };
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="no-referrer"><title>Sign in to {service}</title><style>{STYLE}</style></head>
<body><main>
<h1>Allow <span id="client-name">{name}</span> to use {service}?</h1>
{error}<div class="box">
<p><strong id="client-name-2">{name}</strong> wants to act on your behalf on <code>{resource}</code>.</p>
<p>After you approve, you go back to <strong id="redirect-host">{host}</strong>. {identity}</p>
</div>
<form method="post" action="/oauth/authorize" autocomplete="off">
<input type="hidden" name="request" value="{handle}">
<label for="coda_token">Your Coda API token (from <a href="https://coda.io/account" rel="noreferrer noopener" target="_blank">coda.io/account</a>):</label>
<input type="password" id="coda_token" name="coda_token" autocomplete="off" spellcheck="false">
<p><small>The token stays on this gateway (encrypted); {name} never sees it, only a short-lived gateway token.</small></p>
<div class="buttons">
<button type="submit" name="decision" value="approve" class="approve" id="approve">Approve</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</div>
</form>
</main></body></html>
"#,
        service = escape(page.service_name),
        name = escape(page.client_name),
        resource = escape(page.resource),
        host = escape(&host),
        handle = escape(page.handle),
    );
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'none'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        redirect_source(page.redirect_uri)
    );
    html(status, body, &csp)
}

/// A page that only explains (no form): used where redirecting to the client is unsafe
/// (unknown client, unregistered redirect URI) or pointless.
pub fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{title}</title><style>{STYLE}</style></head>
<body><main><h1>{title}</h1><div class="box error" role="alert" id="error">{text}</div></main></body></html>
"#,
        title = escape(title),
        text = escape(text),
    );
    html(
        status,
        body,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    )
}

fn html(status: StatusCode, body: String, csp: &str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_hosts_are_shown() {
        assert_eq!(
            escape(r#"<script>"x"&'y'</script>"#),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;&lt;/script&gt;"
        );
        assert_eq!(
            redirect_host("http://127.0.0.1:3000/cb?x=1"),
            "127.0.0.1:3000"
        );
        assert_eq!(
            redirect_host("https://claude.ai/api/mcp/auth_callback"),
            "claude.ai"
        );
        assert_eq!(
            redirect_host("cursor://anysphere.cursor-retrieval/cb"),
            "anysphere.cursor-retrieval"
        );
        assert_eq!(redirect_source("https://claude.ai/cb"), "https://claude.ai");
        assert_eq!(redirect_source("myapp:/cb"), "myapp:");
    }
}
