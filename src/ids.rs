//! Typed identifiers: what a string means is in its type, never in a variable name.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// A SIP user that registers to whatsip (a desk phone's extension), as configured.
    UserName
);
string_id!(
    /// A configured trunk to an existing PBX.
    TrunkId
);
string_id!(
    /// One SIP call leg (our side of one INVITE dialog), for logs and the API.
    LegId
);

impl LegId {
    pub fn random() -> LegId {
        use rand::Rng;
        LegId(format!("{:016x}", rand::thread_rng().gen::<u64>()))
    }
}

string_id!(
    /// Meta's id of one WhatsApp call (`wacid.…`), the same in every webhook and Graph action
    /// about that call (§1.2, §2.2).
    CallId
);
string_id!(
    /// Meta's id of one business phone number (`metadata.phone_number_id` in webhooks, the path
    /// segment of Graph's `/{PHONE_NUMBER_ID}/calls`). Not the phone number itself.
    PhoneNumberId
);
string_id!(
    /// A WhatsApp user's id: the phone number in international form without `+` (`wa_id`,
    /// `from`, `to`, `recipient_id` in webhooks; `to` of a business-initiated `connect`).
    WaId
);
string_id!(
    /// Meta's id of one WhatsApp message (`wamid.…`), e.g. the permission request a
    /// `call_permission_reply` answers (§2.6).
    MessageId
);
