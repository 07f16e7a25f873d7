//! Security bookkeeping shared by every flow: the one security-event writer and the
//! adaptive rate limiter (the risk engine and detectors live in `crate::risk`).

pub mod events;
pub mod rate_limit;
