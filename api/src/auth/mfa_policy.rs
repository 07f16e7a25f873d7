//! When a sign-in must pass a second factor.
//!
//! The decision is behind a trait so the risk engine (threat detection issue) can
//! replace or extend it: a risky sign-in may demand the second factor even where the
//! default policy would not. The default policy:
//!
//! - a user without MFA enrolled has no second factor to give: not demanded (a risk
//!   engine may still deny the sign-in outright);
//! - otherwise it is demanded, except from a device the user trusted (from a session
//!   that passed MFA) within the tenant's `trusted_device_mfa_days` (0 by default:
//!   always demanded). An unknown device is never trusted;
//! - the risk engine's challenge (a raised score) demands it even from a trusted device.

use chrono::{DateTime, Duration, Utc};

use super::devices::KnownDevice;
use crate::domain::tenants::TenantPolicy;

/// What is known about a sign-in when the second factor is decided.
pub struct SignInSignals<'a> {
    pub mfa_enrolled: bool,
    /// The device, when the client sent a fingerprint the user has signed in from before.
    pub device: Option<&'a KnownDevice>,
    pub policy: &'a TenantPolicy,
    pub now: DateTime<Utc>,
    /// The risk engine asks for the second factor (a raised score).
    pub risk_demands_mfa: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MfaDemand {
    Required,
    NotRequired,
}

/// Decides whether a sign-in needs the second factor.
pub trait MfaPolicy: Send + Sync {
    fn demand(&self, signals: &SignInSignals<'_>) -> MfaDemand;
}

/// The default policy described in the module documentation.
pub struct DeviceTrustPolicy;

impl MfaPolicy for DeviceTrustPolicy {
    fn demand(&self, s: &SignInSignals<'_>) -> MfaDemand {
        if !s.mfa_enrolled {
            return MfaDemand::NotRequired;
        }
        // A risky sign-in is challenged even from a trusted device.
        if s.risk_demands_mfa {
            return MfaDemand::Required;
        }
        let days = s.policy.trusted_device_mfa_days;
        let trusted_recently = s.device.is_some_and(|d| {
            d.is_trusted
                && d.trusted_at
                    .is_some_and(|at| days > 0 && s.now - at < Duration::days(days))
        });
        if trusted_recently {
            MfaDemand::NotRequired
        } else {
            MfaDemand::Required
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn device(trusted: bool, days_ago: i64) -> KnownDevice {
        KnownDevice {
            device_id: Uuid::now_v7(),
            is_trusted: trusted,
            trusted_at: trusted.then(|| Utc::now() - Duration::days(days_ago)),
        }
    }

    fn demand(enrolled: bool, device: Option<&KnownDevice>, remember_days: i64) -> MfaDemand {
        let policy = TenantPolicy {
            trusted_device_mfa_days: remember_days,
            ..TenantPolicy::default()
        };
        DeviceTrustPolicy.demand(&SignInSignals {
            mfa_enrolled: enrolled,
            device,
            policy: &policy,
            now: Utc::now(),
            risk_demands_mfa: false,
        })
    }

    #[test]
    fn only_a_recently_trusted_device_in_an_opted_in_tenant_skips_the_second_factor() {
        use MfaDemand::*;
        assert_eq!(demand(false, None, 30), NotRequired, "nothing to ask");
        assert_eq!(demand(true, None, 30), Required, "unknown device");
        assert_eq!(
            demand(true, Some(&device(false, 0)), 30),
            Required,
            "known, untrusted"
        );
        assert_eq!(
            demand(true, Some(&device(true, 3)), 30),
            NotRequired,
            "trusted 3 days ago"
        );
        assert_eq!(
            demand(true, Some(&device(true, 31)), 30),
            Required,
            "trust too old"
        );
        assert_eq!(
            demand(true, Some(&device(true, 0)), 0),
            Required,
            "tenant did not opt in"
        );
    }
}
