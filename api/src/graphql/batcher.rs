//! A per-request batching loader whose batches do not depend on timing.
//!
//! async-graphql's DataLoader collects keys for a fixed delay (1 ms by default) in a
//! spawned task; a page whose rows take longer than that to resolve is split into
//! several batches, so the number of statements grows with the page size. Here the
//! first caller of a batch becomes its leader and, instead of sleeping, yields back to
//! the request's own task until no new keys arrive: GraphQL resolves a list's items
//! concurrently within that one task, so by then every sibling row has asked for its
//! key. Then the leader loads all pending keys with one call of the [`Loader`].
//!
//! Results are cached for the request, so a key is loaded at most once.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;

use async_graphql::dataloader::Loader;
use tokio::sync::Notify;

/// Most times a leader yields while its batch keeps growing (a bound, not a timer).
const MAX_YIELDS: usize = 64;

struct State<K, V> {
    /// Loaded keys; None when the loader returned nothing for the key.
    done: HashMap<K, Option<V>>,
    /// Keys whose load failed, with the error.
    failed: HashMap<K, async_graphql::Error>,
    /// Keys asked for and not yet taken by a leader.
    pending: HashSet<K>,
    /// A leader is collecting or loading.
    leading: bool,
}

pub struct Batcher<K, L: Loader<K, Error = async_graphql::Error>>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
{
    loader: L,
    state: Mutex<State<K, L::Value>>,
    finished: Notify,
}

impl<K, L> Batcher<K, L>
where
    K: Send + Sync + Hash + Eq + Clone + 'static,
    L: Loader<K, Error = async_graphql::Error>,
{
    pub fn new(loader: L) -> Self {
        Batcher {
            loader,
            state: Mutex::new(State {
                done: HashMap::new(),
                failed: HashMap::new(),
                pending: HashSet::new(),
                leading: false,
            }),
            finished: Notify::new(),
        }
    }

    pub async fn load_one(&self, key: K) -> Result<Option<L::Value>, async_graphql::Error> {
        let mut found = self.load_many(std::iter::once(key.clone())).await?;
        Ok(found.remove(&key))
    }

    /// The values of `keys` that exist (keys without a value are left out).
    pub async fn load_many(
        &self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<HashMap<K, L::Value>, async_graphql::Error> {
        let keys: Vec<K> = keys.into_iter().collect();
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            let lead = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(err) = keys.iter().find_map(|k| state.failed.get(k)) {
                    return Err(err.clone());
                }
                if keys.iter().all(|k| state.done.contains_key(k)) {
                    return Ok(keys
                        .iter()
                        .filter_map(|k| state.done.get(k).cloned().flatten().map(|v| (k.clone(), v)))
                        .collect());
                }
                for k in &keys {
                    if !state.done.contains_key(k) {
                        state.pending.insert(k.clone());
                    }
                }
                if state.leading {
                    // Register before unlocking so the leader's notification is not missed.
                    notified.as_mut().enable();
                    false
                } else {
                    state.leading = true;
                    true
                }
            };
            if lead {
                self.lead().await;
            } else {
                notified.await;
            }
        }
    }

    async fn lead(&self) {
        // Let sibling resolvers of this request ask for their keys first.
        let mut seen = 0;
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = self.state.lock().unwrap_or_else(|p| p.into_inner()).pending.len();
            if now == seen {
                break;
            }
            seen = now;
        }
        let batch: Vec<K> = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.pending.drain().collect()
        };
        let result = self.loader.load(&batch).await;
        {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match result {
                Ok(mut values) => {
                    for k in batch {
                        let v = values.remove(&k);
                        state.done.insert(k, v);
                    }
                }
                Err(err) => {
                    for k in batch {
                        state.failed.insert(k, err.clone());
                    }
                }
            }
            state.leading = false;
        }
        self.finished.notify_waiters();
    }
}
