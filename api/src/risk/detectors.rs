//! Detectors: patterns that become threat events, each with its response carried out and
//! recorded (`response_action`, `response_status` pending → executed or failed), and an
//! incident opened or joined for high and critical ones. They run in the transaction
//! that records the attempt (for failures, the bookkeeping transaction that commits
//! although the sign-in failed), so no detection is lost with a failed request.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use super::signals::{FAILURE_WINDOW_MINUTES, Signals};
use super::trust;

/// Accounts failing from one address in the window that make stuffing or spraying
/// (high enough that a few colleagues behind one office NAT mistyping do not).
pub const SPRAY_ACCOUNTS: i64 = 10;

/// A threat to record.
pub struct NewThreat<'a> {
    pub tenant_id: Uuid,
    pub threat_type: &'a str,
    pub severity: &'a str,
    pub description: String,
    pub indicators: Vec<String>,
    pub affected_users: Vec<Uuid>,
    /// 0-100.
    pub confidence: f64,
    pub response_action: &'a str,
}

/// What the response did.
pub enum Response {
    Executed,
    Failed(String),
}

/// Records the threat as pending, runs `respond`, records its outcome, and opens or
/// joins an incident when the threat is high or critical. Returns the threat id.
pub async fn raise<C, F, Fut>(txn: &C, threat: NewThreat<'_>, respond: F) -> Result<Uuid, DbErr>
where
    C: ConnectionTrait,
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let threat_id = Uuid::now_v7();
    metrics::counter!("ultracore_threats_detected_total", "type" => threat.threat_type.to_string())
        .increment(1);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into threat_events (threat_id, tenant_id, threat_type, severity, description, indicators, \
                                    affected_user_ids, detection_method, confidence, response_action, \
                                    response_status) \
         values ($1, $2, $3, $4, $5, $6, $7, 'rule_based', $8::numeric, $9, 'pending')",
        [
            threat_id.into(),
            threat.tenant_id.into(),
            threat.threat_type.into(),
            threat.severity.into(),
            threat.description.clone().into(),
            threat.indicators.clone().into(),
            threat.affected_users.clone().into(),
            threat.confidence.into(),
            threat.response_action.into(),
        ],
    ))
    .await?;
    let (status, note) = match respond().await {
        Response::Executed => ("executed", None),
        Response::Failed(why) => ("failed", Some(why)),
    };
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "update threat_events set response_status = $2, \
                description = case when $3::text is null then description \
                                   else description || ' (response failed: ' || $3 || ')' end \
          where threat_id = $1",
        [threat_id.into(), status.into(), note.into()],
    ))
    .await?;
    for user in &threat.affected_users {
        trust::adjust_user(txn, *user, trust::THREAT).await?;
    }
    if matches!(threat.severity, "high" | "critical") {
        open_or_join_incident(txn, &threat, threat_id).await?;
    }
    Ok(threat_id)
}

/// Joins an open or investigating incident of the same type from the last 24 hours, or
/// opens one.
async fn open_or_join_incident<C: ConnectionTrait>(
    txn: &C,
    threat: &NewThreat<'_>,
    threat_id: Uuid,
) -> Result<(), DbErr> {
    let joined = txn
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "update security_incidents set related_threat_ids = array_append(related_threat_ids, $2) \
              where incident_id = (select incident_id from security_incidents \
                                    where tenant_id = $1 and incident_type = $3 \
                                      and status in ('open', 'investigating') \
                                      and created_at > now() - interval '24 hours' \
                                    order by created_at desc limit 1 for update)",
            [
                threat.tenant_id.into(),
                threat_id.into(),
                threat.threat_type.into(),
            ],
        ))
        .await?;
    if joined.rows_affected() > 0 {
        return Ok(());
    }
    let title = format!("{}: {}", threat.threat_type.replace('_', " "), threat.description);
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "insert into security_incidents (tenant_id, incident_type, severity, priority, title, description, \
                                         related_threat_ids) \
         values ($1, $2, $3, $3, $4, 'Opened by the threat detectors.', array[$5]::uuid[])",
        [
            threat.tenant_id.into(),
            threat.threat_type.into(),
            threat.severity.into(),
            title.chars().take(500).collect::<String>().into(),
            threat_id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Whether a threat of `threat_type` naming `indicator` was raised in the window (one
/// threat per pattern per window, not one per attempt).
async fn recently_raised<C: ConnectionTrait>(
    txn: &C,
    threat_type: &str,
    indicator: &str,
) -> Result<bool, DbErr> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select exists (select 1 from threat_events \
                             where threat_type = $1 and $2 = any(indicators) \
                               and detected_at > now() - make_interval(mins => $3)) as raised",
            [
                threat_type.into(),
                indicator.into(),
                (FAILURE_WINDOW_MINUTES as i32).into(),
            ],
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get::<bool>("", "raised"))
        .transpose()?
        .unwrap_or(false))
}

/// After a failed sign-in (already counted and recorded on `txn`): brute force on the
/// account (when this failure made the lockout lock it: the lock is the response),
/// credential stuffing or password spraying from the address, and threat intelligence
/// hits.
pub async fn after_failure<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    ip: Option<&str>,
    signals: &Signals,
    account_locked_now: bool,
) -> Result<(), DbErr> {
    // `user_id` is set only for failures that counted against the account (a wrong
    // password or code), so hammering a locked account costs its owner no trust.
    if let Some(user_id) = user_id {
        trust::adjust_user(txn, user_id, trust::FAILURE).await?;
        if account_locked_now {
            account_locked(txn, tenant_id, user_id, ip, Some(signals.account_failures)).await?;
        }
    }
    if let Some(ip) = ip
        && signals.ip_failed_accounts >= SPRAY_ACCOUNTS
    {
        // Few attempts per account over many accounts is spraying one password; many
        // per account is replaying a list of stolen credentials.
        let per_account = signals.ip_failures as f64 / signals.ip_failed_accounts as f64;
        let kind = if per_account <= 2.0 {
            "password_spraying"
        } else {
            "credential_stuffing"
        };
        let indicator = format!("ip:{ip}");
        if !recently_raised(txn, kind, &indicator).await? {
            raise(
                txn,
                NewThreat {
                    tenant_id,
                    threat_type: kind,
                    severity: "high",
                    description: format!(
                        "{} failed sign-ins on {} accounts from {ip} in {FAILURE_WINDOW_MINUTES} minutes",
                        signals.ip_failures, signals.ip_failed_accounts
                    ),
                    indicators: vec![indicator],
                    affected_users: Vec::new(),
                    confidence: 85.0,
                    response_action: "block_ip",
                },
                || block_ip(txn, tenant_id, ip),
            )
            .await?;
        }
    }
    intel_hit(txn, tenant_id, user_id, ip, signals, "deny").await
}

/// The lockout just locked the account (failed sign-ins, or failed re-authentication
/// to change the password or MFA settings): a brute-force threat, whose response (the
/// lock) is already done.
pub async fn account_locked<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    ip: Option<&str>,
    failures: Option<i64>,
) -> Result<(), DbErr> {
    metrics::counter!("ultracore_lockouts_total").increment(1);
    let indicator = format!("user:{user_id}");
    if recently_raised(txn, "brute_force", &indicator).await? {
        return Ok(());
    }
    let description = match failures {
        Some(n) => format!("{n} failed sign-ins on one account in {FAILURE_WINDOW_MINUTES} minutes"),
        None => "repeated failed checks locked the account".to_string(),
    };
    raise(
        txn,
        NewThreat {
            tenant_id,
            threat_type: "brute_force",
            severity: "high",
            description,
            indicators: [Some(indicator), ip.map(|ip| format!("ip:{ip}"))]
                .into_iter()
                .flatten()
                .collect(),
            affected_users: vec![user_id],
            confidence: 90.0,
            response_action: "lock_account",
        },
        // The lockout locked the account in this same transaction.
        || async { Response::Executed },
    )
    .await?;
    Ok(())
}

/// A threat for each sign-in whose address, email or domain is in active threat
/// intelligence; `response` is what the login path did about it.
pub async fn intel_hit<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    ip: Option<&str>,
    signals: &Signals,
    response: &str,
) -> Result<(), DbErr> {
    let Some(hit) = signals.intel.first() else {
        return Ok(());
    };
    let indicator = format!("{}:{}", hit.indicator_type, hit.indicator_value);
    if recently_raised(txn, "threat_intel_match", &indicator).await? {
        return Ok(());
    }
    raise(
        txn,
        NewThreat {
            tenant_id,
            threat_type: "threat_intel_match",
            severity: match hit.severity.as_str() {
                "critical" => "critical",
                "high" => "high",
                "medium" => "medium",
                _ => "low",
            },
            description: format!(
                "sign-in matched {} indicator {} ({})",
                hit.indicator_type,
                hit.indicator_value,
                hit.threat_type.as_deref().unwrap_or("unclassified")
            ),
            indicators: [Some(indicator), ip.map(|ip| format!("ip:{ip}"))]
                .into_iter()
                .flatten()
                .collect(),
            affected_users: user_id.into_iter().collect(),
            confidence: hit
                .confidence
                .and_then(|c| c.to_string().parse::<f64>().ok())
                .unwrap_or(75.0),
            response_action: response,
        },
        || async { Response::Executed },
    )
    .await?;
    Ok(())
}

/// A refresh token presented twice: the session family was revoked (the response).
pub async fn token_reuse<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    ip: Option<&str>,
) -> Result<(), DbErr> {
    let indicator = format!("user:{user_id}");
    if recently_raised(txn, "account_takeover", &indicator).await? {
        return Ok(());
    }
    raise(
        txn,
        NewThreat {
            tenant_id,
            threat_type: "account_takeover",
            severity: "critical",
            description: "a rotated refresh token was presented again: the session was revoked".into(),
            indicators: [Some(indicator), ip.map(|ip| format!("ip:{ip}"))]
                .into_iter()
                .flatten()
                .collect(),
            affected_users: vec![user_id],
            confidence: 95.0,
            response_action: "revoke_sessions",
        },
        || async { Response::Executed },
    )
    .await?;
    Ok(())
}

/// A sign-in from further away than anyone can travel since the user's previous one.
/// `response` is what the sign-in path did: `demand_mfa` when the second factor was
/// demanded and given, `alert` when the user has none to demand.
pub async fn impossible_travel<C: ConnectionTrait>(
    txn: &C,
    tenant_id: Uuid,
    user_id: Uuid,
    ip: Option<&str>,
    signals: &Signals,
    max_travel_kmh: f64,
    response: &str,
) -> Result<(), DbErr> {
    let (Some(speed), Some(from), Some(here)) = (
        signals.travel_km_per_hour,
        &signals.travelled_from,
        &signals.travelled_to,
    ) else {
        return Ok(());
    };
    if speed <= max_travel_kmh {
        return Ok(());
    }
    let indicator = format!("user:{user_id}");
    if recently_raised(txn, "impossible_travel", &indicator).await? {
        return Ok(());
    }
    raise(
        txn,
        NewThreat {
            tenant_id,
            threat_type: "impossible_travel",
            severity: "high",
            description: format!(
                "signed in from {} {:.0} km from the previous sign-in in {}, at {:.0} km/h",
                here.label(),
                here.distance_km(from),
                from.label(),
                speed
            ),
            indicators: [
                Some(indicator),
                ip.map(|ip| format!("ip:{ip}")),
                Some(format!("geo:{}", here.label())),
                Some(format!("geo:{}", from.label())),
            ]
            .into_iter()
            .flatten()
            .collect(),
            affected_users: vec![user_id],
            confidence: 80.0,
            response_action: response,
        },
        || async { Response::Executed },
    )
    .await?;
    Ok(())
}

/// The address is blocked from signing in to the tenant for the rest of the window.
async fn block_ip<C: ConnectionTrait>(txn: &C, tenant_id: Uuid, ip: &str) -> Response {
    match crate::auth::throttle::block_login(txn, tenant_id, ip).await {
        Ok(()) => Response::Executed,
        Err(e) => Response::Failed(e.to_string()),
    }
}
