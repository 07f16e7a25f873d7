//! Live feeds (see `crate::feed`). Each item carries its `cursor`: subscribing again with
//! `after: <the last cursor received>` first replays what was committed since, so a
//! client that reconnects loses nothing and receives nothing twice.
//!
//! Rows arrive with their own fields; related rows (a threat's affected users ...) are
//! fetched with a query by id, so a feed costs one read per tenant and event, not one per
//! subscriber.

use std::sync::Arc;

use async_graphql::{Context, InputObject, SimpleObject, Subscription};
use futures::{Stream, StreamExt};

use super::context::request;
use super::errors::{ApiError, ApiResult};
use super::guards::Scope;
use super::types::enums::{DbEnum, EventCategory, Severity};
use super::types::{SecurityEvent, SecurityIncident, ThreatEvent};
use crate::auth::permissions::{Permission, Principal};
use crate::feed::hub::FeedError;
use crate::feed::{FeedCursor, FeedEntity, FeedHub, FeedItem};

/// A threat, as it was detected.
#[derive(SimpleObject)]
pub struct ThreatDetected {
    /// Resume after this item with `after`.
    pub cursor: String,
    pub threat: ThreatEvent,
}

/// A security event, as it was recorded.
#[derive(SimpleObject)]
pub struct SecurityEventRecorded {
    pub cursor: String,
    pub event: SecurityEvent,
}

/// An incident opened or changed (status, assignment, priority, links).
#[derive(SimpleObject)]
pub struct IncidentUpdated {
    pub cursor: String,
    /// `insert` when it was opened, `update` when it changed.
    pub operation: String,
    pub incident: SecurityIncident,
}

/// Which security events to receive.
#[derive(InputObject, Default)]
pub struct SecurityEventStreamFilter {
    /// Only events at least this severe.
    pub min_severity: Option<Severity>,
    pub categories: Option<Vec<EventCategory>>,
    pub event_types: Option<Vec<String>>,
}

#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Threats as they are detected (threats:read), at least `minSeverity` severe.
    async fn threat_detected(
        &self,
        ctx: &Context<'_>,
        min_severity: Option<Severity>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<ThreatDetected, async_graphql::Error>> + use<>, async_graphql::Error>
    {
        let (hub, principal, after) = start(ctx, Some(Permission::ThreatsRead), after)?;
        let floor = rank(min_severity.unwrap_or(Severity::Low));
        let items = subscribe(&hub, &principal, after).await?;
        Ok(items.filter_map(move |item| {
            let out = match item {
                Err(e) => Some(Err(e)),
                Ok(item) => match &item.entity {
                    FeedEntity::Threat(t)
                        if item.operation == "insert" && stored_rank(&t.severity) >= floor =>
                    {
                        Some(Ok(ThreatDetected {
                            cursor: item.cursor.encode(),
                            threat: ThreatEvent(t.clone()),
                        }))
                    }
                    _ => None,
                },
            };
            async move { out }
        }))
    }

    /// Security events as they are recorded: every event of the tenant with
    /// events:read, otherwise one's own.
    async fn security_event_recorded(
        &self,
        ctx: &Context<'_>,
        filter: Option<SecurityEventStreamFilter>,
        after: Option<String>,
    ) -> Result<
        impl Stream<Item = Result<SecurityEventRecorded, async_graphql::Error>> + use<>,
        async_graphql::Error,
    > {
        let (hub, principal, after) = start(ctx, None, after)?;
        let scope = Scope::own_or(&principal, Permission::EventsRead);
        let filter = filter.unwrap_or_default();
        let floor = rank(filter.min_severity.unwrap_or(Severity::Low));
        let categories: Option<Vec<&'static str>> =
            filter.categories.map(|c| c.iter().map(|c| c.as_db()).collect());
        let types = filter.event_types;
        let items = subscribe(&hub, &principal, after).await?;
        Ok(items.filter_map(move |item| {
            let out = match item {
                Err(e) => Some(Err(e)),
                Ok(item) => match &item.entity {
                    FeedEntity::SecurityEvent(e)
                        if scope.allows(e.user_id)
                            && stored_rank(&e.severity) >= floor
                            && categories
                                .as_ref()
                                .is_none_or(|c| c.contains(&e.event_category.as_str()))
                            && types.as_ref().is_none_or(|t| t.contains(&e.event_type)) =>
                    {
                        Some(Ok(SecurityEventRecorded {
                            cursor: item.cursor.encode(),
                            event: SecurityEvent::new(e.clone()),
                        }))
                    }
                    _ => None,
                },
            };
            async move { out }
        }))
    }

    /// Incidents as they are opened and changed (incidents:read).
    async fn incident_updated(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = Result<IncidentUpdated, async_graphql::Error>> + use<>, async_graphql::Error>
    {
        let (hub, principal, after) = start(ctx, Some(Permission::IncidentsRead), after)?;
        let items = subscribe(&hub, &principal, after).await?;
        Ok(items.filter_map(|item| {
            let out = match item {
                Err(e) => Some(Err(e)),
                Ok(item) => match &item.entity {
                    FeedEntity::Incident(i) => Some(Ok(IncidentUpdated {
                        cursor: item.cursor.encode(),
                        operation: item.operation.clone(),
                        incident: SecurityIncident(i.clone()),
                    })),
                    _ => None,
                },
            };
            async move { out }
        }))
    }
}

/// The hub, the caller (holding `permission` if one is named) and the parsed cursor.
fn start(
    ctx: &Context<'_>,
    permission: Option<Permission>,
    after: Option<String>,
) -> ApiResult<(FeedHub, Principal, Option<FeedCursor>)> {
    let req = request(ctx);
    let principal = match permission {
        Some(p) => req.require(p)?,
        None => req.principal()?,
    }
    .clone();
    let hub = ctx
        .data_opt::<FeedHub>()
        .cloned()
        .ok_or_else(|| ApiError::internal("the live feed is not running"))?;
    let after = after
        .map(|text| FeedCursor::decode(&text).ok_or_else(|| ApiError::BadUserInput("invalid cursor".into())))
        .transpose()?;
    Ok((hub, principal, after))
}

async fn subscribe(
    hub: &FeedHub,
    principal: &Principal,
    after: Option<FeedCursor>,
) -> ApiResult<impl Stream<Item = ApiResult<Arc<FeedItem>>> + use<>> {
    let stream = hub
        .subscribe(principal.tenant_id, principal.session_id, after)
        .await
        .map_err(feed_error)?;
    Ok(stream.map(|item| item.map_err(|e| feed_error(e).into())))
}

fn feed_error(e: FeedError) -> ApiError {
    match e {
        FeedError::SessionEnded => ApiError::Unauthenticated("the session has ended"),
        FeedError::Database(cause) => ApiError::internal(cause),
    }
}

fn rank(severity: Severity) -> usize {
    Severity::ALL.iter().position(|s| *s == severity).unwrap_or(0)
}

fn stored_rank(stored: &str) -> usize {
    Severity::from_db(stored).map(rank).unwrap_or(0)
}
