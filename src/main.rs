//! The `ultracore` binary: everything lives in the `api` crate.

/// mimalloc instead of glibc's malloc. Allocation was ~20 % of the gateway's CPU per
/// GraphQL request under glibc (perf, bench/README.md "What the results say"); with
/// mimalloc the events list costs the gateway ~20 % less CPU and serves ~25 % more
/// requests per second (A/B of the two binaries on one database).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    return_freed_memory_promptly();
    api::cli::main()
}

/// mimalloc's defaults keep freed pages for 10 ms and only purge them on a later
/// allocation by the same thread, and commit its arenas eagerly: an idle gateway then
/// held ~46 MB (glibc: ~20 MB) and 10,000 subscribers 332 MB. Set here, purging at once
/// and committing on demand (for arenas reserved from now on: the first one already is)
/// give ~30 MB idle and ~5 MB more after 100 sign-ins (19 MiB Argon2 blocks), at no
/// measurable CPU cost; both set in the environment before start give ~21 MB idle. An
/// operator's `MIMALLOC_*` variable wins.
fn return_freed_memory_promptly() {
    // mimalloc's option numbers (mimalloc.h, `mi_option_e`; v2 and v3 agree on both).
    const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
    const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
    for (option, variable, value) in [
        (ARENA_EAGER_COMMIT, "MIMALLOC_ARENA_EAGER_COMMIT", 0),
        (PURGE_DELAY, "MIMALLOC_PURGE_DELAY", 0),
    ] {
        if std::env::var_os(variable).is_none() {
            // SAFETY: sets an allocator parameter; main calls this before it starts any
            // thread (mi_option_set is not thread-safe).
            unsafe { libmimalloc_sys::mi_option_set(option, value) };
        }
    }
}
