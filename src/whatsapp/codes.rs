//! Meta's error codes for calling (§1.4): in Graph's error envelope, and in the `errors[]` of a
//! terminate webhook (§2.5). One enum for both, so a code means the same thing wherever it is.

use std::fmt;

/// A Graph or webhook error code, named where §1.4 documents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 100: invalid parameter; SDP validation errors carry details in `error_data`.
    InvalidParameter,
    /// 613: call-permission fetch rate limit.
    PermissionFetchRateLimit,
    /// 131009: interactive `voice_call` not supported in the sender's country.
    VoiceCallNotSupported,
    /// 131030: recipient not in the allowed list (public test numbers only).
    RecipientNotAllowed,
    /// 131044: no valid payment method on the account.
    NoPaymentMethod,
    /// 131055: the number is in SIP mode; Graph calls are refused.
    SipEnabled,
    /// 138000: calling is not enabled on the number.
    CallingNotEnabled,
    /// 138001: the user cannot be called (not on WhatsApp, old client, terms not accepted).
    ReceiverUncallable,
    /// 138002: too many concurrent calls on the number (1000).
    ConcurrentCallLimit,
    /// 138003: a call with this user is already going on.
    DuplicateCall,
    /// 138004: connection error on Meta's side.
    ConnectionError,
    /// 138005: call rate limit for the number.
    CallRateLimit,
    /// 138006: no approved call permission for this user.
    NoCallPermission,
    /// 138007: the offer/answer SDP was not applied in time.
    ConnectTimeout,
    /// 138009: call-permission-request limit reached.
    PermissionRequestLimit,
    /// 138012: business-initiated connected-call limit (100 a day) reached.
    ConnectedCallLimit,
    /// 138013: business-initiated calling is unavailable in this number's country.
    CountryUnavailable,
    /// 138014: calling temporarily disabled for low quality.
    CallingDisabledLowQuality,
    /// 138015: calling cannot be enabled (messaging limit below 2000).
    MessagingLimitTooLow,
    /// 138017: a permanent permission already exists, no request needed.
    PermanentPermissionExists,
    /// 138018: technical prerequisites missing (no `calls` subscription and no SIP).
    PrerequisitesNotMet,
    /// 138019: call set-up failed on the client (terminate webhook).
    CallSetupFailed,
    /// 138020: relay connection failed (terminate webhook).
    RelayConnectionFailed,
    /// 138021: the client received no media (terminate webhook).
    MediaReceiveTimeout,
    /// 138022: the client could not send media (terminate webhook).
    MediaTransmitTimeout,
    /// 138023: accepted, then ended without any media (terminate webhook).
    NoMediaAfterAccept,
    /// Anything else: generic Graph codes (1, 2, 4, 190 …) and undocumented ones (138011 …).
    Other(i64),
}

const TABLE: &[(ErrorCode, i64, &str)] = &[
    (ErrorCode::InvalidParameter, 100, "invalid parameter"),
    (ErrorCode::PermissionFetchRateLimit, 613, "call-permission lookup rate limit"),
    (ErrorCode::VoiceCallNotSupported, 131009, "voice_call not supported for the sender's country"),
    (ErrorCode::RecipientNotAllowed, 131030, "recipient not in the test number's allowed list"),
    (ErrorCode::NoPaymentMethod, 131044, "no valid payment method on the WhatsApp account"),
    (ErrorCode::SipEnabled, 131055, "the number is in SIP mode, Graph calls are not allowed"),
    (ErrorCode::CallingNotEnabled, 138000, "calling is not enabled on the number"),
    (ErrorCode::ReceiverUncallable, 138001, "the user cannot be called"),
    (ErrorCode::ConcurrentCallLimit, 138002, "concurrent call limit reached"),
    (ErrorCode::DuplicateCall, 138003, "a call with this user is already going on"),
    (ErrorCode::ConnectionError, 138004, "connection error at Meta"),
    (ErrorCode::CallRateLimit, 138005, "call rate limit reached for the number"),
    (ErrorCode::NoCallPermission, 138006, "no approved call permission from the user"),
    (ErrorCode::ConnectTimeout, 138007, "offer/answer not applied in time"),
    (ErrorCode::PermissionRequestLimit, 138009, "call-permission request limit reached"),
    (ErrorCode::ConnectedCallLimit, 138012, "business-initiated connected-call limit reached"),
    (ErrorCode::CountryUnavailable, 138013, "business-initiated calling unavailable in this country"),
    (ErrorCode::CallingDisabledLowQuality, 138014, "calling temporarily disabled for low quality"),
    (ErrorCode::MessagingLimitTooLow, 138015, "calling cannot be enabled: messaging limit below 2000"),
    (ErrorCode::PermanentPermissionExists, 138017, "a permanent call permission already exists"),
    (ErrorCode::PrerequisitesNotMet, 138018, "calling prerequisites not met (calls webhook or SIP)"),
    (ErrorCode::CallSetupFailed, 138019, "call set-up failed on the user's client"),
    (ErrorCode::RelayConnectionFailed, 138020, "relay connection failed"),
    (ErrorCode::MediaReceiveTimeout, 138021, "the user's client received no media"),
    (ErrorCode::MediaTransmitTimeout, 138022, "the user's client could not send media"),
    (ErrorCode::NoMediaAfterAccept, 138023, "accepted but ended without media"),
];

impl ErrorCode {
    pub fn from_code(code: i64) -> ErrorCode {
        TABLE.iter().find(|(_, c, _)| *c == code).map(|(e, _, _)| *e).unwrap_or(ErrorCode::Other(code))
    }

    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Other(c) => c,
            known => TABLE.iter().find(|(e, _, _)| *e == known).map(|(_, c, _)| *c).expect("every named code is in TABLE"),
        }
    }

    /// What §1.4 says the code means; `None` for codes it does not document.
    pub fn meaning(self) -> Option<&'static str> {
        TABLE.iter().find(|(e, _, _)| *e == self).map(|(_, _, m)| *m)
    }

    /// Limits that clear with time: worth trying again later, never at once.
    pub fn is_rate_limit(self) -> bool {
        matches!(
            self,
            ErrorCode::PermissionFetchRateLimit
                | ErrorCode::ConcurrentCallLimit
                | ErrorCode::CallRateLimit
                | ErrorCode::PermissionRequestLimit
                | ErrorCode::ConnectedCallLimit
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.meaning() {
            Some(m) => write!(f, "{} ({m})", self.code()),
            None => write!(f, "{}", self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_stay_numbers() {
        for (e, c, _) in TABLE {
            assert_eq!(ErrorCode::from_code(*c), *e);
            assert_eq!(e.code(), *c);
        }
        assert_eq!(ErrorCode::from_code(138011), ErrorCode::Other(138011));
        assert_eq!(ErrorCode::Other(138011).to_string(), "138011");
        assert_eq!(ErrorCode::from_code(138006).to_string(), "138006 (no approved call permission from the user)");
        assert!(ErrorCode::CallRateLimit.is_rate_limit() && !ErrorCode::SipEnabled.is_rate_limit());
    }
}
