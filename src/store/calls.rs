//! Call records (CDRs): one per WhatsApp call, written when it ends.
//!
//! Keyed by the offer time (big-endian milliseconds, so sled's byte order is time order) and
//! the call id, which makes "the most recent calls" a reverse scan and keeps two calls offered
//! in the same millisecond apart.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::ids::{CallId, PhoneNumberId, WaId};

pub(super) const CALLS: &str = "calls";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallDirection {
    Inbound,
    Outbound,
}

/// One ring-group member we rang (or skipped) for the call, and how that ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegAttempt {
    /// The dial target (`1001`, `2001@pbx`).
    pub target: String,
    /// The ring group it rang in.
    #[serde(default)]
    pub group: Option<String>,
    /// Contacts that rang.
    pub rang: Vec<String>,
    /// `answered`, `busy`, `rejected`, `no_answer`, `failed`, `cancelled`, or `skipped`.
    pub outcome: String,
    /// The SIP status or error, or why it was skipped (`dnd`, `busy`, `not_registered`...).
    pub detail: Option<String>,
    /// Unix milliseconds of its INVITE (none when skipped).
    #[serde(default)]
    pub invited_at: Option<u64>,
    #[serde(default)]
    pub ended_at: Option<u64>,
}

/// The route asked for the caller to be called back. Placing the callback comes later; the
/// request is kept so a list of pending callbacks can be built from the records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackRequest {
    /// Unix milliseconds.
    pub requested_at: u64,
    /// `pending` until callbacks are placed.
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub call_id: CallId,
    pub direction: CallDirection,
    pub business_number_id: PhoneNumberId,
    pub business_number: String,
    /// The WhatsApp user.
    pub user: WaId,
    pub user_name: Option<String>,
    /// Unix milliseconds.
    pub offered_at: u64,
    pub ringing_at: Option<u64>,
    pub answered_at: Option<u64>,
    pub ended_at: u64,
    /// `answered`, `announced` (accepted to play a recording, no agent), `missed`, `rejected`,
    /// `failed`.
    pub outcome: String,
    /// No agent talked to the caller: everything but `answered`.
    #[serde(default)]
    pub missed: bool,
    /// The dialplan route that took the call.
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub callback: Option<CallbackRequest>,
    /// Why, in a word: `caller_hung_up`, `no_answer`, `busy`, `declined_603`, `accept`...
    pub reason: Option<String>,
    /// Meta's error code when a Graph action failed.
    pub meta_error_code: Option<u32>,
    /// `caller`, `phone`, `media`, `gateway`.
    pub ended_by: String,
    /// The contact (phone) that took the call.
    pub answered_by: Option<String>,
    pub legs: Vec<LegAttempt>,
}

impl CallRecord {
    pub fn talk_seconds(&self) -> u64 {
        self.answered_at.map_or(0, |a| self.ended_at.saturating_sub(a) / 1000)
    }
}

/// Unix milliseconds, the unit of every time in a record (and in the admin API).
pub fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn call_key(offered_at: u64, call_id: &CallId) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + call_id.as_str().len());
    key.extend_from_slice(&offered_at.to_be_bytes());
    key.extend_from_slice(call_id.as_str().as_bytes());
    key
}

impl Store {
    /// Stores a finished call and returns once it is on disk.
    pub async fn put_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record).expect("CallRecord always serialises");
        self.calls.insert(call_key(record.offered_at, &record.call_id), value)?;
        self.db.flush_async().await?;
        Ok(())
    }

    /// The most recent calls, newest first.
    pub fn recent_calls(&self, limit: usize) -> Result<Vec<CallRecord>, StoreError> {
        self.calls
            .iter()
            .values()
            .rev()
            .take(limit)
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt { tree: CALLS, reason: e.to_string() })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, offered_at: u64) -> CallRecord {
        CallRecord {
            call_id: CallId::new(id),
            direction: CallDirection::Inbound,
            business_number_id: PhoneNumberId::new("1"),
            business_number: "+1 555 0100".into(),
            user: WaId::new("15550001111"),
            user_name: Some("Alice".into()),
            offered_at,
            ringing_at: Some(offered_at + 100),
            answered_at: Some(offered_at + 5000),
            ended_at: offered_at + 65_000,
            outcome: "answered".into(),
            missed: false,
            route: Some("support".into()),
            callback: None,
            reason: None,
            meta_error_code: None,
            ended_by: "phone".into(),
            answered_by: Some("sip:1001@127.0.0.1:5062".into()),
            legs: vec![LegAttempt {
                target: "1001".into(),
                group: Some("support".into()),
                rang: vec!["sip:1001@127.0.0.1:5062".into()],
                outcome: "answered".into(),
                detail: None,
                invited_at: Some(offered_at + 20),
                ended_at: Some(offered_at + 65_000),
            }],
        }
    }

    #[tokio::test]
    async fn calls_come_back_newest_first_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            for (id, t) in [("wacid.b", 2000), ("wacid.a", 1000), ("wacid.c", 3000), ("wacid.c2", 3000)] {
                store.put_call(&record(id, t)).await.unwrap();
            }
        }
        let store = crate::store::reopen(dir.path()).unwrap();
        let ids: Vec<_> = store.recent_calls(3).unwrap().into_iter().map(|r| r.call_id.to_string()).collect();
        assert_eq!(ids, ["wacid.c2", "wacid.c", "wacid.b"]);
        let r = &store.recent_calls(10).unwrap()[3];
        assert_eq!((r.call_id.as_str(), r.talk_seconds()), ("wacid.a", 60));
    }
}
