//! What is known about a sign-in attempt when it is scored.

use std::net::IpAddr;

use chrono::{DateTime, Timelike, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use uuid::Uuid;

use crate::intel::matching::{self, IntelMatch};

/// The window failures are counted in.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;
/// How far back "seen before" looks (addresses, networks, hours, user agents).
pub const HISTORY_DAYS: i64 = 90;
/// Successful sign-ins needed before the hour of day is judged against history.
pub const HOUR_BASELINE: i64 = 10;
/// Moves shorter than this are not judged as travel: city-level GeoIP is often off by
/// tens of kilometres, and mobile carriers route through the nearest large city.
pub const MIN_TRAVEL_KM: f64 = 100.0;
/// Elapsed time is floored at this many hours, so two sign-ins a second apart do not
/// divide by zero.
const MIN_TRAVEL_HOURS: f64 = 1.0 / 60.0;

/// Signals of one attempt. Counts include the attempt being scored when it failed.
#[derive(Debug, Clone, Default)]
pub struct Signals {
    /// Failed sign-ins on the account in the window, since its last successful sign-in
    /// or unlock.
    pub account_failures: i64,
    /// Failed sign-ins from the address in the window (any account of the tenant).
    pub ip_failures: i64,
    /// Distinct accounts (including unknown names) that failed from the address.
    pub ip_failed_accounts: i64,
    /// A fingerprint was given that the user has never signed in from.
    pub new_device: bool,
    /// The user has a history, and never signed in from this address.
    pub new_ip: bool,
    /// ... nor from its network (/24 for IPv4, /48 for IPv6).
    pub new_network: bool,
    /// The user has a history, and rarely signs in at this hour (UTC, ±1 h).
    pub unusual_hour: bool,
    /// The user agent differs from the last successful sign-in's.
    pub user_agent_changed: bool,
    /// Active threat intelligence that the address, the email or its domain hit.
    pub intel: Vec<IntelMatch>,
    /// Distance per hour between this and the previous successful sign-in's
    /// geolocation, when both are known and at least [`MIN_TRAVEL_KM`] apart (no GeoIP
    /// database or proxy headers are configured by default: then None).
    pub travel_km_per_hour: Option<f64>,
    /// Where the previous successful sign-in was, and where this one is, when travel
    /// was measured.
    pub travelled_from: Option<crate::geo::GeoPoint>,
    pub travelled_to: Option<crate::geo::GeoPoint>,
    /// users.trust_score (0-100), when the user exists.
    pub user_trust: Option<f64>,
    /// trusted_devices.trust_score of the device, when known.
    pub device_trust: Option<f64>,
}

/// The attempt as the login path sees it.
pub struct Attempt<'a> {
    pub tenant_id: Uuid,
    pub user_id: Option<Uuid>,
    pub email: Option<&'a str>,
    pub ip: Option<IpAddr>,
    pub device_fingerprint: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    /// Where the client is, when known.
    pub geo: Option<&'a crate::geo::GeoPoint>,
    pub user_trust: Option<f64>,
    pub now: DateTime<Utc>,
    /// Set when the attempt failed and is being recorded: its identity (the user id, or a
    /// hash of an unknown name), so the counts include it before its event is written.
    pub failed_as: Option<String>,
}

/// Gathers the signals of `attempt` on the tenant's transaction.
pub async fn gather<C: ConnectionTrait>(txn: &C, attempt: &Attempt<'_>) -> Result<Signals, DbErr> {
    let mut s = Signals {
        user_trust: attempt.user_trust,
        ..Signals::default()
    };
    let ip = attempt.ip.map(|ip| ip.to_string());
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "select \
               (select count(*) from security_events f \
                 where $2::uuid is not null and f.user_id = $2 and f.event_type = 'login_failure' \
                   and f.\"timestamp\" > now() - make_interval(mins => $4) \
                   and not exists (select 1 from security_events r \
                                    where r.user_id = $2 and r.event_type in ('login_success', 'account_unlocked') \
                                      and r.\"timestamp\" > f.\"timestamp\")) as account_failures, \
               (select count(*) from security_events \
                 where $3::inet is not null and ip_address = $3::inet and event_type = 'login_failure' \
                   and \"timestamp\" > now() - make_interval(mins => $4)) as ip_failures, \
               (select count(*) from ( \
                  select coalesce(user_id::text, metadata->>'username_hash') from security_events \
                   where $3::inet is not null and ip_address = $3::inet and event_type = 'login_failure' \
                     and \"timestamp\" > now() - make_interval(mins => $4) \
                  union select $5::text where $3::inet is not null and $5::text is not null) accounts) \
                 as ip_failed_accounts",
            [
                attempt.tenant_id.into(),
                attempt.user_id.into(),
                ip.clone().into(),
                (FAILURE_WINDOW_MINUTES as i32).into(),
                attempt.failed_as.clone().into(),
            ],
        ))
        .await?;
    if let Some(row) = row {
        s.account_failures = row.try_get("", "account_failures")?;
        s.ip_failures = row.try_get("", "ip_failures")?;
        s.ip_failed_accounts = row.try_get("", "ip_failed_accounts")?;
    }
    // The failure being recorded has no event yet: count it.
    if attempt.failed_as.is_some() {
        s.account_failures += i64::from(attempt.user_id.is_some());
        s.ip_failures += i64::from(attempt.ip.is_some());
    }
    if let Some(user_id) = attempt.user_id {
        history(txn, attempt, user_id, ip.as_deref(), &mut s).await?;
    }
    let email_domain = attempt.email.and_then(|e| e.rsplit_once('@')).map(|(_, d)| d);
    s.intel = matching::matches(txn, attempt.ip, email_domain, attempt.email).await?;
    Ok(s)
}

/// The user's own history: devices, addresses, networks, hours, user agents.
async fn history<C: ConnectionTrait>(
    txn: &C,
    attempt: &Attempt<'_>,
    user_id: Uuid,
    ip: Option<&str>,
    s: &mut Signals,
) -> Result<(), DbErr> {
    let hour = attempt.now.hour() as i32;
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "with past as ( \
                select ip_address, user_agent, geolocation, \"timestamp\" from security_events \
                 where user_id = $1 and event_type = 'login_success' \
                   and \"timestamp\" > now() - make_interval(days => $5)) \
             select \
               (select count(*) from past) as logins, \
               (select count(*) from past where $2::inet is not null and ip_address = $2::inet) as from_ip, \
               (select count(*) from past where $2::inet is not null \
                   and set_masklen(ip_address, case when family(ip_address) = 4 then 24 else 48 end)::cidr \
                     = set_masklen($2::inet, case when family($2::inet) = 4 then 24 else 48 end)::cidr) as from_network, \
               (select count(*) from past \
                 where abs(((extract(hour from \"timestamp\" at time zone 'UTC')::int - $3 + 36) % 24) - 12) <= 1) \
                 as near_hour, \
               (select user_agent from past order by \"timestamp\" desc limit 1) as last_agent, \
               (select geolocation from past where geolocation ? 'latitude' \
                 order by \"timestamp\" desc limit 1) as last_geo, \
               (select extract(epoch from now() - \"timestamp\")::float8 from past \
                 where geolocation ? 'latitude' order by \"timestamp\" desc limit 1) as last_geo_age_secs, \
               (select trust_score::float8 from trusted_devices \
                 where user_id = $1 and device_fingerprint = $4) as device_trust, \
               (select count(*) from trusted_devices where user_id = $1 and device_fingerprint = $4) as device_known",
            [
                user_id.into(),
                ip.map(str::to_owned).into(),
                hour.into(),
                attempt.device_fingerprint.map(str::to_owned).into(),
                (HISTORY_DAYS as i32).into(),
            ],
        ))
        .await?;
    let Some(row) = row else { return Ok(()) };
    let logins: i64 = row.try_get("", "logins")?;
    let from_ip: i64 = row.try_get("", "from_ip")?;
    let from_network: i64 = row.try_get("", "from_network")?;
    let near_hour: i64 = row.try_get("", "near_hour")?;
    let last_agent: Option<String> = row.try_get("", "last_agent")?;
    let device_known: i64 = row.try_get("", "device_known")?;
    s.device_trust = row.try_get("", "device_trust")?;
    s.new_device = attempt.device_fingerprint.is_some() && device_known == 0;
    // Without a history there is nothing to be new against.
    if logins > 0 && ip.is_some() {
        s.new_ip = from_ip == 0;
        s.new_network = from_network == 0;
    }
    if logins >= HOUR_BASELINE {
        // Rare: fewer than 5% of past sign-ins within an hour of this one.
        s.unusual_hour = near_hour * 20 < logins;
    }
    if let (Some(last), Some(now)) = (last_agent, attempt.user_agent) {
        s.user_agent_changed = last != now;
    }
    let last_geo: Option<serde_json::Value> = row.try_get("", "last_geo")?;
    let last_geo_age_secs: Option<f64> = row.try_get("", "last_geo_age_secs")?;
    if let (Some(here), Some(there), Some(age)) = (
        attempt.geo,
        last_geo.as_ref().and_then(crate::geo::GeoPoint::from_json),
        last_geo_age_secs,
    ) {
        let km = here.distance_km(&there);
        if km >= MIN_TRAVEL_KM {
            s.travel_km_per_hour = Some(km / (age / 3600.0).max(MIN_TRAVEL_HOURS));
            s.travelled_from = Some(there);
            s.travelled_to = Some(here.clone());
        }
    }
    Ok(())
}
