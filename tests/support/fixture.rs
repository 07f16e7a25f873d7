//! Two tenants with data in every table, for black-box tests: "acme" (tenant A) and
//! "globex" (tenant B). Each has one user per role plus a second customer, under the same
//! usernames on purpose (a test that finds "admin" must prove which tenant's it is), and
//! rows in every table. Some of A's rows point at B's ids (a threat listing B's user, an
//! incident linking B's threat and event) so tests can prove relations never cross.
//!
//! Users are created through the domain function the CLI uses; the other rows are
//! written as the owner (a superuser, so RLS does not stop it) inside a transaction that
//! sets `app.tenant_id` anyway, so the audit trigger sees its tenant.

#![allow(dead_code)]

use std::collections::HashMap;

use api::auth::roles::Role;
use api::db::{Access, TenantScope, begin_tenant_transaction};
use api::domain::Actor;
use api::domain::users::{NewUser, create_user};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value as DbValue};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::TestDb;
use super::gateway::TestGateway;

/// The password of every fixture user.
pub const PASSWORD: &str = "correct horse battery staple 42";

/// Usernames of the fixture users (the same in both tenants) and their roles.
pub const USERS: [(&str, Role); 6] = [
    ("super_admin", Role::SuperAdmin),
    ("admin", Role::Admin),
    ("manager", Role::Manager),
    ("officer", Role::Officer),
    ("customer", Role::Customer),
    ("customer2", Role::Customer),
];

/// Slug of tenant A.
pub const A: &str = "acme";
/// Slug of tenant B.
pub const B: &str = "globex";

/// The ids of everything seeded in one tenant.
#[derive(Debug, Clone)]
pub struct TenantData {
    pub slug: &'static str,
    pub tenant_id: Uuid,
    /// By username.
    pub users: HashMap<&'static str, Uuid>,
    /// security_events, oldest first.
    pub events: Vec<Uuid>,
    /// threat_events; `threats[0]` lists the other tenant's customer among the affected
    /// users when seeded in A.
    pub threats: Vec<Uuid>,
    /// security_incidents; A's `incidents[0]` links B's threat and event too.
    pub incidents: Vec<Uuid>,
    /// The tenant's own threat_intelligence rows.
    pub intel: Vec<Uuid>,
    pub rate_limits: Vec<Uuid>,
    pub devices: Vec<Uuid>,
    /// refresh_tokens.
    pub sessions: Vec<Uuid>,
    pub backup_codes: Vec<Uuid>,
    /// account_tokens (a pending password reset of the customer).
    pub account_tokens: Vec<Uuid>,
    /// notification_outbox (the customer's reset message).
    pub notifications: Vec<Uuid>,
    /// Every audit_log row of the tenant (tenant and user creation included).
    pub audit: Vec<Uuid>,
}

impl TenantData {
    /// The id of the user named `username` in this tenant.
    pub fn user(&self, username: &str) -> Uuid {
        *self
            .users
            .get(username)
            .unwrap_or_else(|| panic!("no fixture user {username:?} in {}", self.slug))
    }
}

/// Both tenants' data.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub a: TenantData,
    pub b: TenantData,
    /// The global indicator (tenant_id NULL) every tenant reads.
    pub global_intel: Uuid,
}

/// Runs one statement with bind values on `conn`, panicking with the SQL on failure.
pub async fn run<C: ConnectionTrait>(conn: &C, sql: &str, values: Vec<DbValue>) {
    conn.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// A unique, arbitrary token hash (hex SHA-256 of a random value).
fn random_hash() -> String {
    hex::encode(Sha256::digest(Uuid::new_v4().as_bytes()))
}

impl Fixture {
    /// Seeds both tenants into `db`.
    pub async fn seed(db: &TestDb) -> Fixture {
        let owner = db.owner().await;
        let mut a = create_tenant_with_users(&owner, A, "Acme Bank").await;
        let mut b = create_tenant_with_users(&owner, B, "Globex Finance").await;
        let other_customer_of_a = b.user("customer");
        let other_customer_of_b = a.user("customer");
        seed_rows(&owner, &mut a, other_customer_of_a).await;
        seed_rows(&owner, &mut b, other_customer_of_b).await;
        // Incidents last: A's first incident links B's threat and event as well.
        let foreign = (b.threats[0], b.events[0]);
        seed_incidents(&owner, &mut a, Some(foreign)).await;
        seed_incidents(&owner, &mut b, None).await;
        let global_intel = Uuid::now_v7();
        let txn = tenant_txn(&owner, a.tenant_id).await;
        run(
            &txn,
            "insert into threat_intelligence (intel_id, tenant_id, indicator_type, indicator_value, \
                                              threat_type, severity, confidence, source, description) \
             values ($1, null, 'ip', '192.0.2.1', 'botnet', 'high', 90, 'platform-feed', 'global indicator')",
            vec![global_intel.into()],
        )
        .await;
        txn.commit().await.expect("commit global intel");
        for t in [&mut a, &mut b] {
            t.audit = ids(
                &owner,
                "select audit_id as id from audit_log where tenant_id = $1 order by chain_seq",
                t.tenant_id,
            )
            .await;
        }
        owner.close().await.expect("close owner");
        Fixture { a, b, global_intel }
    }

    /// The data of the tenant with `slug`.
    pub fn tenant(&self, slug: &str) -> &TenantData {
        match slug {
            A => &self.a,
            B => &self.b,
            other => panic!("no fixture tenant {other:?}"),
        }
    }

    /// Signs `username` of tenant `slug` in through the `login` mutation; returns the
    /// access token.
    pub async fn login(&self, gateway: &TestGateway, slug: &str, username: &str) -> String {
        login(gateway, slug, username, PASSWORD).await
    }
}

/// The document [`login`] sends.
pub const LOGIN_DOCUMENT: &str = "mutation($input: LoginInput!) { login(input: $input) { accessToken } }";

/// Signs in through the `login` mutation and returns the access token (panics on failure).
pub async fn login(gateway: &TestGateway, slug: &str, username: &str, password: &str) -> String {
    let (status, body) = gateway
        .gql(
            None,
            LOGIN_DOCUMENT,
            json!({ "input": { "tenant": slug, "username": username, "password": password } }),
        )
        .await;
    assert_eq!(status, 200, "login {slug}/{username}: {body:#}");
    body.pointer("/data/login/accessToken")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_else(|| panic!("login {slug}/{username} gave no access token: {body:#}"))
        .to_string()
}

/// Opens a read-write transaction on the owner connection scoped to `tenant_id`.
pub async fn tenant_txn(owner: &DatabaseConnection, tenant_id: Uuid) -> sea_orm::DatabaseTransaction {
    begin_tenant_transaction(owner, TenantScope::tenant(tenant_id), Access::ReadWrite, 30_000)
        .await
        .expect("begin a tenant transaction as owner")
}

async fn ids(owner: &DatabaseConnection, sql: &str, tenant_id: Uuid) -> Vec<Uuid> {
    owner
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [tenant_id.into()],
        ))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.try_get::<Uuid>("", "id").expect("uuid column id"))
        .collect()
}

async fn create_tenant_with_users(owner: &DatabaseConnection, slug: &'static str, name: &str) -> TenantData {
    let tenant_id = api::domain::tenants::create_tenant(owner, slug, name)
        .await
        .unwrap_or_else(|e| panic!("create tenant {slug}: {e}"));
    let txn = tenant_txn(owner, tenant_id).await;
    let actor = Actor::cli(tenant_id);
    let mut users = HashMap::new();
    for (username, role) in USERS {
        let user = create_user(
            &txn,
            &actor,
            NewUser {
                username: username.to_string(),
                email: format!("{username}@{slug}.example"),
                role,
                password: PASSWORD.to_string(),
                first_name: Some(format!("{name} {username}")),
                last_name: Some("Fixture".into()),
                phone_number: None,
                permissions: vec![],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create user {slug}/{username}: {e}"));
        users.insert(username, user.user_id);
    }
    txn.commit().await.expect("commit users");
    TenantData {
        slug,
        tenant_id,
        users,
        events: vec![],
        threats: vec![],
        incidents: vec![],
        intel: vec![],
        rate_limits: vec![],
        devices: vec![],
        sessions: vec![],
        backup_codes: vec![],
        account_tokens: vec![],
        notifications: vec![],
        audit: vec![],
    }
}

/// One fixture security event.
struct EventSeed {
    user: Option<&'static str>,
    event_type: &'static str,
    category: &'static str,
    severity: &'static str,
    ip: &'static str,
    minutes_ago: i32,
    risk: Option<&'static str>,
    fraud: Option<&'static str>,
    action: &'static str,
}

impl EventSeed {
    fn new(
        user: Option<&'static str>,
        event_type: &'static str,
        category: &'static str,
        severity: &'static str,
        ip: &'static str,
    ) -> EventSeed {
        EventSeed {
            user,
            event_type,
            category,
            severity,
            ip,
            minutes_ago: 0,
            risk: None,
            fraud: None,
            action: "allow",
        }
    }

    /// Happened `minutes` ago.
    fn at(self, minutes: i32) -> EventSeed {
        EventSeed {
            minutes_ago: minutes,
            ..self
        }
    }

    /// Risk (0-100) and fraud (0-1) scores, and what the gateway did.
    fn scores(self, risk: &'static str, fraud: &'static str, action: &'static str) -> EventSeed {
        EventSeed {
            risk: Some(risk),
            fraud: Some(fraud),
            action,
            ..self
        }
    }
}

/// Rows of every table but incidents. `foreign_customer` is the other tenant's customer,
/// listed among the affected users of this tenant's first threat.
async fn seed_rows(owner: &DatabaseConnection, t: &mut TenantData, foreign_customer: Uuid) {
    let txn = tenant_txn(owner, t.tenant_id).await;
    let tid = t.tenant_id;
    let slug = t.slug;

    // Security events: several users, types, severities, addresses and times.
    let events = [
        EventSeed::new(
            Some("customer"),
            "login_failure",
            "authentication",
            "medium",
            "203.0.113.10",
        )
        .at(300)
        .scores("35.5", "0.10", "deny"),
        EventSeed::new(
            Some("customer"),
            "login_success",
            "authentication",
            "low",
            "203.0.113.10",
        )
        .at(240)
        .scores("5", "0.01", "allow"),
        EventSeed::new(
            Some("customer2"),
            "password_spray",
            "threat",
            "high",
            "198.51.100.20",
        )
        .at(180)
        .scores("80", "0.70", "block"),
        EventSeed::new(Some("admin"), "role_change", "account", "low", "10.1.2.3").at(120),
        EventSeed::new(
            Some("officer"),
            "session_hijack",
            "session",
            "critical",
            "2001:db8::1",
        )
        .at(60)
        .scores("95", "0.95", "lock"),
        EventSeed::new(None, "rate_limited", "rate_limit", "medium", "192.0.2.55")
            .at(30)
            .scores("50", "0.50", "challenge"),
    ];
    for EventSeed {
        user,
        event_type,
        category,
        severity,
        ip,
        minutes_ago,
        risk,
        fraud,
        action,
    } in events
    {
        let id = Uuid::now_v7();
        run(
            &txn,
            "insert into security_events (event_id, tenant_id, user_id, event_type, event_category, severity, \
                                          ip_address, device_fingerprint, user_agent, geolocation, description, \
                                          metadata, risk_score, fraud_score, anomaly_score, action_taken, \"timestamp\") \
             values ($1, $2, $3, $4, $5, $6, $7::inet, $8, 'fixture-agent/1.0', \
                     '{\"city\": \"Springfield\", \"country\": \"US\"}', $9, $10, \
                     $11::numeric, $12::numeric, 0.25, $13, now() - make_interval(mins => $14))",
            vec![
                id.into(),
                tid.into(),
                user.map(|u| t.user(u)).into(),
                event_type.into(),
                category.into(),
                severity.into(),
                ip.into(),
                format!("{slug}-fp-{event_type}").into(),
                format!("{slug} event {event_type}").into(),
                json!({ "tenant": slug, "seq": t.events.len() }).into(),
                risk.map(str::to_string).into(),
                fraud.map(str::to_string).into(),
                action.into(),
                minutes_ago.into(),
            ],
        )
        .await;
        t.events.push(id);
    }

    // Threats: the first lists the other tenant's customer too (no foreign key holds
    // arrays: only the API can keep the relation inside the tenant).
    let threats: [(&str, &str, &str, Vec<Uuid>); 2] = [
        (
            "brute_force",
            "high",
            "detected",
            vec![t.user("customer"), foreign_customer],
        ),
        (
            "account_takeover",
            "critical",
            "investigating",
            vec![t.user("customer2")],
        ),
    ];
    for (threat_type, severity, status, affected) in threats {
        let id = Uuid::now_v7();
        run(
            &txn,
            "insert into threat_events (threat_id, tenant_id, threat_type, severity, status, description, \
                                        indicators, affected_user_ids, detection_method, confidence, \
                                        response_action, response_status, detected_at) \
             values ($1, $2, $3, $4, $5, $6, array['203.0.113.10'], $7, 'rule_based', 87.5, \
                     'lock_account', 'pending', now() - interval '90 minutes')",
            vec![
                id.into(),
                tid.into(),
                threat_type.into(),
                severity.into(),
                status.into(),
                format!("{slug} threat {threat_type}").into(),
                affected.into(),
            ],
        )
        .await;
        t.threats.push(id);
    }

    // The tenant's own indicator.
    let intel = Uuid::now_v7();
    run(
        &txn,
        "insert into threat_intelligence (intel_id, tenant_id, indicator_type, indicator_value, threat_type, \
                                          severity, confidence, source, description, expires_at) \
         values ($1, $2, 'ip', '203.0.113.66', 'scanner', 'medium', 60, 'internal', $3, now() + interval '30 days')",
        vec![intel.into(), tid.into(), format!("{slug} indicator").into()],
    )
    .await;
    t.intel.push(intel);

    // A rate-limit window of the customer.
    let entry = Uuid::now_v7();
    run(
        &txn,
        "insert into rate_limit_entries (entry_id, tenant_id, user_id, ip_address, endpoint, request_count, \
                                         window_start, window_end, base_limit, adaptive_limit, trust_multiplier) \
         values ($1, $2, $3, '203.0.113.10'::inet, '/graphql', 42, now() - interval '1 minute', \
                 now() + interval '59 minutes', 100, 80, 0.80)",
        vec![entry.into(), tid.into(), t.user("customer").into()],
    )
    .await;
    t.rate_limits.push(entry);

    // Devices, sessions and backup codes of the customer and the admin.
    for (username, device_type) in [("customer", "mobile"), ("admin", "desktop")] {
        let device = Uuid::now_v7();
        run(
            &txn,
            "insert into trusted_devices (device_id, tenant_id, user_id, device_fingerprint, device_name, \
                                          device_type, trust_score, is_trusted, last_ip_address) \
             values ($1, $2, $3, $4, $5, $6, 75, true, '203.0.113.10'::inet)",
            vec![
                device.into(),
                tid.into(),
                t.user(username).into(),
                format!("{slug}-{username}-device").into(),
                format!("{slug} {username} {device_type}").into(),
                device_type.into(),
            ],
        )
        .await;
        t.devices.push(device);

        let session = Uuid::now_v7();
        run(
            &txn,
            "insert into refresh_tokens (token_id, tenant_id, user_id, token_hash, expires_at, \
                                         device_fingerprint, ip_address, user_agent) \
             values ($1, $2, $3, $4, now() + interval '30 days', $5, '203.0.113.10'::inet, 'fixture-agent/1.0')",
            vec![
                session.into(),
                tid.into(),
                t.user(username).into(),
                random_hash().into(),
                format!("{slug}-{username}-device").into(),
            ],
        )
        .await;
        t.sessions.push(session);
    }
    for used in [false, true] {
        let code = Uuid::now_v7();
        run(
            &txn,
            "insert into mfa_backup_codes (code_id, tenant_id, user_id, code_hash, used_at) \
             values ($1, $2, $3, $4, case when $5 then now() else null end)",
            vec![
                code.into(),
                tid.into(),
                t.user("customer").into(),
                random_hash().into(),
                used.into(),
            ],
        )
        .await;
        t.backup_codes.push(code);
    }

    // A pending password reset of the customer, and the message that carries it.
    let account_token = Uuid::now_v7();
    run(
        &txn,
        "insert into account_tokens (token_id, tenant_id, user_id, purpose, token_hash, expires_at) \
         values ($1, $2, $3, 'password_reset', $4, now() + interval '1 hour')",
        vec![
            account_token.into(),
            tid.into(),
            t.user("customer").into(),
            random_hash().into(),
        ],
    )
    .await;
    t.account_tokens.push(account_token);
    let notification = Uuid::now_v7();
    run(
        &txn,
        "insert into notification_outbox (notification_id, tenant_id, user_id, recipient, subject, body) \
         values ($1, $2, $3, $4, 'Reset your password', $5)",
        vec![
            notification.into(),
            tid.into(),
            t.user("customer").into(),
            format!("customer@{slug}.example").into(),
            // Sealed like notify::enqueue seals bodies (the sender and key rotation
            // expect it).
            api::auth::crypto::KeyRing::new(super::gateway::TEST_DATA_KEY, &[])
                .expect("test data key")
                .encrypt(format!("{slug} reset link").as_bytes(), notification.as_bytes())
                .into(),
        ],
    )
    .await;
    t.notifications.push(notification);

    // An audit entry made by the admin (creation entries exist already).
    api::audit::record(
        &txn,
        tid,
        api::audit::AuditEntry {
            user_id: Some(t.user("admin")),
            action: "user.update".into(),
            entity_type: "user".into(),
            entity_id: Some(t.user("customer")),
            old_values: Some(json!({ "first_name": "old" })),
            new_values: Some(json!({ "first_name": "new" })),
            ip_address: Some("203.0.113.10".into()),
            user_agent: Some("fixture-agent/1.0".into()),
        },
    )
    .await
    .expect("audit entry");
    txn.commit().await.expect("commit tenant rows");
}

/// One incident assigned to the tenant's officer, linking the tenant's first threat and
/// event, plus `foreign` (another tenant's threat and event) when given.
async fn seed_incidents(owner: &DatabaseConnection, t: &mut TenantData, foreign: Option<(Uuid, Uuid)>) {
    let txn = tenant_txn(owner, t.tenant_id).await;
    let mut threats = vec![t.threats[0]];
    let mut events = vec![t.events[0]];
    if let Some((threat, event)) = foreign {
        threats.push(threat);
        events.push(event);
    }
    let id = Uuid::now_v7();
    run(
        &txn,
        "insert into security_incidents (incident_id, tenant_id, incident_type, severity, status, priority, \
                                         title, description, assigned_to, related_threat_ids, related_event_ids) \
         values ($1, $2, 'credential_stuffing', 'high', 'investigating', 'high', $3, $4, $5, $6, $7)",
        vec![
            id.into(),
            t.tenant_id.into(),
            format!("{} incident", t.slug).into(),
            format!("{} incident description", t.slug).into(),
            t.user("officer").into(),
            threats.into(),
            events.into(),
        ],
    )
    .await;
    t.incidents.push(id);
    txn.commit().await.expect("commit incidents");
}
