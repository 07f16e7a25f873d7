//! The bounded pool every Argon2id computation runs on (hashing a new password,
//! verifying one at login, the dummy verify for unknown users).
//!
//! One hash costs tens of milliseconds of a core and 19 MiB. Sent to tokio's blocking
//! pool unbounded, a login storm would start hundreds at once (gigabytes of memory,
//! every request slow). Instead a semaphore sized to the cores lets that many run, a
//! bounded number wait their turn, and everyone beyond that is answered RATE_LIMITED at
//! once: the server stays responsive and its memory bounded.

use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::Semaphore;

/// The pool's shape. Configured once at start-up ([`configure`]); defaults otherwise.
#[derive(Debug, Clone, Copy)]
pub struct PoolSize {
    /// Hashes computed at the same time (default: the number of cores).
    pub workers: usize,
    /// Callers allowed to wait for a worker (default: 8 per worker).
    pub queue: usize,
}

impl Default for PoolSize {
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        PoolSize {
            workers,
            queue: workers * 8,
        }
    }
}

struct Pool {
    /// Held while a hash runs.
    workers: Semaphore,
    /// Held from admission to completion: running plus waiting.
    admitted: Semaphore,
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Sets the pool's size; only the first call (before any hashing) has an effect.
/// Returns whether this call set it.
pub fn configure(size: PoolSize) -> bool {
    POOL.set(Pool::new(size)).is_ok()
}

impl Pool {
    fn new(size: PoolSize) -> Pool {
        let workers = size.workers.max(1);
        Pool {
            workers: Semaphore::new(workers),
            admitted: Semaphore::new(workers + size.queue),
        }
    }
}

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(PoolSize::default()))
}

/// The pool is full: the caller should answer RATE_LIMITED, retrying after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("password hashing is saturated; retry shortly")]
pub struct Saturated;

impl Saturated {
    /// A hint for the client: one round of the queue is well under a second.
    pub const RETRY_AFTER: Duration = Duration::from_secs(1);
}

/// Runs `work` (a hash or a verification) on the blocking pool once a worker is free,
/// or refuses at once when the queue is full.
pub async fn run<T, F>(work: F) -> Result<T, Saturated>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    pool().run(work).await
}

impl Pool {
    async fn run<T, F>(&self, work: F) -> Result<T, Saturated>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let _admitted = self.admitted.try_acquire().map_err(|_| Saturated)?;
        let _worker = self.workers.acquire().await.map_err(|_| Saturated)?;
        // A panic inside the hash is a bug; it is reported as saturation rather than
        // crashing the request task (the permits are released either way).
        tokio::task::spawn_blocking(work).await.map_err(|_| Saturated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_beyond_workers_plus_queue_and_never_runs_more_than_workers_at_once() {
        // A private pool, so this test does not depend on the global one.
        let pool = Arc::new(Pool::new(PoolSize { workers: 2, queue: 3 }));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                pool.run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(100));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
                .is_ok()
            }));
        }
        let mut admitted = 0;
        for t in tasks {
            admitted += usize::from(t.await.expect("task"));
        }
        assert_eq!(admitted, 5, "workers + queue are admitted, the rest refused");
        assert_eq!(
            peak.load(Ordering::SeqCst),
            2,
            "never more hashes at once than workers"
        );
    }
}
