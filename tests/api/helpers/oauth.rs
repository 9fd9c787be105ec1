//! What the token endpoint and the client registrations hand back.

use reqwest::{Response, StatusCode};
use serde_json::Value;

use super::{expect_json, header};

/// A registered OAuth client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
    pub name: String,
    pub grant_types: Vec<String>,
}

impl Client {
    /// Reads `{"client_id","client_secret","client_name","grant_types"}`.
    pub fn from_json(json: &Value) -> Self {
        let field = |name: &str| {
            json[name].as_str().unwrap_or_else(|| panic!("client JSON lacks {name}: {json}")).to_string()
        };
        Self {
            id: field("client_id"),
            secret: field("client_secret"),
            name: field("client_name"),
            grant_types: json["grant_types"]
                .as_array()
                .unwrap_or_else(|| panic!("client JSON lacks grant_types: {json}"))
                .iter()
                .map(|g| g.as_str().expect("grant type string").to_string())
                .collect(),
        }
    }

    /// A client that was never registered.
    pub fn unknown() -> Self {
        Self {
            id: "no-such-client".to_string(),
            secret: "no-such-secret".to_string(),
            name: "unknown".to_string(),
            grant_types: Vec::new(),
        }
    }

    /// The same client id with another secret.
    pub fn with_secret(&self, secret: &str) -> Self {
        Self { secret: secret.to_string(), ..self.clone() }
    }

    /// The grant types, sorted, for order-free comparison.
    pub fn sorted_grant_types(&self) -> Vec<String> {
        let mut grants = self.grant_types.clone();
        grants.sort();
        grants
    }
}

/// A successful token response.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub scope: Option<String>,
    pub token_type: String,
    pub expires_in: i64,
    pub body: Value,
}

impl Tokens {
    /// The refresh token, which the test expects to be there.
    pub fn refresh(&self) -> &str {
        self.refresh_token.as_deref().unwrap_or_else(|| panic!("no refresh token in {}", self.body))
    }

    /// Asserts a 200 with the no-store headers and reads the body.
    pub async fn from_response(response: Response) -> Self {
        let headers = response.headers().clone();
        let body = expect_json(response, StatusCode::OK).await;
        assert_eq!(header(&headers, "cache-control"), "no-store", "{body}");
        assert_eq!(header(&headers, "pragma"), "no-cache", "{body}");
        let text = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
        Self {
            access_token: text("access_token").unwrap_or_else(|| panic!("no access_token in {body}")),
            refresh_token: text("refresh_token"),
            scope: text("scope"),
            token_type: text("token_type").unwrap_or_default(),
            expires_in: body["expires_in"]
                .as_i64()
                .unwrap_or_else(|| panic!("expires_in is not an integer in {body}")),
            body,
        }
    }
}
