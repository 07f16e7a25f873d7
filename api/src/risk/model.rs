//! Scoring: signals in, an explained assessment out.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::signals::Signals;

/// What the gateway does about an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Allow,
    /// Demand the second factor (where the user has one).
    Challenge,
    /// Refuse this attempt.
    Deny,
    /// Refuse, and block the address for the rest of the failure window.
    Block,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Challenge => "challenge",
            Action::Deny => "deny",
            Action::Block => "block",
        }
    }
}

/// One factor's part in a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Factor {
    pub name: &'static str,
    /// The configured weight.
    pub weight: f64,
    /// What was observed (a count, 1 for a yes, a trust score ...).
    pub observed: f64,
    /// Points added to (or, for trust, taken from) the risk score.
    pub contribution: f64,
}

/// The result of scoring an attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    /// 0-100.
    pub risk_score: f64,
    /// 0-1: how much the attempt looks like an attack on credentials.
    pub fraud_score: f64,
    /// 0-1: how unlike the user's own history the attempt is.
    pub anomaly_score: f64,
    pub action: Action,
    pub factors: Vec<Factor>,
    /// Which model produced it (a trained model may replace the rules).
    pub model: &'static str,
}

impl Assessment {
    /// The explanation stored in `security_events.metadata.risk`.
    pub fn explanation(&self) -> serde_json::Value {
        json!({
            "model": self.model,
            "risk_score": self.risk_score,
            "fraud_score": self.fraud_score,
            "anomaly_score": self.anomaly_score,
            "action": self.action.as_str(),
            "factors": self.factors,
        })
    }
}

/// Factor weights. Each is the points one unit of the factor adds (counts are capped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Weights {
    /// Per failed sign-in on the account in the window (at most 5 counted).
    pub account_failures: f64,
    /// Per failed sign-in from the address in the window (at most 10 counted).
    pub ip_failures: f64,
    /// Per further account failing from the address (spraying; at most 5 counted).
    pub ip_failed_accounts: f64,
    pub new_device: f64,
    pub new_ip: f64,
    pub new_network: f64,
    pub unusual_hour: f64,
    pub user_agent_changed: f64,
    /// For a hit in threat intelligence, scaled by the indicator's severity (critical 1,
    /// high 0.75, medium 0.5, low 0.25).
    pub threat_intel: f64,
    /// For travel faster than `max_travel_kmh` between consecutive sign-ins.
    pub impossible_travel: f64,
    /// Per point of user trust away from 50: below adds risk, above removes it.
    pub user_trust: f64,
    /// Per point of device trust away from 50, likewise.
    pub device_trust: f64,
    pub max_travel_kmh: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            account_failures: 8.0,
            ip_failures: 3.0,
            ip_failed_accounts: 8.0,
            new_device: 15.0,
            new_ip: 10.0,
            new_network: 10.0,
            unusual_hour: 10.0,
            user_agent_changed: 5.0,
            threat_intel: 60.0,
            impossible_travel: 40.0,
            user_trust: 0.3,
            device_trust: 0.2,
            max_travel_kmh: 900.0,
        }
    }
}

/// Scores at which the action changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Thresholds {
    pub challenge: f64,
    pub deny: f64,
    pub block: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            challenge: 40.0,
            deny: 85.0,
            block: 95.0,
        }
    }
}

/// A tenant's risk settings (`tenants.settings.risk`: `{"weights": {...},
/// "thresholds": {...}}`; missing keys take the defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RiskPolicy {
    pub weights: Weights,
    pub thresholds: Thresholds,
}

impl RiskPolicy {
    /// From the tenant's settings; malformed settings fall back to the defaults.
    pub fn from_settings(settings: &serde_json::Value) -> RiskPolicy {
        settings
            .get("risk")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default()
    }
}

/// A scoring model. The rules below are the default; a trained model can implement this
/// and be swapped in without touching the login path.
pub trait RiskModel: Send + Sync {
    fn assess(&self, signals: &Signals, policy: &RiskPolicy) -> Assessment;
}

/// Explainable rules: each factor adds its weight times what was observed.
pub struct RulesModel;

fn severity_scale(severity: &str) -> f64 {
    match severity {
        "critical" => 1.0,
        "high" => 0.75,
        "medium" => 0.5,
        _ => 0.25,
    }
}

impl RiskModel for RulesModel {
    fn assess(&self, s: &Signals, policy: &RiskPolicy) -> Assessment {
        let w = &policy.weights;
        let mut factors = Vec::new();
        let mut add = |name: &'static str, weight: f64, observed: f64, contribution: f64| {
            if contribution != 0.0 {
                factors.push(Factor {
                    name,
                    weight,
                    observed,
                    contribution,
                });
            }
        };
        let yes = |b: bool| if b { 1.0 } else { 0.0 };
        let account = s.account_failures.min(5) as f64;
        add(
            "account_failures",
            w.account_failures,
            s.account_failures as f64,
            w.account_failures * account,
        );
        let ip = s.ip_failures.min(10) as f64;
        add(
            "ip_failures",
            w.ip_failures,
            s.ip_failures as f64,
            w.ip_failures * ip,
        );
        let spread = (s.ip_failed_accounts - 1).clamp(0, 5) as f64;
        add(
            "ip_failed_accounts",
            w.ip_failed_accounts,
            s.ip_failed_accounts as f64,
            w.ip_failed_accounts * spread,
        );
        add(
            "new_device",
            w.new_device,
            yes(s.new_device),
            w.new_device * yes(s.new_device),
        );
        add("new_ip", w.new_ip, yes(s.new_ip), w.new_ip * yes(s.new_ip));
        add(
            "new_network",
            w.new_network,
            yes(s.new_network),
            w.new_network * yes(s.new_network),
        );
        add(
            "unusual_hour",
            w.unusual_hour,
            yes(s.unusual_hour),
            w.unusual_hour * yes(s.unusual_hour),
        );
        add(
            "user_agent_changed",
            w.user_agent_changed,
            yes(s.user_agent_changed),
            w.user_agent_changed * yes(s.user_agent_changed),
        );
        let intel = s
            .intel
            .iter()
            .map(|m| severity_scale(&m.severity))
            .fold(0.0, f64::max);
        add(
            "threat_intel",
            w.threat_intel,
            s.intel.len() as f64,
            w.threat_intel * intel,
        );
        let too_fast = s.travel_km_per_hour.is_some_and(|v| v > w.max_travel_kmh);
        add(
            "impossible_travel",
            w.impossible_travel,
            s.travel_km_per_hour.unwrap_or(0.0),
            w.impossible_travel * yes(too_fast),
        );
        if let Some(trust) = s.user_trust {
            add("user_trust", w.user_trust, trust, w.user_trust * (50.0 - trust));
        }
        if let Some(trust) = s.device_trust {
            add(
                "device_trust",
                w.device_trust,
                trust,
                w.device_trust * (50.0 - trust),
            );
        }
        let sum = |names: &[&str]| -> f64 {
            factors
                .iter()
                .filter(|f| names.contains(&f.name))
                .map(|f| f.contribution.max(0.0))
                .sum()
        };
        let attack = sum(&[
            "account_failures",
            "ip_failures",
            "ip_failed_accounts",
            "threat_intel",
        ]);
        let unusual = sum(&[
            "new_device",
            "new_ip",
            "new_network",
            "unusual_hour",
            "user_agent_changed",
            "impossible_travel",
        ]);
        let risk_score = round2(
            factors
                .iter()
                .map(|f| f.contribution)
                .sum::<f64>()
                .clamp(0.0, 100.0),
        );
        let t = &policy.thresholds;
        let action = if risk_score >= t.block {
            Action::Block
        } else if risk_score >= t.deny {
            Action::Deny
        } else if risk_score >= t.challenge {
            Action::Challenge
        } else {
            Action::Allow
        };
        Assessment {
            risk_score,
            fraud_score: round2((attack / 100.0).min(1.0)),
            anomaly_score: round2((unusual / 60.0).min(1.0)),
            action,
            factors,
            model: "rules-v1",
        }
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intel::matching::{IntelMatch, MatchedOn};

    fn score(s: &Signals) -> Assessment {
        RulesModel.assess(s, &RiskPolicy::default())
    }

    fn contribution(a: &Assessment, name: &str) -> f64 {
        a.factors
            .iter()
            .find(|f| f.name == name)
            .map_or(0.0, |f| f.contribution)
    }

    /// Each factor moves the score by its documented weight, alone.
    #[test]
    fn each_factor_moves_the_score_by_its_weight() {
        let w = Weights::default();
        let base = score(&Signals::default());
        assert_eq!(base.risk_score, 0.0);
        assert_eq!(base.action, Action::Allow);
        let cases: Vec<(&str, Signals, f64)> = vec![
            (
                "account_failures",
                Signals {
                    account_failures: 2,
                    ..Default::default()
                },
                2.0 * w.account_failures,
            ),
            (
                "ip_failures",
                Signals {
                    ip_failures: 3,
                    ..Default::default()
                },
                3.0 * w.ip_failures,
            ),
            (
                "ip_failed_accounts",
                Signals {
                    ip_failed_accounts: 3,
                    ..Default::default()
                },
                2.0 * w.ip_failed_accounts,
            ),
            (
                "new_device",
                Signals {
                    new_device: true,
                    ..Default::default()
                },
                w.new_device,
            ),
            (
                "new_ip",
                Signals {
                    new_ip: true,
                    ..Default::default()
                },
                w.new_ip,
            ),
            (
                "new_network",
                Signals {
                    new_network: true,
                    ..Default::default()
                },
                w.new_network,
            ),
            (
                "unusual_hour",
                Signals {
                    unusual_hour: true,
                    ..Default::default()
                },
                w.unusual_hour,
            ),
            (
                "user_agent_changed",
                Signals {
                    user_agent_changed: true,
                    ..Default::default()
                },
                w.user_agent_changed,
            ),
            (
                "impossible_travel",
                Signals {
                    travel_km_per_hour: Some(5000.0),
                    ..Default::default()
                },
                w.impossible_travel,
            ),
            (
                "user_trust",
                Signals {
                    user_trust: Some(20.0),
                    ..Default::default()
                },
                30.0 * w.user_trust,
            ),
            (
                "device_trust",
                Signals {
                    device_trust: Some(10.0),
                    ..Default::default()
                },
                40.0 * w.device_trust,
            ),
        ];
        for (name, signals, expected) in cases {
            let a = score(&signals);
            assert_eq!(contribution(&a, name), expected, "{name}");
            assert_eq!(a.risk_score, round2(expected), "{name} alone");
            assert_eq!(a.factors.len(), 1, "{name}: only that factor is listed");
        }
        let intel = Signals {
            intel: vec![IntelMatch {
                intel_id: uuid::Uuid::nil(),
                tenant_id: None,
                indicator_type: "ip".into(),
                indicator_value: "203.0.113.9".into(),
                threat_type: Some("botnet".into()),
                severity: "high".into(),
                confidence: None,
                source: "test".into(),
                expires_at: None,
                matched_on: MatchedOn::Ip,
            }],
            ..Default::default()
        };
        assert_eq!(
            contribution(&score(&intel), "threat_intel"),
            0.75 * w.threat_intel
        );
    }

    #[test]
    fn trust_lowers_risk_counts_are_capped_and_thresholds_pick_the_action() {
        let trusted = score(&Signals {
            new_ip: true,
            user_trust: Some(90.0),
            ..Default::default()
        });
        assert_eq!(
            trusted.risk_score, 0.0,
            "high trust offsets a new address: {trusted:?}"
        );
        let storm = score(&Signals {
            account_failures: 50,
            ip_failures: 500,
            ip_failed_accounts: 40,
            ..Default::default()
        });
        assert_eq!(contribution(&storm, "account_failures"), 40.0);
        assert_eq!(contribution(&storm, "ip_failures"), 30.0);
        assert_eq!(contribution(&storm, "ip_failed_accounts"), 40.0);
        assert_eq!(storm.risk_score, 100.0);
        assert_eq!(storm.action, Action::Block);
        assert_eq!(storm.fraud_score, 1.0);
        let odd = score(&Signals {
            new_device: true,
            new_ip: true,
            new_network: true,
            ..Default::default()
        });
        assert_eq!(odd.risk_score, 35.0);
        assert_eq!(odd.action, Action::Allow);
        assert_eq!(odd.anomaly_score, 0.58);
        let challenged = score(&Signals {
            new_device: true,
            new_ip: true,
            new_network: true,
            unusual_hour: true,
            ..Default::default()
        });
        assert_eq!(challenged.action, Action::Challenge);
    }

    #[test]
    fn tenants_override_weights_and_thresholds() {
        let policy = RiskPolicy::from_settings(&serde_json::json!({
            "risk": { "weights": { "new_device": 50 }, "thresholds": { "challenge": 30 } }
        }));
        assert_eq!(policy.weights.new_device, 50.0);
        assert_eq!(
            policy.weights.new_ip,
            Weights::default().new_ip,
            "unnamed keys keep defaults"
        );
        let a = RulesModel.assess(
            &Signals {
                new_device: true,
                ..Default::default()
            },
            &policy,
        );
        assert_eq!(a.risk_score, 50.0);
        assert_eq!(a.action, Action::Challenge);
        assert_eq!(
            RiskPolicy::from_settings(&serde_json::json!({"risk": "nonsense"})),
            RiskPolicy::default()
        );
    }
}
