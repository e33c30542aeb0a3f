//! Feature codes: numbers a user dials on the desk phone to change their own settings rather
//! than to reach anyone (`*78` do-not-disturb on, `*79` off, as on most PBXs).
//!
//! The INVITE is answered with a final non-2xx response and never set up as a call: nothing
//! needs to be heard, so a media leg (ports, SDP answer, ACK, BYE) would only add ways to fail.
//! The code is 480 because RFC 3261 §21.4.18 says its reason phrase "SHOULD indicate a more
//! precise cause", and phones show that phrase: the user reads "Do Not Disturb On". A 2xx
//! would leave the phone in a silent call the user has to hang up.

use super::registrar::Reply;
use crate::config::SipSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    DndOn,
    DndOff,
}

impl Feature {
    /// The do-not-disturb state this feature sets.
    pub fn dnd(self) -> bool {
        self == Feature::DndOn
    }

    /// What the phone is told once the change is stored.
    pub fn done_reply(self) -> Reply {
        Reply::new(480, if self.dnd() { "Do Not Disturb On" } else { "Do Not Disturb Off" })
    }
}

/// The configured codes (validated non-empty and distinct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCodes {
    dnd_on: String,
    dnd_off: String,
}

impl FeatureCodes {
    pub fn from_settings(sip: &SipSettings) -> FeatureCodes {
        FeatureCodes { dnd_on: sip.dnd_on_code.clone(), dnd_off: sip.dnd_off_code.clone() }
    }

    /// The feature `dialled` (the Request-URI's user part, already percent-decoded) asks for.
    /// Exact match: `*780` is a different number, and a user part is case-sensitive.
    pub fn lookup(&self, dialled: &str) -> Option<Feature> {
        if dialled == self.dnd_on {
            Some(Feature::DndOn)
        } else if dialled == self.dnd_off {
            Some(Feature::DndOff)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_exactly() {
        let codes = FeatureCodes::from_settings(&SipSettings::default());
        assert_eq!(codes.lookup("*78"), Some(Feature::DndOn));
        assert_eq!(codes.lookup("*79"), Some(Feature::DndOff));
        for other in ["*780", "78", "*7", "", "1001", "+447700900123"] {
            assert_eq!(codes.lookup(other), None, "{other:?}");
        }
        let custom = SipSettings { dnd_on_code: "*55".into(), dnd_off_code: "*56".into(), ..SipSettings::default() };
        let codes = FeatureCodes::from_settings(&custom);
        assert_eq!((codes.lookup("*55"), codes.lookup("*56"), codes.lookup("*78")), (Some(Feature::DndOn), Some(Feature::DndOff), None));
    }

    #[test]
    fn the_reply_says_the_new_state_and_is_a_failure() {
        let on = Feature::DndOn.done_reply();
        let off = Feature::DndOff.done_reply();
        assert_eq!((on.code, on.reason.as_str()), (480, "Do Not Disturb On"));
        assert_eq!((off.code, off.reason.as_str()), (480, "Do Not Disturb Off"));
        assert!(Feature::DndOn.dnd() && !Feature::DndOff.dnd());
    }
}
