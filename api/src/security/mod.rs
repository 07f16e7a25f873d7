//! Security bookkeeping shared by every flow (the risk engine and detectors arrive with
//! the threat-detection issue).

pub mod events;
