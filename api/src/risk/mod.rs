//! The risk engine: every sign-in is scored from named factors, and detectors turn
//! patterns of failures into threats with a response.
//!
//! - [`signals`] gathers what is known about an attempt (failures on the account and
//!   from the address, device, address and network history, threat intelligence, hour of
//!   day, user agent, trust scores) with a few indexed queries in the tenant's
//!   transaction.
//! - [`model`] turns signals into an [`model::Assessment`]: a risk score 0-100, fraud
//!   and anomaly scores 0-1, an action (allow, challenge, deny, block) and every factor
//!   with its weight and contribution, stored in the security event's `metadata` so an
//!   analyst sees why. The model is a trait; the default is explainable rules whose
//!   weights and thresholds a tenant can override (`tenants.settings.risk`).
//! - [`detectors`] create threat events (brute force, credential stuffing, password
//!   spraying, threat-intelligence hits, token reuse), carry out their response and open
//!   or join an incident for high and critical ones.
//! - [`sensitive`] scores sensitive mutations before they run.
//! - [`trust`] moves users' and devices' trust scores with their history.

pub mod detectors;
pub mod model;
pub mod sensitive;
pub mod signals;
pub mod trust;

pub use model::{Action, Assessment, RiskModel, RulesModel};
pub use signals::Signals;
