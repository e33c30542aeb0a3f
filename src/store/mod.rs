//! The one module that opens sled. It owns the trees, the record types written to them and the
//! schema version; everything else asks it.
//!
//! Durability: sled buffers writes and flushes in the background. A record the gateway has told
//! anyone about (a 200 OK to a REGISTER) is flushed first, so a SIGKILL right after cannot lose
//! it; `tests/store_durability.rs` kills the gateway mid-burst to prove it.

mod calls;
mod presence;

pub use calls::{unix_ms, CallDirection, CallRecord, CallbackRequest, LegAttempt};
pub use presence::PresenceRecord;

use crate::ids::UserName;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped when a stored record changes shape; `open` refuses a store from a newer whatsip.
pub const SCHEMA_VERSION: u32 = 1;

const META: &str = "meta";
const REGISTRATIONS: &str = "registrations";
const SCHEMA_KEY: &[u8] = b"schema_version";

/// One contact of a registered user (RFC 3261 §10.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    pub user: UserName,
    /// The Contact URI as the phone sent it.
    pub contact: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub registered_at: u64,
    pub call_id: String,
    pub cseq: u32,
    /// Where the REGISTER came from (`ip:port`), for NAT'd phones and the admin.
    pub source: String,
    pub transport: String,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationChange {
    Upsert(Binding),
    Remove { user: UserName, contact: String },
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open { path: PathBuf, source: sled::Error },
    #[error("the store at {path} has schema version {found}, newer than this whatsip ({SCHEMA_VERSION}); upgrade whatsip or move the data directory")]
    NewerSchema { path: PathBuf, found: u32 },
    #[error("store I/O: {0}")]
    Io(#[from] sled::Error),
    #[error("corrupt record in {tree}: {reason}")]
    Corrupt { tree: &'static str, reason: String },
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    registrations: sled::Tree,
    calls: sled::Tree,
    presence: sled::Tree,
}

impl Store {
    /// Opens (or creates) the store in `data_dir`. sled holds an exclusive file lock, so a second
    /// process gets [`StoreError::Open`] instead of a corrupted store.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let path = data_dir.join("whatsip.sled");
        let open_err = |source| StoreError::Open { path: path.clone(), source };
        std::fs::create_dir_all(data_dir).map_err(|e| open_err(sled::Error::Io(e)))?;
        let db = sled::Config::new().path(&path).open().map_err(open_err)?;
        let meta = db.open_tree(META)?;
        match meta.get(SCHEMA_KEY)? {
            None => {
                meta.insert(SCHEMA_KEY, &SCHEMA_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt { tree: META, reason: "schema version is not 4 bytes".into() })?;
                if found > SCHEMA_VERSION {
                    return Err(StoreError::NewerSchema { path, found });
                }
            }
        }
        let registrations = db.open_tree(REGISTRATIONS)?;
        let calls = db.open_tree(calls::CALLS)?;
        let presence = db.open_tree(presence::PRESENCE)?;
        Ok(Store { db, registrations, calls, presence })
    }

    pub fn registrations(&self) -> Result<Vec<Binding>, StoreError> {
        self.registrations
            .iter()
            .values()
            .map(|v| {
                let v = v?;
                serde_json::from_slice(&v)
                    .map_err(|e| StoreError::Corrupt { tree: REGISTRATIONS, reason: e.to_string() })
            })
            .collect()
    }

    /// Applies the changes atomically and returns once they are on disk.
    pub async fn apply_registrations(&self, changes: &[RegistrationChange]) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for change in changes {
            match change {
                RegistrationChange::Upsert(b) => {
                    let value = serde_json::to_vec(b).expect("Binding always serialises");
                    batch.insert(binding_key(&b.user, &b.contact), value);
                }
                RegistrationChange::Remove { user, contact } => batch.remove(binding_key(user, contact)),
            }
        }
        self.registrations.apply_batch(batch)?;
        self.db.flush_async().await?;
        Ok(())
    }
}

/// Opens the store a test has just dropped. sled's flushes run on sled's own thread pool,
/// whose jobs keep a handle on the database (and so its file lock) for a moment after the
/// flush is reported done; an open right after the drop can find the lock still held, so
/// [`StoreError::Open`] is retried for a while. Other errors are returned at once.
#[cfg(test)]
pub(crate) fn reopen(data_dir: &Path) -> Result<Store, StoreError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match Store::open(data_dir) {
            Err(StoreError::Open { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            result => return result,
        }
    }
}

fn binding_key(user: &UserName, contact: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(user.as_str().len() + 1 + contact.len());
    key.extend_from_slice(user.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(contact.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(user: &str, contact: &str) -> Binding {
        Binding {
            user: UserName::new(user),
            contact: contact.into(),
            expires_at: 1000,
            registered_at: 10,
            call_id: "cid".into(),
            cseq: 1,
            source: "127.0.0.1:5062".into(),
            transport: "udp".into(),
            user_agent: None,
        }
    }

    #[tokio::test]
    async fn bindings_survive_reopen_and_removal_sticks() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store
                .apply_registrations(&[
                    RegistrationChange::Upsert(binding("1001", "sip:a")),
                    RegistrationChange::Upsert(binding("1001", "sip:b")),
                    RegistrationChange::Upsert(binding("1002", "sip:c")),
                ])
                .await
                .unwrap();
            store
                .apply_registrations(&[RegistrationChange::Remove { user: UserName::new("1001"), contact: "sip:a".into() }])
                .await
                .unwrap();
        }
        let store = reopen(dir.path()).unwrap();
        let mut contacts: Vec<_> = store.registrations().unwrap().into_iter().map(|b| b.contact).collect();
        contacts.sort();
        assert_eq!(contacts, ["sip:b", "sip:c"]);
    }

    #[test]
    fn second_open_is_refused_while_first_holds_it() {
        let dir = tempfile::tempdir().unwrap();
        let _first = Store::open(dir.path()).unwrap();
        assert!(matches!(Store::open(dir.path()), Err(StoreError::Open { .. })));
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open(dir.path()).unwrap();
            store.db.open_tree(META).unwrap().insert(SCHEMA_KEY, &99u32.to_be_bytes()).unwrap();
            store.db.flush().unwrap();
        }
        let err = reopen(dir.path()).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
    }
}
