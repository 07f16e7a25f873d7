//! Live feeds: subscriptions to threats, security events and incidents as they commit.
//!
//! Writers (any gateway copy, the CLI, any SQL client) append to `feed_changes` through
//! triggers, and PostgreSQL NOTIFYs at COMMIT (migration 0016). Each gateway runs one
//! [`hub::FeedHub`]: it listens for the notifications, reads each tenant's new changes
//! once under that tenant's transaction, and fans them out to the tenant's subscribers.
//! Cursors follow commit order (see [`cursor`]), so a client that reconnects with its
//! last cursor receives everything after it exactly once, in order.

pub mod cursor;
pub mod hub;
pub mod store;

pub use cursor::FeedCursor;
pub use hub::FeedHub;
pub use store::{FeedEntity, FeedItem};
