//! Database access: where the databases are ([`source`]), the embedded cluster
//! ([`embedded`]), connection pools and the serving role's safety check ([`pool`]), and
//! the per-operation tenant transaction ([`tenant`]).

pub mod embedded;
pub mod errors;
pub mod pool;
pub mod source;
pub mod tenant;

pub use pool::{DbError, connect_app, connect_owner, ensure_role_cannot_bypass_rls};
pub use source::DatabaseSource;
pub use tenant::{Access, TenantScope, begin_tenant_transaction};
