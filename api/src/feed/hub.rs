//! One gateway's fan-out of the live feed.
//!
//! - A listener holds one connection of its own (outside the serving pool) in
//!   `LISTEN ultracore_feed`. A notification names
//!   the tenants a committed transaction touched; those tenants are polled at once.
//!   Every `poll_interval` all tenants with subscribers are polled anyway, so a lost
//!   notification (or a listener reconnecting after PostgreSQL restarted) only delays
//!   delivery; nothing is lost, because polling reads by cursor.
//! - Polling a tenant reads its changes after the hub's cursor for it, in one READ ONLY
//!   transaction of that tenant (so RLS applies to every read), once for all of its
//!   subscribers, and broadcasts them.
//! - A subscriber follows the broadcast and skips what it has already seen (by cursor).
//!   One that falls behind the broadcast buffer, or that resumes from a cursor, reads
//!   the missing changes from the database under its tenant's transaction first.
//! - Every `session_check_interval` the sessions behind subscriptions are checked in one
//!   query per tenant; a subscription whose session was revoked, or whose user was
//!   locked or deactivated, ends with UNAUTHENTICATED.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

use super::FeedCursor;
use super::store::{self, FeedItem};
use crate::db::{Access, TenantScope, begin_tenant_transaction};

/// The NOTIFY channel of migration 0016.
pub const CHANNEL: &str = "ultracore_feed";
/// Changes read per statement.
const BATCH: u64 = 500;
/// Items a subscriber may be behind the broadcast before it catches up from the database.
const BROADCAST_BUFFER: usize = 1024;

/// Timing of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubSettings {
    pub poll_interval: Duration,
    pub session_check_interval: Duration,
    pub statement_timeout_ms: u64,
}

impl Default for HubSettings {
    fn default() -> Self {
        HubSettings {
            poll_interval: Duration::from_secs(1),
            session_check_interval: Duration::from_secs(5),
            statement_timeout_ms: 5_000,
        }
    }
}

/// Why a subscription stream ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedError {
    #[error("the session has ended")]
    SessionEnded,
    #[error("the feed could not be read: {0}")]
    Database(String),
}

struct TenantFeed {
    sender: broadcast::Sender<Arc<FeedItem>>,
    /// The last change broadcast.
    cursor: FeedCursor,
    /// Held while the tenant is polled: one poll at a time keeps the broadcast in order.
    polling: Arc<tokio::sync::Mutex<()>>,
}

struct WatchedSession {
    tenant_id: Uuid,
    ended: watch::Sender<bool>,
}

struct Inner {
    db: DatabaseConnection,
    settings: HubSettings,
    tenants: Mutex<HashMap<Uuid, TenantFeed>>,
    sessions: Mutex<HashMap<Uuid, WatchedSession>>,
}

/// The live feed of one gateway. Cheap to clone.
#[derive(Clone)]
pub struct FeedHub {
    inner: Arc<Inner>,
}

impl FeedHub {
    /// Starts the listener, the poller and the session checker on the current runtime.
    /// They stop when the last clone of the hub is dropped.
    pub fn start(db: DatabaseConnection, settings: HubSettings) -> FeedHub {
        let hub = FeedHub {
            inner: Arc::new(Inner {
                db,
                settings,
                tenants: Mutex::new(HashMap::new()),
                sessions: Mutex::new(HashMap::new()),
            }),
        };
        let (wake_tx, wake_rx) = mpsc::unbounded_channel();
        tokio::spawn(listen(Arc::downgrade(&hub.inner), wake_tx));
        tokio::spawn(poll_loop(Arc::downgrade(&hub.inner), wake_rx));
        tokio::spawn(session_loop(Arc::downgrade(&hub.inner)));
        hub
    }

    /// The changes of `tenant_id` after `after` (or from now), as a stream that ends when
    /// the session `session_id` does. Items are in feed order, each once.
    pub async fn subscribe(
        &self,
        tenant_id: Uuid,
        session_id: Uuid,
        after: Option<FeedCursor>,
    ) -> Result<impl Stream<Item = Result<Arc<FeedItem>, FeedError>> + Send + 'static + use<>, FeedError>
    {
        let (receiver, start) = self.register(tenant_id).await.map_err(db_error)?;
        let ended = self.watch_session(tenant_id, session_id);
        let (out, stream) = mpsc::channel(256);
        let inner = self.inner.clone();
        tokio::spawn(follow(
            inner,
            tenant_id,
            receiver,
            after.unwrap_or(start),
            after.is_some(),
            ended,
            out,
        ));
        Ok(tokio_stream_from(stream))
    }

    /// Registers interest in a tenant: the receiver and the cursor it continues after.
    async fn register(
        &self,
        tenant_id: Uuid,
    ) -> Result<(broadcast::Receiver<Arc<FeedItem>>, FeedCursor), DbErr> {
        if let Some(found) = self.existing(tenant_id) {
            return Ok(found);
        }
        let txn = self.inner.begin(tenant_id).await?;
        let cursor = store::current(&txn, tenant_id).await?;
        txn.commit().await?;
        let mut tenants = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        let feed = tenants.entry(tenant_id).or_insert_with(|| TenantFeed {
            sender: broadcast::channel(BROADCAST_BUFFER).0,
            cursor,
            polling: Arc::new(tokio::sync::Mutex::new(())),
        });
        Ok((feed.sender.subscribe(), feed.cursor))
    }

    fn existing(&self, tenant_id: Uuid) -> Option<(broadcast::Receiver<Arc<FeedItem>>, FeedCursor)> {
        let tenants = self.inner.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.get(&tenant_id).map(|f| (f.sender.subscribe(), f.cursor))
    }

    fn watch_session(&self, tenant_id: Uuid, session_id: Uuid) -> watch::Receiver<bool> {
        let mut sessions = self.inner.sessions.lock().unwrap_or_else(|p| p.into_inner());
        sessions
            .entry(session_id)
            .or_insert_with(|| WatchedSession {
                tenant_id,
                ended: watch::channel(false).0,
            })
            .ended
            .subscribe()
    }
}

impl Inner {
    async fn begin(&self, tenant_id: Uuid) -> Result<sea_orm::DatabaseTransaction, DbErr> {
        begin_tenant_transaction(
            &self.db,
            TenantScope::tenant(tenant_id),
            Access::ReadOnly,
            self.settings.statement_timeout_ms,
        )
        .await
    }

    /// Reads the tenant's new changes once and broadcasts them.
    async fn poll(&self, tenant_id: Uuid) -> Result<(), DbErr> {
        let Some(polling) = self.feed_lock(tenant_id) else {
            return Ok(());
        };
        let _one_at_a_time = polling.lock().await;
        let Some(mut cursor) = self.cursor_of(tenant_id) else {
            return Ok(());
        };
        let txn = self.begin(tenant_id).await?;
        loop {
            let (items, last) = store::read_after(&txn, tenant_id, cursor, BATCH).await?;
            if last == cursor {
                break;
            }
            let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
            let Some(feed) = tenants.get(&tenant_id) else {
                break;
            };
            for item in items {
                // No receiver left is fine: the entry is dropped on the next sweep.
                let _ = feed.sender.send(Arc::new(item));
            }
            drop(tenants);
            cursor = last;
            self.set_cursor(tenant_id, cursor);
        }
        txn.commit().await
    }

    fn feed_lock(&self, tenant_id: Uuid) -> Option<Arc<tokio::sync::Mutex<()>>> {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.get(&tenant_id).map(|f| f.polling.clone())
    }

    fn cursor_of(&self, tenant_id: Uuid) -> Option<FeedCursor> {
        let tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.get(&tenant_id).map(|f| f.cursor)
    }

    fn set_cursor(&self, tenant_id: Uuid, cursor: FeedCursor) {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = tenants.get_mut(&tenant_id) {
            feed.cursor = cursor;
        }
    }

    /// Tenants with subscribers (and forgets the others).
    fn active_tenants(&self) -> Vec<Uuid> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        tenants.retain(|_, feed| feed.sender.receiver_count() > 0);
        tenants.keys().copied().collect()
    }

    /// Ends the subscriptions of sessions that are no longer live.
    async fn check_sessions(&self) -> Result<(), DbErr> {
        let by_tenant: HashMap<Uuid, Vec<Uuid>> = {
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            sessions.retain(|_, s| s.ended.receiver_count() > 0);
            let mut by_tenant: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
            for (id, s) in sessions.iter() {
                by_tenant.entry(s.tenant_id).or_default().push(*id);
            }
            by_tenant
        };
        for (tenant_id, ids) in by_tenant {
            let txn = self.begin(tenant_id).await?;
            let rows = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "select distinct r.family_id from refresh_tokens r join users u on u.user_id = r.user_id \
                      where r.family_id = any($1) and r.revoked_at is null and r.expires_at > now() \
                        and u.is_active and not u.is_locked \
                        and (u.locked_until is null or u.locked_until <= now())",
                    [ids.clone().into()],
                ))
                .await?;
            txn.commit().await?;
            let live: HashSet<Uuid> = rows
                .iter()
                .filter_map(|r| r.try_get::<Uuid>("", "family_id").ok())
                .collect();
            let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids.iter().filter(|id| !live.contains(id)) {
                if let Some(session) = sessions.remove(id) {
                    let _ = session.ended.send(true);
                }
            }
        }
        Ok(())
    }
}

fn db_error(e: DbErr) -> FeedError {
    FeedError::Database(e.to_string())
}

/// Turns an mpsc receiver into a stream without another dependency.
fn tokio_stream_from<T: Send + 'static>(
    receiver: mpsc::Receiver<T>,
) -> impl Stream<Item = T> + Send + 'static {
    futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    })
}

/// One subscriber: catch up from the database when resuming, then follow the broadcast.
async fn follow(
    inner: Arc<Inner>,
    tenant_id: Uuid,
    mut receiver: broadcast::Receiver<Arc<FeedItem>>,
    mut last: FeedCursor,
    resume: bool,
    mut ended: watch::Receiver<bool>,
    out: mpsc::Sender<Result<Arc<FeedItem>, FeedError>>,
) {
    // `catch_up` is boxed where it is awaited: inlined, its database future would size
    // this task (one per subscriber, alive as long as the subscription) for its
    // largest state, though it runs only at the start and after a lag.
    if resume && !Box::pin(catch_up(&inner, tenant_id, &mut last, &out)).await {
        return;
    }
    loop {
        tokio::select! {
            changed = ended.changed() => {
                if changed.is_err() || *ended.borrow() {
                    let _ = out.send(Err(FeedError::SessionEnded)).await;
                    return;
                }
            }
            received = receiver.recv() => match received {
                Ok(item) => {
                    if item.cursor <= last {
                        continue;
                    }
                    last = item.cursor;
                    if out.send(Ok(item)).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    if !Box::pin(catch_up(&inner, tenant_id, &mut last, &out)).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

/// Sends what the database holds after `last`; false when the subscriber is gone or
/// the database failed (the failure is sent first).
async fn catch_up(
    inner: &Inner,
    tenant_id: Uuid,
    last: &mut FeedCursor,
    out: &mpsc::Sender<Result<Arc<FeedItem>, FeedError>>,
) -> bool {
    let result: Result<bool, DbErr> = async {
        let txn = inner.begin(tenant_id).await?;
        loop {
            let (items, read_to) = store::read_after(&txn, tenant_id, *last, BATCH).await?;
            if read_to == *last {
                break;
            }
            for item in items {
                if out.send(Ok(Arc::new(item))).await.is_err() {
                    return Ok(false);
                }
            }
            *last = read_to;
        }
        txn.commit().await?;
        Ok(true)
    }
    .await;
    match result {
        Ok(alive) => alive,
        Err(e) => {
            let _ = out.send(Err(db_error(e))).await;
            false
        }
    }
}

/// LISTENs and forwards the tenants named by each notification; after a lost
/// connection, asks for every tenant to be polled (the backfill).
async fn listen(inner: std::sync::Weak<Inner>, wake: mpsc::UnboundedSender<Option<Uuid>>) {
    let mut listener = None;
    // Reconnection backs off (1 s doubling to 30 s) so a database that is gone or being
    // dropped is not hammered.
    let mut backoff = Duration::from_secs(1);
    loop {
        let Some(strong) = inner.upgrade() else { return };
        if listener.is_none() {
            let pool = strong.db.get_postgres_connection_pool().clone();
            drop(strong);
            match connect_listener(&pool).await {
                Ok(l) => {
                    listener = Some(l);
                    backoff = Duration::from_secs(1);
                    // Anything may have been missed while not listening.
                    if wake.send(None).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "feed listener cannot connect; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            continue;
        }
        drop(strong);
        let Some(active) = listener.as_mut() else { continue };
        // Wake regularly to notice that the hub was dropped.
        match tokio::time::timeout(Duration::from_secs(5), active.try_recv()).await {
            Err(_elapsed) => {}
            Ok(Ok(Some(notification))) => {
                for tenant in notification.payload().split(',') {
                    let target = if tenant == "*" { None } else { tenant.parse().ok() };
                    if wake.send(target).is_err() {
                        return;
                    }
                }
            }
            // The connection was lost: reconnect from the top (after checking that the
            // hub still exists), then backfill.
            Ok(Ok(None)) | Ok(Err(_)) => {
                tracing::warn!("feed listener lost its connection; reconnecting");
                listener = None;
            }
        }
    }
}

/// The listener gets a connection of its own, outside the serving pool (a pool of one
/// with the same options), so listening never takes a connection from requests.
async fn connect_listener(pool: &sqlx::PgPool) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    let options = (*pool.connect_options()).clone();
    let own = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.ignore_pool_close_event(false);
    // Reconnecting is the loop's decision (it checks the hub is alive and backs off).
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Polls the tenants that were named (None: all), and all of them every interval.
async fn poll_loop(inner: std::sync::Weak<Inner>, mut wake: mpsc::UnboundedReceiver<Option<Uuid>>) {
    let interval = match inner.upgrade() {
        Some(i) => i.settings.poll_interval,
        None => return,
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut targets: Option<HashSet<Uuid>> = Some(HashSet::new());
        tokio::select! {
            _ = ticker.tick() => targets = None,
            first = wake.recv() => match first {
                None => return,
                Some(first) => {
                    // Take everything already queued, so a burst is one round.
                    let mut next = Some(first);
                    while let Some(target) = next {
                        match (target, targets.as_mut()) {
                            (Some(id), Some(set)) => { set.insert(id); }
                            _ => targets = None,
                        }
                        next = wake.try_recv().ok();
                    }
                }
            },
        }
        let Some(strong) = inner.upgrade() else { return };
        let active = strong.active_tenants();
        for tenant_id in active {
            if targets.as_ref().is_some_and(|t| !t.contains(&tenant_id)) {
                continue;
            }
            if let Err(e) = strong.poll(tenant_id).await {
                tracing::warn!(error = %e, %tenant_id, "feed poll failed; retrying on the next round");
            }
        }
    }
}

async fn session_loop(inner: std::sync::Weak<Inner>) {
    let interval = match inner.upgrade() {
        Some(i) => i.settings.session_check_interval,
        None => return,
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(strong) = inner.upgrade() else { return };
        if let Err(e) = strong.check_sessions().await {
            tracing::warn!(error = %e, "subscription session check failed; retrying");
        }
    }
}
