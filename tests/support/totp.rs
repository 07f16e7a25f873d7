//! TOTP time steps and codes for tests that must not straddle a step boundary.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use api::auth::mfa::code_at;

/// Seconds a time-step-sensitive test wants left in the current step when it starts.
pub const MARGIN: u64 = 20;
pub const STEP: u64 = 30;

pub fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The current TOTP time step (what the gateway computes from the same clock).
pub fn current_step() -> u64 {
    now_secs_f64() as u64 / STEP
}

/// The current step, after waiting for the next one to begin when fewer than
/// `min_left` seconds of this one remain.
pub async fn settled_step(min_left: u64) -> u64 {
    let left = STEP as f64 - now_secs_f64() % STEP as f64;
    if left < min_left as f64 {
        tokio::time::sleep(Duration::from_secs_f64(left + 0.25)).await;
    }
    current_step()
}

/// The code of time step `step`.
pub fn code(secret: &str, step: u64) -> String {
    code_at(secret, step * STEP).expect("a code of a valid base32 secret")
}

/// A well-formed code that no step from `step - 3` to `step + 3` produces.
pub fn wrong_code(secret: &str, step: u64) -> String {
    let near: Vec<String> = (step - 3..=step + 3).map(|s| code(secret, s)).collect();
    let mut n: u32 = near[3].parse().expect("digits");
    loop {
        n = (n + 1) % 1_000_000;
        let candidate = format!("{n:06}");
        if !near.contains(&candidate) {
            return candidate;
        }
    }
}

/// A note for assertion messages: the planned step and the step now, so a failure caused
/// by a test outliving its step says so.
pub fn at(step: u64) -> String {
    format!("(planned step {step}, step now {})", current_step())
}
