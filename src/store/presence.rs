//! Per-user presence settings an admin or the phone itself chose: today do-not-disturb.
//!
//! Keyed by the user name; one record per user who ever changed a setting. Busy counts and
//! ring memory are not here: they describe calls of this process and mean nothing after a
//! restart, whereas a user who pressed *78 before a reboot still does not want to be rung.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::ids::UserName;

pub(super) const PRESENCE: &str = "presence";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceRecord {
    pub dnd: bool,
}

impl Store {
    /// Every stored presence record, by user.
    pub fn presence_records(&self) -> Result<Vec<(UserName, PresenceRecord)>, StoreError> {
        self.presence
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let corrupt = |reason: String| StoreError::Corrupt { tree: PRESENCE, reason };
                let user = std::str::from_utf8(&key).map_err(|e| corrupt(format!("user name is not UTF-8: {e}")))?;
                let record = serde_json::from_slice(&value).map_err(|e| corrupt(e.to_string()))?;
                Ok((UserName::new(user), record))
            })
            .collect()
    }

    /// Stores `user`'s record and returns once it is on disk.
    pub async fn put_presence(&self, user: &UserName, record: &PresenceRecord) -> Result<(), StoreError> {
        let value = serde_json::to_vec(record).expect("PresenceRecord always serialises");
        self.presence.insert(user.as_str().as_bytes(), value)?;
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_survive_reopening_and_the_last_write_wins() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.put_presence(&UserName::new("1001"), &PresenceRecord { dnd: true }).await.unwrap();
            store.put_presence(&UserName::new("1002"), &PresenceRecord { dnd: true }).await.unwrap();
            store.put_presence(&UserName::new("1002"), &PresenceRecord { dnd: false }).await.unwrap();
        }
        let store = crate::store::reopen(dir.path()).unwrap();
        let mut records = store.presence_records().unwrap();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            records,
            [
                (UserName::new("1001"), PresenceRecord { dnd: true }),
                (UserName::new("1002"), PresenceRecord { dnd: false }),
            ]
        );
    }

    #[test]
    fn a_corrupt_record_is_reported_with_its_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.presence.insert(b"1001", b"not json".to_vec()).unwrap();
        let err = store.presence_records().unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { tree: PRESENCE, .. }), "{err}");
    }
}
