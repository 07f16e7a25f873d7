//! `ultracore demo`: two demo tenants with users of every role and a month of realistic
//! history, and `ultracore demo attack`, which replays a credential-stuffing run against
//! a running gateway so the live feed and the console have something to show.
//!
//! The demo is for a laptop or a staging database: its passwords are printed once, and
//! it refuses to touch a tenant that already exists.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use rand::Rng as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::auth::roles::Role;
use crate::config::Config;
use crate::db::{self, Access, TenantScope};
use crate::domain::users::{self, NewUser};
use crate::domain::{Actor, tenants};

#[derive(Debug, Subcommand)]
pub enum DemoAction {
    /// Create the demo tenants (`demo-bank`, `demo-fintech`), their users (passwords
    /// printed once) and 30 days of events, threats, incidents and intelligence.
    Seed,
    /// Replay a credential-stuffing run from this machine against a running gateway:
    /// wrong passwords for many accounts of one tenant, then a brute force on one. Watch
    /// /console or a `threatDetected` subscription while it runs.
    Attack {
        /// The gateway's base URL (plain HTTP; a loopback or staging gateway).
        #[arg(long, default_value = "http://127.0.0.1:8000")]
        url: String,
        /// The tenant to attack.
        #[arg(long, default_value = "demo-bank")]
        tenant: String,
        /// Accounts to try (real demo users first, then made-up names).
        #[arg(long, default_value_t = 12)]
        accounts: usize,
        /// Pause between attempts.
        #[arg(long, default_value_t = 250)]
        delay_ms: u64,
    },
}

/// The demo tenants: slug and display name.
const TENANTS: [(&str, &str); 2] = [("demo-bank", "Demo Bank"), ("demo-fintech", "Demo Fintech")];

/// Users of every role (the customers are who the attack goes after).
const USERS: [(&str, Role, &str, &str); 10] = [
    ("root", Role::SuperAdmin, "Rita", "Root"),
    ("alice.admin", Role::Admin, "Alice", "Admin"),
    ("mark.manager", Role::Manager, "Mark", "Manager"),
    ("olivia.analyst", Role::Officer, "Olivia", "Analyst"),
    ("carol", Role::Customer, "Carol", "Customer"),
    ("dave", Role::Customer, "Dave", "Customer"),
    ("erin", Role::Customer, "Erin", "Customer"),
    ("frank", Role::Customer, "Frank", "Customer"),
    ("grace", Role::Customer, "Grace", "Customer"),
    ("heidi", Role::Customer, "Heidi", "Customer"),
];

pub async fn run(
    owner: &DatabaseConnection,
    config: &Config,
    action: DemoAction,
) -> anyhow::Result<ExitCode> {
    match action {
        DemoAction::Seed => seed(owner, config).await,
        DemoAction::Attack { .. } => unreachable!("`demo attack` needs no database connection"),
    }
}

async fn seed(owner: &DatabaseConnection, config: &Config) -> anyhow::Result<ExitCode> {
    for (slug, _) in TENANTS {
        if tenants::tenant_id_by_slug(owner, slug).await.is_ok() {
            bail!("tenant {slug} already exists: the demo only seeds a database without it");
        }
    }
    println!("Demo users (the passwords are shown only now):\n");
    println!("{:<14} {:<16} {:<12} password", "tenant", "username", "role");
    for (slug, name) in TENANTS {
        let tenant_id = tenants::create_tenant(owner, slug, name).await?;
        let txn = db::begin_tenant_transaction(
            owner,
            TenantScope::tenant(tenant_id),
            Access::ReadWrite,
            config.database.statement_timeout_ms.max(60_000),
        )
        .await?;
        let mut ids = Vec::new();
        for (username, role, first, last) in USERS {
            let password = demo_password();
            let user = users::create_user(
                &txn,
                &Actor::cli(tenant_id),
                NewUser {
                    username: username.to_string(),
                    email: format!("{username}@{slug}.example"),
                    role,
                    password: password.clone(),
                    first_name: Some(first.to_string()),
                    last_name: Some(last.to_string()),
                    phone_number: None,
                    permissions: Vec::new(),
                },
            )
            .await
            .with_context(|| format!("create {username} in {slug}"))?;
            println!("{slug:<14} {username:<16} {:<12} {password}", role.as_str());
            ids.push(user.user_id);
        }
        history(&txn, tenant_id, &ids)
            .await
            .with_context(|| format!("history of {slug}"))?;
        txn.commit().await?;
    }
    println!(
        "\nOpen http://<gateway>/console and sign in as olivia.analyst, then run\n  \
         ultracore demo attack --url http://<gateway>\nto watch a credential-stuffing run arrive."
    );
    Ok(ExitCode::SUCCESS)
}

/// 20 random characters from an unambiguous alphabet (about 115 bits).
fn demo_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A month of history, written set-based in the tenant's transaction: sign-ins from each
/// user's usual network at their usual hours, some failures, a few threats and incidents
/// (one still being investigated), and tenant-local intelligence.
async fn history<C: ConnectionTrait>(txn: &C, tenant_id: Uuid, users: &[Uuid]) -> Result<(), sea_orm::DbErr> {
    let statements = [
        // Successful sign-ins: 40 per user over 30 days, from the user's own /24, around
        // a usual hour.
        "insert into security_events (tenant_id, user_id, event_type, event_category, severity, ip_address, \
                                      user_agent, description, action_taken, risk_score, \"timestamp\") \
         select $1, u, 'login_success', 'authentication', 'low', \
                ('10.' || (n % 200) || '.' || (n * 7 % 250) || '.' || (10 + i % 40))::inet, \
                'Mozilla/5.0 (demo browser)', 'signed in with password', 'allow', (random() * 15)::numeric(5,2), \
                date_trunc('day', now()) - make_interval(days => i % 30) \
                  + make_interval(hours => (8 + n % 9)::int, mins => (random() * 59)::int) \
           from unnest($2::uuid[]) with ordinality as t(u, n), generate_series(1, 40) as i",
        // Typos: a failure now and then.
        "insert into security_events (tenant_id, user_id, event_type, event_category, severity, ip_address, \
                                      description, action_taken, risk_score, \"timestamp\") \
         select $1, u, 'login_failure', 'authentication', 'low', ('10.' || (n % 200) || '.0.7')::inet, \
                'wrong password', 'deny', (10 + random() * 20)::numeric(5,2), \
                now() - make_interval(days => i * 3, hours => n::int) \
           from unnest($2::uuid[]) with ordinality as t(u, n), generate_series(1, 5) as i",
        // Past threats, mostly handled.
        "insert into threat_events (tenant_id, threat_type, severity, status, description, indicators, \
                                    affected_user_ids, detection_method, confidence, response_action, \
                                    response_status, detected_at, resolved_at) \
         values \
           ($1, 'brute_force', 'high', 'resolved', 'five failed sign-ins locked the account', \
            array['ip:198.51.100.23'], array[($2::uuid[])[5]], 'rule_based', 90, 'lock_account', 'executed', \
            now() - interval '21 days', now() - interval '20 days'), \
           ($1, 'phishing', 'medium', 'mitigated', 'look-alike domain reported by a customer', \
            array['domain:secure-login-demo.example'], '{}', 'manual', 70, 'alert', 'executed', \
            now() - interval '9 days', null), \
           ($1, 'threat_intel_match', 'high', 'investigating', 'sign-in from an address on a botnet list', \
            array['ip:203.0.113.66'], array[($2::uuid[])[6]], 'rule_based', 80, 'demand_mfa', 'executed', \
            now() - interval '2 days', null)",
        "insert into security_incidents (tenant_id, incident_type, severity, status, priority, title, description, \
                                         assigned_to, related_threat_ids, created_at, resolved_at, closed_at) \
         select $1, 'brute_force', 'high', 'closed', 'high', 'Brute force on a customer account', \
                'Account locked by the detector; customer confirmed and reset the password.', \
                ($2::uuid[])[4], array_agg(threat_id), now() - interval '21 days', now() - interval '19 days', \
                now() - interval '18 days' \
           from threat_events where tenant_id = $1 and threat_type = 'brute_force'",
        "insert into security_incidents (tenant_id, incident_type, severity, status, priority, title, description, \
                                         assigned_to, related_threat_ids, created_at) \
         select $1, 'threat_intel_match', 'high', 'investigating', 'high', 'Sign-in from a known botnet address', \
                'Second factor was demanded and given; checking with the customer.', \
                ($2::uuid[])[4], array_agg(threat_id), now() - interval '2 days' \
           from threat_events where tenant_id = $1 and threat_type = 'threat_intel_match'",
        "insert into threat_intelligence (tenant_id, indicator_type, indicator_value, threat_type, severity, \
                                          confidence, source, description) \
         values ($1, 'ip', '203.0.113.66', 'botnet', 'high', 85, 'demo-feed', 'botnet node'), \
                ($1, 'ip', '198.51.100.0/24', 'credential_stuffing', 'medium', 70, 'demo-feed', 'stuffing network'), \
                ($1, 'domain', 'secure-login-demo.example', 'phishing', 'high', 90, 'demo-feed', 'look-alike domain'), \
                ($1, 'email', 'mule@fraud-demo.example', 'fraud', 'medium', 60, 'demo-feed', 'money mule')",
    ];
    for sql in statements {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            sql,
            [tenant_id.into(), users.to_vec().into()],
        ))
        .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// demo attack
// ---------------------------------------------------------------------------------------

/// Replays the attack; needs only the gateway's URL.
pub fn attack(url: &str, tenant: &str, accounts: usize, delay: Duration) -> anyhow::Result<ExitCode> {
    let target = Target::parse(url)?;
    let mut names: Vec<String> = USERS
        .iter()
        .filter(|(_, role, _, _)| *role == Role::Customer)
        .map(|(name, _, _, _)| name.to_string())
        .collect();
    let mut ghost = 0;
    while names.len() < accounts {
        ghost += 1;
        names.push(format!("customer{ghost:03}"));
    }
    names.truncate(accounts.max(1));
    println!(
        "credential stuffing against {tenant} at {url}: {} accounts",
        names.len()
    );
    let mut tally = std::collections::BTreeMap::<String, usize>::new();
    // Five wrong passwords on the first account (brute force: it locks), then one on
    // each of the others (stuffing: from the tenth account on, the address is blocked and
    // the rest are refused before any password is checked).
    let attempts = std::iter::repeat_n(names[0].clone(), 4).chain(names.iter().cloned());
    for (i, username) in attempts.enumerate() {
        let reply = target.login(tenant, &username, &format!("Summer2026!{i}"))?;
        let outcome = reply["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or(if reply["data"]["login"].is_object() {
                "SIGNED_IN"
            } else {
                "?"
            })
            .to_string();
        println!("  {username:<14} {outcome}");
        *tally.entry(outcome).or_default() += 1;
        std::thread::sleep(delay);
    }
    println!("done: {tally:?}");
    println!(
        "expect threats brute_force (account locked) and password_spraying or credential_stuffing \
         (address blocked), and incidents"
    );
    Ok(ExitCode::SUCCESS)
}

/// A plain-HTTP gateway address.
struct Target {
    addr: SocketAddr,
    host: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must be http://host[:port] (the demo attack speaks plain HTTP to a test gateway)");
        };
        let host = rest.trim_end_matches('/').to_string();
        if host.contains('/') {
            bail!("--url takes no path: http://host[:port]");
        }
        let with_port = if host.contains(':') {
            host.clone()
        } else {
            format!("{host}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {host}"))?
            .next()
            .with_context(|| format!("no address for {host}"))?;
        Ok(Target { addr, host })
    }

    /// One `login` over HTTP/1.1 (`Connection: close`); the parsed JSON reply.
    fn login(&self, tenant: &str, username: &str, password: &str) -> anyhow::Result<Value> {
        let body = json!({
            "query": "mutation($input: LoginInput!) { login(input: $input) { accessToken } }",
            "variables": { "input": { "tenant": tenant, "username": username, "password": password } },
        })
        .to_string();
        let mut stream = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .with_context(|| format!("cannot reach the gateway at {}", self.addr))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        write!(
            stream,
            "POST /graphql HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             User-Agent: ultracore-demo-attack\r\nConnection: close\r\n\r\n{body}",
            self.host,
            body.len()
        )?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let json_start = response.find("\r\n\r\n").map(|i| i + 4).unwrap_or(0);
        serde_json::from_str(response[json_start..].trim()).with_context(|| {
            format!(
                "the gateway did not answer JSON: {}",
                response.lines().next().unwrap_or("")
            )
        })
    }
}
