//! The bounded pool every Argon2id computation runs on (hashing a new password,
//! verifying one at login, the dummy verify for unknown users).
//!
//! One hash costs tens of milliseconds of a core and 19 MiB. Sent to tokio's blocking
//! pool unbounded, a login storm would start hundreds at once (gigabytes of memory,
//! every request slow). Instead a semaphore sized to the cores lets that many run, a
//! bounded number wait their turn, and everyone beyond that is answered RATE_LIMITED at
//! once: the server stays responsive and its memory bounded.
//!
//! Hashes also run at a lower CPU priority (nice 10) than everything else: on a busy
//! machine a login storm then takes the cores only when requests and PostgreSQL leave
//! them idle, instead of sharing them equally and stretching every other request's
//! latency (the benchmark's "events list during a login storm" scenario). Sign-ins get
//! slower under load, which is the right way round for a security gateway: an attacker's
//! password guessing must not become everyone's outage.

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
        tokio::task::spawn_blocking(move || {
            run_at_hashing_priority();
            work()
        })
        .await
        .map_err(|_| Saturated)
    }
}

/// The nice value hashes run at (0 is the default, 19 the lowest priority).
pub const HASHING_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`HASHING_NICE`]. On Linux a nice value
/// belongs to one thread, so this leaves the async runtime's threads alone; a blocking
/// thread that runs a hash keeps the lower priority for whatever it runs next, which in
/// this gateway is another hash. Raising it back would need CAP_SYS_NICE, so it is not
/// tried. Elsewhere this does nothing.
fn run_at_hashing_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = nix::unistd::gettid().as_raw() as nix::libc::id_t;
        // SAFETY: getpriority and setpriority read and change the scheduling weight of
        // the thread `tid`, which is this thread; they touch no memory of ours.
        unsafe {
            // Only ever lower the priority (a process started at a higher nice keeps it).
            if nix::libc::getpriority(nix::libc::PRIO_PROCESS, tid) < HASHING_NICE
                && nix::libc::setpriority(nix::libc::PRIO_PROCESS, tid, HASHING_NICE) != 0
            {
                tracing::debug!(
                    error = %std::io::Error::last_os_error(),
                    "cannot lower the hashing thread's priority"
                );
            }
        }
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

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_run_at_a_lower_cpu_priority_than_the_async_runtime() {
        fn own_nice() -> i32 {
            let tid = nix::unistd::gettid().as_raw();
            // SAFETY: getpriority reads the scheduling priority of this thread.
            unsafe { nix::libc::getpriority(nix::libc::PRIO_PROCESS, tid as nix::libc::id_t) }
        }
        let runtime_nice = own_nice();
        let pool = Pool::new(PoolSize { workers: 1, queue: 1 });
        let hashing_nice = pool.run(own_nice).await.expect("admitted");
        assert_eq!(
            hashing_nice,
            HASHING_NICE.max(runtime_nice),
            "the hash ran at nice {HASHING_NICE}"
        );
        assert_eq!(
            own_nice(),
            runtime_nice,
            "the runtime's own thread kept its priority"
        );
    }
}
