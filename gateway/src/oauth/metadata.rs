//! RFC 8414 authorization server metadata when OAuth is on: exactly the endpoints served.

use serde_json::{json, Value};

use super::{Settings, SCOPE};

pub fn authorization_server(base: &str, settings: &Settings) -> Value {
    json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "client_id_metadata_document_supported": settings.metadata_documents,
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": [SCOPE],
    })
}
