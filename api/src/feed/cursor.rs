//! Positions in a tenant's feed.
//!
//! A change is ordered by (transaction id, position). Readers only read changes of
//! transactions older than the oldest one still running, so every change that can ever
//! appear before a cursor is already visible when the cursor is handed out: resuming
//! from it loses nothing, even when transactions commit in another order than they
//! started.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Where a subscriber is in a tenant's feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FeedCursor {
    /// The writing transaction's id (xid8).
    pub tx_id: u64,
    /// The change's position within the feed (a sequence).
    pub position: i64,
}

const PREFIX: &str = "feed:";

impl FeedCursor {
    /// The opaque text clients hold.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{PREFIX}{}:{}", self.tx_id, self.position))
    }

    /// Parses a cursor from [`FeedCursor::encode`]; None for anything else.
    pub fn decode(text: &str) -> Option<FeedCursor> {
        if text.len() > 100 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (tx, position) = text.strip_prefix(PREFIX)?.split_once(':')?;
        Some(FeedCursor {
            tx_id: tx.parse().ok()?,
            position: position.parse().ok().filter(|p: &i64| *p >= 0)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_order_by_transaction_first_and_refuse_garbage() {
        let a = FeedCursor {
            tx_id: 7,
            position: 900,
        };
        let b = FeedCursor {
            tx_id: 8,
            position: 5,
        };
        assert!(a < b, "a later transaction sorts after, whatever its position");
        assert_eq!(FeedCursor::decode(&a.encode()), Some(a));
        for bad in ["", "feed:1:2", "Zm9vOjE6Mg", &"A".repeat(200)] {
            assert_eq!(FeedCursor::decode(bad), None, "{bad}");
        }
    }
}
