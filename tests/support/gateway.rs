//! The gateway served in-process on a free loopback port, over a test database, for
//! black-box HTTP tests: the same router and `serve` function `ultracore serve` uses,
//! connected as `ultracore_app`, with a known JWT secret so tests can forge tokens.

#![allow(dead_code)]

use std::net::SocketAddr;

use api::auth::jwt::JwtKeys;
use api::config::Config;
use api::graphql::{Gateway, Services};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::TestDb;

/// The data key of test gateways (base64 of 32 bytes), so tests can decrypt what they check.
pub const TEST_DATA_KEY: &str = "dWx0cmFjb3JlLXRlc3QtZGF0YS1rZXktMzItYnl0ZXM=";

/// The HMAC secret the test gateway signs access tokens with (a forger who knows it can
/// mint valid tokens, which is what the control cases of the token tests do).
pub const TEST_SECRET: &[u8] = b"ultracore-test-jwt-secret-0123456789-abcdefghij";
/// `iss` of the test gateway's tokens (the default).
pub const TEST_ISSUER: &str = "ultracore";
/// `aud` of the test gateway's tokens (the default).
pub const TEST_AUDIENCE: &str = "ultracore-api";
/// Clock skew the test gateway tolerates on exp/nbf, in seconds.
pub const TEST_LEEWAY_SECS: u64 = 5;

/// What a response body must never contain: text of SQL, of PostgreSQL's errors, or of
/// the driver's.
pub const SQL_MARKERS: [&str; 7] = [
    "SELECT",
    "select ",
    "syntax error",
    "relation ",
    "violates",
    "pg_",
    "sqlx",
];

/// Raises every rate limit far above what a test sends.
pub fn relax_rate_limits(config: &mut Config) {
    let limits = &mut config.rate_limits;
    for endpoint in api::config::rate_limits::PUBLIC_ENDPOINTS {
        limits.endpoints.insert(endpoint.to_string(), 100_000);
    }
    for endpoint in [
        "changePassword",
        "enrollTotp",
        "confirmTotp",
        "disableTotp",
        "generateBackupCodes",
        "requestEmailVerification",
    ] {
        limits.endpoints.insert(endpoint.to_string(), 100_000);
    }
    limits.mutation_limit = 100_000;
    limits.read_limit = 1_000_000;
}

/// A running gateway; stops (gracefully) when dropped.
pub struct TestGateway {
    addr: SocketAddr,
    client: reqwest::Client,
    /// The gateway itself, for what a test needs to know about it (its key id, config).
    pub gateway: Gateway,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestGateway {
    /// Serves the default configuration (development profile) over `db`.
    pub async fn start(db: &TestDb) -> TestGateway {
        Self::start_with(db, |_| {}).await
    }

    /// Serves over `db` after `tweak` has adjusted the default configuration.
    pub async fn start_with(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> TestGateway {
        let mut config = Config::default();
        // Tests sign in and write far faster than any client: the limiter stays on (its
        // SQL runs on every mutation of every test) with budgets no test reaches. The rate
        // limit tests (api_rate_limits) set their own.
        relax_rate_limits(&mut config);
        tweak(&mut config);
        let pool = api::db::connect_app(&db.app_url(), &config.database)
            .await
            .expect("connect the serving pool as ultracore_app");
        api::db::ensure_role_cannot_bypass_rls(&pool)
            .await
            .expect("the serving role is bound by RLS");
        let keys = JwtKeys::new(
            TEST_SECRET,
            &[],
            &config.auth.issuer,
            &config.auth.audience,
            config.auth.leeway_secs,
        )
        .expect("JWT keys");
        let dummy_hash = tokio::task::spawn_blocking(api::auth::login::make_dummy_hash)
            .await
            .expect("dummy hash task")
            .expect("dummy hash");
        let config_geo = config.geo.clone();
        let gateway = Gateway::new(Services {
            db: pool,
            keys,
            config,
            dummy_hash,
            data_keys: api::auth::crypto::KeyRing::new(TEST_DATA_KEY, &[]).expect("data key"),
            geo: api::geo::GeoLocator::open(&config_geo).expect("the configured GeoIP database opens"),
        });
        let router = api::server::router(gateway.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free port");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let stop = async move {
                let _ = rx.await;
            };
            if let Err(e) = api::server::serve(listener, router, stop).await {
                eprintln!("test gateway stopped with an error: {e}");
            }
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("HTTP client");
        TestGateway {
            addr,
            client,
            gateway,
            shutdown: Some(tx),
        }
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The id of the key the gateway signs with.
    pub fn kid(&self) -> String {
        self.gateway.services.keys.current_kid().to_string()
    }

    /// POSTs `body` to /graphql with exactly `headers`; returns the status and body text.
    pub async fn post(&self, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) -> (u16, String) {
        let mut request = self.client.post(format!("{}/graphql", self.url()));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.body(body.into()).send().await.expect("POST /graphql");
        let status = response.status().as_u16();
        let text = response.text().await.expect("response body");
        (status, text)
    }

    /// POSTs a raw body with `content_type`, as `token`'s bearer when given.
    pub async fn post_raw(
        &self,
        content_type: &str,
        body: impl Into<Vec<u8>>,
        token: Option<&str>,
    ) -> (u16, String) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", content_type)];
        if let Some(b) = &bearer {
            headers.push(("authorization", b.as_str()));
        }
        self.post(&headers, body).await
    }

    /// Runs one GraphQL operation as `token`'s bearer (anonymous without one); returns the
    /// status and the JSON body.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> (u16, Value) {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (status, text) = self.post_raw("application/json", body, token).await;
        (status, parse_body(&text))
    }

    /// Runs one GraphQL operation with `authorization` as the whole Authorization header.
    pub async fn gql_with_authorization(&self, authorization: &str, query: &str) -> (u16, Value) {
        let body = json!({ "query": query }).to_string();
        let (status, text) = self
            .post(
                &[
                    ("content-type", "application/json"),
                    ("authorization", authorization),
                ],
                body,
            )
            .await;
        (status, parse_body(&text))
    }

    /// Runs an operation that must succeed (HTTP 200, no errors); returns its `data`.
    pub async fn data(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let (status, body) = self.gql(token, query, variables).await;
        assert_eq!(status, 200, "{query}\n{body:#}");
        assert_no_errors(&body, query);
        body["data"].clone()
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A response body as JSON (panics with the text when it is not JSON).
pub fn parse_body(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("the gateway answered non-JSON ({e}): {text}"))
}

/// Fails unless `body` carries no `errors`.
pub fn assert_no_errors(body: &Value, what: &str) {
    let errors = body.get("errors");
    assert!(
        errors.is_none_or(|e| e.as_array().is_some_and(Vec::is_empty)),
        "{what}: unexpected errors: {body:#}"
    );
}

/// The errors of a body (empty when none).
pub fn errors(body: &Value) -> Vec<Value> {
    body.get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// `errors[0].extensions.code`, when present.
pub fn first_error_code(body: &Value) -> Option<String> {
    errors(body)
        .first()
        .and_then(|e| e.pointer("/extensions/code"))
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Every error of `body` that has no `extensions.code`.
pub fn uncoded_errors(body: &Value) -> Vec<Value> {
    errors(body)
        .into_iter()
        .filter(|e| e.pointer("/extensions/code").and_then(Value::as_str).is_none())
        .collect()
}

/// The SQL markers found in a response text.
pub fn sql_markers_in(text: &str) -> Vec<&'static str> {
    SQL_MARKERS.into_iter().filter(|m| text.contains(m)).collect()
}
