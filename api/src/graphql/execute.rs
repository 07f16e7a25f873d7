//! Running one GraphQL operation inside its tenant transaction (DESIGN.md "Tenancy").
//!
//! 1. Refuse what the document checks reject (nesting, aliases) before any database work.
//! 2. With a principal: BEGIN (READ ONLY unless the operation is a mutation) and set the
//!    tenant, user and statement timeout for this transaction only.
//! 3. Execute. Every resolver and DataLoader shares the transaction through an Arc.
//! 4. Take the transaction back and COMMIT, or ROLLBACK when any error was returned: a
//!    mutation is all or nothing, and its partial data is withdrawn with it.

use std::sync::Arc;

use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response, ServerError};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

use super::GatewaySchema;
use super::context::{ClientInfo, RequestContext};
use super::document::{self, MAX_TEXT_NESTING};
use super::errors::ApiError;
use crate::auth::crypto::KeyRing;
use crate::auth::jwt::{JwtKeys, TokenType};
use crate::auth::permissions::Principal;
use crate::auth::roles::Role;
use crate::config::Config;
use crate::db::tenant::{FoldedQuery, begin_tenant_transaction_checked};
use crate::db::{Access, TenantScope};
use crate::security::rate_limit::RateLimiter;

/// What resolvers need beyond the request: the serving pool, the token keys, the config.
/// Stored once in the schema's data.
pub struct Services {
    pub db: DatabaseConnection,
    pub keys: JwtKeys,
    pub config: Config,
    /// Verified against for unknown users at login (see auth::login).
    pub dummy_hash: String,
    /// Keys for secrets at rest (the MFA secret).
    pub data_keys: KeyRing,
    /// Locates clients for the risk engine (knows nothing unless configured).
    pub geo: crate::geo::GeoLocator,
}

/// The schema plus its services: everything needed to run operations.
#[derive(Clone)]
pub struct Gateway {
    pub schema: GatewaySchema,
    pub services: Arc<Services>,
    /// Shared by every operation of this copy (its read windows live in memory).
    limiter: Arc<RateLimiter>,
    /// Persisted operations: APQ and trusted documents.
    persisted: Arc<crate::graphql::persisted::PersistedDocuments>,
    /// Parsed documents by their text (see graphql::parsed).
    parsed: Arc<crate::graphql::parsed::ParsedDocuments>,
}

impl Gateway {
    pub fn new(services: Services) -> Gateway {
        // The first gateway of the process sizes the password-hashing pool.
        crate::auth::hashing::configure(services.config.auth.hash_pool());
        let services = Arc::new(services);
        // The live feed needs a runtime for its listener; only `ultracore schema` and unit
        // tests build a gateway without one.
        let feed = tokio::runtime::Handle::try_current().ok().map(|_| {
            crate::feed::FeedHub::start(
                services.db.clone(),
                crate::feed::hub::HubSettings {
                    statement_timeout_ms: services.config.database.statement_timeout_ms,
                    ..Default::default()
                },
            )
        });
        let schema = super::build_schema(&services.config, Some(services.clone()), feed);
        crate::telemetry::install();
        let limiter = Arc::new(RateLimiter::new(
            services.config.rate_limits.clone(),
            services.config.database.statement_timeout_ms,
        ));
        let persisted = Arc::new(crate::graphql::persisted::PersistedDocuments::new(
            services.config.graphql.trusted_documents,
        ));
        Gateway {
            schema,
            services,
            limiter,
            persisted,
            parsed: Arc::new(crate::graphql::parsed::ParsedDocuments::new()),
        }
    }

    /// Runs an operation sent over the WebSocket: a subscription becomes a stream of
    /// responses; anything else runs once like over HTTP.
    pub fn execute_stream(
        &self,
        principal: Option<Principal>,
        client: ClientInfo,
        mut request: Request,
    ) -> futures::stream::BoxStream<'static, Response> {
        use futures::StreamExt;
        let this = self.clone();
        // The setup future (the document, the session check) is boxed on its own: inside
        // `once(...).flatten()` it would stay allocated, finished, for the subscription's
        // whole life (~2.6 KB per subscriber, heaptrack at 3,000 subscribers).
        futures::stream::once(Box::pin(async move {
            // A hash-only subscription gets its document (or its refusal) first.
            if let Err(refused) = this.persisted.resolve(&this.services.db, &mut request).await {
                return futures::stream::once(async move { error_response(refused) }).boxed();
            }
            let operation_name = request.operation_name.clone();
            let kind = this
                .parsed
                .parse(&mut request)
                .ok()
                .and_then(|doc| document::operation_type(doc, operation_name.as_deref()));
            if kind != Some(OperationType::Subscription) {
                return futures::stream::once(async move { this.execute(principal, client, request).await })
                    .boxed();
            }
            this.start_subscription(principal, client, request).await
        }))
        .flatten()
        .boxed()
    }

    /// Checks the document and the caller once, then streams. A subscription has no
    /// transaction of its own: the feed reads each change under its tenant's transaction.
    async fn start_subscription(
        &self,
        principal: Option<Principal>,
        client: ClientInfo,
        mut request: Request,
    ) -> futures::stream::BoxStream<'static, Response> {
        use futures::StreamExt;
        let refuse = |err: ApiError| futures::stream::once(async move { error_response(err) }).boxed();
        if document::text_nesting(&request.query) > MAX_TEXT_NESTING {
            return refuse(ApiError::BadUserInput(format!(
                "the document nests deeper than {MAX_TEXT_NESTING} levels"
            )));
        }
        let operation_name = request.operation_name.clone();
        let mut root_fields = Vec::new();
        if let Ok(doc) = request.parsed_query() {
            let aliases = document::alias_count(doc);
            if aliases > self.services.config.graphql.max_aliases {
                return refuse(ApiError::BadUserInput(format!(
                    "the document has {aliases} aliases; at most {} are allowed",
                    self.services.config.graphql.max_aliases
                )));
            }
            root_fields = document::root_field_hits(doc, operation_name.as_deref());
        }
        let Some(claimed) = principal else {
            return refuse(ApiError::unauthenticated());
        };
        if let Err(refused) = self
            .limiter
            .admit(
                &self.services.db,
                Some(&claimed),
                client.ip,
                OperationType::Subscription,
                &root_fields,
            )
            .await
        {
            return refuse(refused);
        }
        if claimed.password_change_only {
            return refuse(ApiError::PasswordExpired);
        }
        // On a task of its own, like every operation (see `execute`): a socket closed
        // meanwhile must not leave this transaction open on a pooled connection.
        let (db, timeout_ms, check) = (
            self.services.db.clone(),
            self.services.config.database.statement_timeout_ms,
            claimed.clone(),
        );
        let current = tokio::spawn(async move {
            let (txn, current) = begin_checked(&db, &check, Access::ReadOnly, timeout_ms).await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>(current)
        })
        .await
        .unwrap_or_else(|e| Err(sea_orm::DbErr::Custom(e.to_string())));
        let principal = match current {
            Ok(Some(principal)) => principal,
            Ok(None) => return refuse(ApiError::Unauthenticated("the session has ended")),
            Err(e) => return refuse(ApiError::internal(e)),
        };
        let context = RequestContext::new(Some(principal), client, None);
        let active = ActiveSubscription::start();
        self.schema
            .execute_stream(request.data(context))
            .map(move |mut response| {
                let _counted = &active;
                ensure_error_codes(&mut response);
                response
            })
            .boxed()
    }

    /// Verifies a bearer token. No token: anonymous (only login and public fields work).
    /// A token that fails verification is an error, never a silent downgrade.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Option<Principal>, ApiError> {
        let Some(token) = bearer else { return Ok(None) };
        let keys = &self.services.keys;
        // A password-change token (issued for an expired password) is accepted too, but
        // its principal can only change the password (see `execute`).
        let (claims, confined) = match keys.verify(token, TokenType::Access) {
            Ok(claims) => (claims, false),
            Err(access_error) => match keys.verify(token, TokenType::PasswordChange) {
                Ok(claims) => (claims, true),
                Err(_) => {
                    tracing::info!(reason = %access_error, "bearer token refused");
                    return Err(ApiError::Unauthenticated("invalid or expired token"));
                }
            },
        };
        let role: Role = claims
            .role
            .parse()
            .map_err(|_| ApiError::Unauthenticated("invalid or expired token"))?;
        let principal = Principal::new(claims.tid, claims.sub, claims.sid, role, &claims.perms);
        Ok(Some(if confined {
            principal.confined_to_password_change()
        } else {
            principal
        }))
    }

    /// Runs one operation as `principal` on a task of its own. A client that disconnects
    /// (or a request's time bound) drops this future, not the operation: its transaction
    /// still ends in COMMIT or ROLLBACK. Cancelled halfway through the protocol (say,
    /// with its BEGIN sent and unanswered), it would leave a transaction open on a pooled
    /// connection, and the next request given that connection would run inside it.
    pub async fn execute(
        &self,
        principal: Option<Principal>,
        client: ClientInfo,
        request: Request,
    ) -> Response {
        let this = self.clone();
        match tokio::spawn(async move { this.execute_logged(principal, client, request).await }).await {
            Ok(response) => response,
            Err(e) => error_response(ApiError::internal(e)),
        }
    }

    /// Runs one operation, and logs and counts it: one line per operation with the
    /// request id, tenant, user, operation name, kind, outcome (`ok` or the first error's
    /// code) and duration. Never the document, variables or tokens.
    async fn execute_logged(
        &self,
        principal: Option<Principal>,
        client: ClientInfo,
        mut request: Request,
    ) -> Response {
        let started = std::time::Instant::now();
        // Idempotent: a document already filled in (a WebSocket operation) passes as is.
        let resolved = self.persisted.resolve(&self.services.db, &mut request).await;
        let (tenant, user) = principal
            .as_ref()
            .map(|p| (Some(p.tenant_id), Some(p.user_id)))
            .unwrap_or_default();
        let request_id = client.request_id.clone();
        let name = request.operation_name.as_deref().map(|n| {
            n.chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect::<String>()
        });
        let kind = match self
            .parsed
            .parse(&mut request)
            .ok()
            .and_then(|doc| document::operation_type(doc, name.as_deref()))
        {
            Some(OperationType::Query) => "query",
            Some(OperationType::Mutation) => "mutation",
            Some(OperationType::Subscription) => "subscription",
            None => "invalid",
        };
        let response = match resolved {
            Ok(()) => self.run_operation(principal, client, request).await,
            Err(refused) => error_response(refused),
        };
        let outcome = response
            .errors
            .first()
            .and_then(|e| e.extensions.as_ref())
            .and_then(|ext| ext.get("code"))
            .map(|code| code.to_string().trim_matches('"').to_string())
            .unwrap_or_else(|| "ok".into());
        let elapsed = started.elapsed();
        crate::telemetry::operation(kind, name.as_deref(), &outcome, elapsed);
        if outcome == "RATE_LIMITED" {
            metrics::counter!("ultracore_rate_limited_total", "kind" => kind).increment(1);
        }
        tracing::info!(
            request_id = request_id.as_deref().unwrap_or("-"),
            tenant = ?tenant,
            user = ?user,
            operation = ?name,
            kind,
            outcome = %outcome,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "graphql operation"
        );
        response
    }

    async fn run_operation(
        &self,
        principal: Option<Principal>,
        client: ClientInfo,
        mut request: Request,
    ) -> Response {
        let config = &self.services.config.graphql;
        if document::text_nesting(&request.query) > MAX_TEXT_NESTING {
            return error_response(ApiError::BadUserInput(format!(
                "the document nests deeper than {MAX_TEXT_NESTING} levels"
            )));
        }
        let operation_name = request.operation_name.clone();
        let confined = principal.as_ref().is_some_and(|p| p.password_change_only);
        let mut root_fields = Vec::new();
        let kind = match request.parsed_query() {
            Ok(doc) => {
                if confined && !document::mutation_limited_to(doc, operation_name.as_deref(), CONFINED_FIELDS)
                {
                    return error_response(ApiError::PasswordExpired);
                }
                let aliases = document::alias_count(doc);
                if aliases > config.max_aliases {
                    return error_response(ApiError::BadUserInput(format!(
                        "the document has {aliases} aliases; at most {} are allowed",
                        config.max_aliases
                    )));
                }
                root_fields = document::root_field_hits(doc, operation_name.as_deref());
                document::operation_type(doc, operation_name.as_deref())
            }
            // A confined caller gets nothing but PASSWORD_EXPIRED, even for bad syntax.
            Err(_) if confined => return error_response(ApiError::PasswordExpired),
            // Let the executor report the syntax error in its usual shape.
            Err(_) => None,
        };

        // Counted before any other work, and committed on its own: a refused or failing
        // operation still uses up its budget.
        if let Some(kind) = kind
            && let Err(refused) = self
                .limiter
                .admit(
                    &self.services.db,
                    principal.as_ref(),
                    client.ip,
                    kind,
                    &root_fields,
                )
                .await
        {
            return error_response(refused);
        }
        if kind == Some(OperationType::Mutation)
            && let Some(claimed) = principal.as_ref()
        {
            let sensitive = crate::risk::sensitive::sensitive_fields(&root_fields);
            if !sensitive.is_empty()
                && let Err(refused) = crate::risk::sensitive::assess(
                    &self.services.db,
                    self.services.config.database.statement_timeout_ms,
                    &crate::risk::RulesModel,
                    claimed,
                    &client,
                    &sensitive,
                )
                .await
            {
                return error_response(refused);
            }
        }

        // The token is only a claim: the session and the user are re-read inside the
        // operation's transaction, so a revoked session, a lock, a deactivation or a role
        // change takes effect on the very next request, on every gateway copy.
        let transaction_started = std::time::Instant::now();
        let (principal, txn) = match (principal, kind) {
            (Some(claimed), Some(kind)) => {
                let access = if kind == OperationType::Mutation {
                    Access::ReadWrite
                } else {
                    Access::ReadOnly
                };
                match begin_checked(
                    &self.services.db,
                    &claimed,
                    access,
                    self.services.config.database.statement_timeout_ms,
                )
                .await
                {
                    Ok((txn, Some(principal))) => (Some(principal), Some(Arc::new(txn))),
                    Ok((_txn, None)) => {
                        return error_response(ApiError::Unauthenticated("the session has ended"));
                    }
                    Err(e) => return error_response(ApiError::internal(e)),
                }
            }
            (principal, _) => (principal, None),
        };

        let context = RequestContext::new(principal, client, txn.clone());
        let loaders = super::loaders::Loaders::new(txn.clone());
        let mut response = self.schema.execute(request.data(context).data(loaders)).await;
        ensure_error_codes(&mut response);
        match txn {
            Some(txn) => {
                let response = finish(txn, response, kind == Some(OperationType::Mutation)).await;
                metrics::histogram!("ultracore_db_transaction_duration_seconds")
                    .record(transaction_started.elapsed().as_secs_f64());
                response
            }
            None => response,
        }
    }
}

/// Counts a running subscription in `ultracore_subscriptions_active` until its stream
/// is dropped (the client stopped it, the socket closed, or the session ended).
struct ActiveSubscription;

impl ActiveSubscription {
    fn start() -> ActiveSubscription {
        metrics::gauge!("ultracore_subscriptions_active").increment(1.0);
        ActiveSubscription
    }
}

impl Drop for ActiveSubscription {
    fn drop(&mut self) {
        metrics::gauge!("ultracore_subscriptions_active").decrement(1.0);
    }
}

/// What a caller whose password expired may run: a mutation of these root fields only.
const CONFINED_FIELDS: &[&str] = &["changePassword", "__typename"];

/// The session check, folded into the statement that opens the operation's transaction
/// (db::tenant): the user's role first, then their permissions, or NULL when the session
/// is revoked or expired, or the user is deactivated or locked.
const SESSION_CHECK: &str = "(select array_prepend(u.role::text, u.permissions) from users u \
      where u.user_id = $5 and u.is_active and not u.is_locked \
        and (u.locked_until is null or u.locked_until <= now()) \
        and exists (select 1 from refresh_tokens r \
                     where r.family_id = $6 and r.user_id = u.user_id \
                       and r.revoked_at is null and r.expires_at > now()))";

/// Opens the operation's tenant transaction and reads the caller as the database knows
/// them now, in one statement after `BEGIN`: None when the session is revoked or
/// expired, or the user is deactivated or locked. Role and permissions come from the
/// user's row, not from the token, so a demotion applies at once.
async fn begin_checked(
    db: &DatabaseConnection,
    claimed: &Principal,
    access: Access,
    statement_timeout_ms: u64,
) -> Result<(DatabaseTransaction, Option<Principal>), sea_orm::DbErr> {
    let (txn, row) = begin_tenant_transaction_checked(
        db,
        TenantScope::user(claimed.tenant_id, claimed.user_id),
        access,
        statement_timeout_ms,
        FoldedQuery {
            sql: SESSION_CHECK,
            values: vec![claimed.user_id.into(), claimed.session_id.into()],
        },
    )
    .await?;
    let checked: Option<Vec<String>> = row.try_get("", "checked")?;
    let Some((role, permissions)) = checked.as_deref().and_then(<[String]>::split_first) else {
        return Ok((txn, None));
    };
    let Ok(role) = role.parse::<Role>() else {
        return Ok((txn, None));
    };
    let current = Principal::new(
        claimed.tenant_id,
        claimed.user_id,
        claimed.session_id,
        role,
        permissions,
    );
    Ok((
        txn,
        Some(if claimed.password_change_only {
            current.confined_to_password_change()
        } else {
            current
        }),
    ))
}

/// COMMIT when the operation returned no error, ROLLBACK otherwise. A rolled-back
/// mutation's partial data is withdrawn: nothing it reported was kept. A query keeps its
/// partial data (a forbidden field does not hide the others).
async fn finish(txn: Arc<DatabaseTransaction>, mut response: Response, mutation: bool) -> Response {
    let Some(txn) = take_back(txn).await else {
        // Something kept a handle past execution: dropping the last one rolls back.
        response.data = async_graphql::Value::Null;
        response.errors.push(to_server_error(ApiError::internal(
            "transaction still shared after execution",
        )));
        return response;
    };
    if response.errors.is_empty() {
        if let Err(e) = txn.commit().await {
            return error_response(ApiError::internal(e));
        }
    } else {
        let _ = txn.rollback().await;
        if mutation {
            response.data = async_graphql::Value::Null;
        }
    }
    response
}

/// The transaction, once every resolver and DataLoader task has let go of it. A loader
/// task can still be finishing for a moment after handing over its result.
async fn take_back(mut txn: Arc<DatabaseTransaction>) -> Option<DatabaseTransaction> {
    for _ in 0..200 {
        match Arc::try_unwrap(txn) {
            Ok(txn) => return Some(txn),
            Err(shared) => txn = shared,
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    None
}

/// Every error a client sees has a code. async-graphql's own parse, validation and
/// input-coercion errors carry none and concern the client's input: BAD_USER_INPUT. An
/// uncoded error raised while resolving a field (it has a path) slipped past ApiError:
/// its text may hold internals, so it is logged and replaced by INTERNAL.
fn ensure_error_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error.extensions.as_ref().is_some_and(|e| e.get("code").is_some());
        if has_code {
            continue;
        }
        let input_error = [
            "Failed to parse",
            "Expected input type",
            "Invalid value for argument",
            "Variable ",
        ]
        .iter()
        .any(|prefix| error.message.starts_with(prefix));
        if error.path.is_empty() || input_error {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", "BAD_USER_INPUT");
        } else {
            let replacement = to_server_error(ApiError::internal(std::mem::take(&mut error.message)));
            error.message = replacement.message;
            error.extensions = replacement.extensions;
        }
    }
}

fn to_server_error(err: ApiError) -> ServerError {
    let error: async_graphql::Error = err.into();
    let mut server_error = error.into_server_error(async_graphql::Pos::default());
    // Not raised at any place in the document.
    server_error.locations.clear();
    server_error
}

/// A response carrying only an error.
pub fn error_response(err: ApiError) -> Response {
    Response::from_errors(vec![to_server_error(err)])
}
