use super::*;
use crate::media::wa_sdp::fixtures::META_OFFER_2025;
use crate::media::wa_sdp::{build_answer, build_offer, Candidate, Fingerprint, LocalMedia};
use serde_json::json;
use std::time::UNIX_EPOCH;

const TOKEN: &str = "EAAG-sandbox-token";
const NUMBER: &str = "106540352242922";
const USER: &str = "15550001111";
const CALL: &str = "wacid.TEST";

fn t(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + s)
}

fn local(session_id: u64) -> LocalMedia {
    LocalMedia {
        ice_ufrag: "WhIp".into(),
        ice_pwd: "0123456789abcdefghijkl".into(),
        fingerprint: Fingerprint {
            algorithm: "sha-256".into(),
            value: "AB:".repeat(31) + "AB",
        },
        candidates: vec![Candidate::host("1", "127.0.0.1:40000".parse().unwrap(), 65535)],
        ssrc: 12345,
        cname: "whatsip".into(),
        session_id,
    }
}

fn answer(session_id: u64) -> String {
    build_answer(&parse_meta_offer(META_OFFER_2025).unwrap(), &local(session_id))
}

fn ledger() -> Ledger {
    let mut l = Ledger::new(TOKEN, [(PhoneNumberId::new(NUMBER), "+15550009999".to_owned())]);
    l.offer(CallId::new(CALL), PhoneNumberId::new(NUMBER), WaId::new(USER), META_OFFER_2025).unwrap();
    l
}

fn body(action: &str, sdp: Option<&str>) -> Vec<u8> {
    let mut b = json!({ "messaging_product": "whatsapp", "call_id": CALL, "action": action });
    if let Some(sdp) = sdp {
        b["session"] = json!({ "sdp_type": "answer", "sdp": sdp });
    }
    serde_json::to_vec(&b).unwrap()
}

fn req(body: &[u8]) -> GraphRequest<'_> {
    GraphRequest { version: "v23.0", phone_number_id: NUMBER, bearer: Some(TOKEN), body }
}

fn send(l: &mut Ledger, at: u64, body: &[u8]) -> Handled {
    l.handle(t(at), req(body), CallId::new("wacid.FRESH"))
}

fn refused(h: &Handled) -> &Refusal {
    match &h.reply {
        Reply::Refused(r) => r,
        other => panic!("not refused: {other:?}"),
    }
}

fn rules(l: &Ledger) -> Vec<Rule> {
    l.violations().iter().map(|v| v.rule).collect()
}

#[test]
fn pre_accept_then_accept_answers_once_and_starts_talking() {
    let mut l = ledger();
    let sdp = answer(1);
    let id = CallId::new(CALL);

    let h = send(&mut l, 1, &body("pre_accept", Some(&sdp)));
    assert_eq!(h.reply, Reply::Success);
    assert_eq!(h.effects, vec![Effect::Answer { call_id: id.clone(), sdp: sdp.clone() }]);
    assert_eq!(l.state(&id), Some(CallState::PreAccepted));

    // A retried pre_accept with the same SDP changes nothing.
    let h = send(&mut l, 2, &body("pre_accept", Some(&sdp)));
    assert_eq!((h.reply.clone(), h.effects.len()), (Reply::Success, 0));

    let h = send(&mut l, 3, &body("accept", Some(&sdp)));
    assert_eq!(h.reply, Reply::Success);
    assert_eq!(h.effects, vec![Effect::Talk { call_id: id.clone() }]);
    assert_eq!(l.state(&id), Some(CallState::Accepted));

    let actions = l.actions(&id);
    let kinds: Vec<_> = actions.iter().map(|a| a.action).collect();
    assert_eq!(kinds, vec![Some(Action::PreAccept), Some(Action::PreAccept), Some(Action::Accept)]);
    assert!(actions.iter().all(|a| a.sdp.as_deref() == Some(sdp.as_str()) && a.succeeded()));
    assert!(l.violations().is_empty());
}

#[test]
fn accept_without_pre_accept_answers_and_talks() {
    let mut l = ledger();
    let h = send(&mut l, 1, &body("accept", Some(&answer(1))));
    assert_eq!(h.reply, Reply::Success);
    assert!(matches!(h.effects.as_slice(), [Effect::Answer { .. }, Effect::Talk { .. }]));
}

#[test]
fn accept_must_repeat_the_pre_accept_sdp() {
    let mut l = ledger();
    send(&mut l, 1, &body("pre_accept", Some(&answer(1))));
    let h = send(&mut l, 2, &body("accept", Some(&answer(2))));
    let r = refused(&h);
    assert_eq!((r.rule, r.http_status, r.code), (Rule::AnswerChanged, 400, ErrorCode::InvalidParameter));
    assert!(r.details.contains("line 2"), "{}", r.details);
    assert_eq!(l.state(&CallId::new(CALL)), Some(CallState::PreAccepted));
    assert_eq!(rules(&l), vec![Rule::AnswerChanged]);
    // A changed pre_accept is refused the same way.
    assert_eq!(refused(&send(&mut l, 3, &body("pre_accept", Some(&answer(3))))).rule, Rule::AnswerChanged);
}

#[test]
fn the_answer_must_be_an_answer_in_crlf_that_fits_the_offer() {
    let mut l = ledger();
    let mut offer_typed = json!({ "messaging_product": "whatsapp", "call_id": CALL, "action": "pre_accept",
                                  "session": { "sdp_type": "offer", "sdp": answer(1) } });
    assert_eq!(refused(&send(&mut l, 1, &serde_json::to_vec(&offer_typed).unwrap())).rule, Rule::WrongSdpType);
    offer_typed["session"]["sdp_type"] = json!("ANSWER");
    assert_eq!(refused(&send(&mut l, 1, &serde_json::to_vec(&offer_typed).unwrap())).rule, Rule::WrongSdpType);

    let lf = answer(1).replace("\r\n", "\n");
    assert_eq!(refused(&send(&mut l, 2, &body("pre_accept", Some(&lf)))).rule, Rule::SdpNotCrlf);

    let passive = answer(1).replace("a=setup:active", "a=setup:passive");
    let r = refused(&send(&mut l, 3, &body("accept", Some(&passive)))).clone();
    assert_eq!(r.rule, Rule::SdpInvalid);
    assert!(r.details.contains("setup"), "{}", r.details);

    assert_eq!(refused(&send(&mut l, 4, &body("accept", None))).rule, Rule::WrongSdpType);
    assert_eq!(l.state(&CallId::new(CALL)), Some(CallState::Offered));
    assert_eq!(l.violations().len(), 5);
}

#[test]
fn no_second_accept_and_no_reject_after_accept() {
    let mut l = ledger();
    let sdp = answer(1);
    send(&mut l, 1, &body("accept", Some(&sdp)));
    assert_eq!(refused(&send(&mut l, 2, &body("accept", Some(&sdp)))).rule, Rule::AlreadyAccepted);
    assert_eq!(refused(&send(&mut l, 3, &body("pre_accept", Some(&sdp)))).rule, Rule::AlreadyAccepted);
    assert_eq!(refused(&send(&mut l, 4, &body("reject", None))).rule, Rule::AlreadyAccepted);
    assert_eq!(l.state(&CallId::new(CALL)), Some(CallState::Accepted));
}

#[test]
fn terminate_ends_an_answered_call_with_its_duration() {
    let mut l = ledger();
    let sdp = answer(1);
    send(&mut l, 10, &body("pre_accept", Some(&sdp)));
    let opaque = json!({ "messaging_product": "whatsapp", "call_id": CALL, "action": "accept",
                         "session": { "sdp_type": "answer", "sdp": sdp }, "biz_opaque_callback_data": "cdr-7" });
    send(&mut l, 12, &serde_json::to_vec(&opaque).unwrap());
    let h = send(&mut l, 75, &body("terminate", None));
    assert_eq!(h.reply, Reply::Success);
    let [Effect::End(ending)] = h.effects.as_slice() else { panic!("{:?}", h.effects) };
    assert_eq!((ending.by, ending.state, ending.status()), (Party::Business, CallState::Terminated, "COMPLETED"));
    assert_eq!(ending.answered, Some((t(12), t(75))));
    assert_eq!(ending.duration(), Some(Duration::from_secs(63)));
    assert_eq!(ending.biz_opaque_callback_data.as_deref(), Some("cdr-7"));

    // No accept after terminate, and a second terminate is the business's own mistake.
    assert_eq!(refused(&send(&mut l, 76, &body("accept", Some(&sdp)))).rule, Rule::CallEnded);
    assert_eq!(refused(&send(&mut l, 77, &body("terminate", None))).rule, Rule::CallEnded);
    assert_eq!(rules(&l), vec![Rule::CallEnded, Rule::CallEnded]);
}

#[test]
fn reject_ends_an_unanswered_call() {
    let mut l = ledger();
    send(&mut l, 1, &body("pre_accept", Some(&answer(1))));
    let h = send(&mut l, 2, &body("reject", None));
    let [Effect::End(ending)] = h.effects.as_slice() else { panic!("{:?}", h.effects) };
    assert_eq!((ending.state, ending.answered), (CallState::Rejected, None));
    assert_eq!(l.state(&CallId::new(CALL)), Some(CallState::Rejected));
    assert_eq!(refused(&send(&mut l, 3, &body("accept", Some(&answer(1))))).rule, Rule::CallEnded);
}

#[test]
fn a_request_racing_the_users_hang_up_is_refused_but_no_violation() {
    let mut l = ledger();
    let id = CallId::new(CALL);
    send(&mut l, 1, &body("accept", Some(&answer(1))));
    let ending = l.user_hangs_up(t(31), &id).expect("live call");
    assert_eq!((ending.by, ending.duration()), (Party::User, Some(Duration::from_secs(30))));
    assert_eq!(l.user_hangs_up(t(32), &id), None, "ends once");
    let r = refused(&send(&mut l, 32, &body("terminate", None))).clone();
    assert_eq!(r.rule, Rule::CallEnded);
    assert!(r.details.contains("user hung up"));
    assert!(l.violations().is_empty());
    assert_eq!(l.actions(&id).len(), 2, "still recorded");
}

#[test]
fn the_answer_window_ends_only_unanswered_calls() {
    let mut l = ledger();
    let id = CallId::new(CALL);
    send(&mut l, 1, &body("pre_accept", Some(&answer(1))));
    let ending = l.answer_window_passed(t(60), &id).expect("unanswered");
    assert_eq!((ending.by, ending.answered, ending.status()), (Party::Meta, None, "COMPLETED"));

    let mut l = ledger();
    send(&mut l, 1, &body("accept", Some(&answer(1))));
    assert_eq!(l.answer_window_passed(t(60), &id), None);
    let failed = l.fail(t(61), &id, ErrorCode::CallSetupFailed).unwrap();
    assert_eq!(failed.status(), "FAILED");
}

#[test]
fn token_version_number_and_body_are_checked_first() {
    let mut l = ledger();
    let b = body("accept", Some(&answer(1)));
    let fresh = || CallId::new("wacid.FRESH");
    let wrong = l.handle(t(1), GraphRequest { bearer: Some("guess"), ..req(&b) }, fresh());
    let r = refused(&wrong);
    assert_eq!((r.rule, r.http_status, r.code.code()), (Rule::Unauthorized, 401, 190));
    assert_eq!(wrong.recorded.call_id, Some(CallId::new(CALL)), "attributed to its call");
    let none = l.handle(t(1), GraphRequest { bearer: None, ..req(&b) }, fresh());
    assert_eq!(refused(&none).http_status, 401);
    let old = l.handle(t(1), GraphRequest { version: "v16.0", ..req(&b) }, fresh());
    assert_eq!(refused(&old).rule, Rule::BadVersion);
    let other = l.handle(t(1), GraphRequest { phone_number_id: "999", ..req(&b) }, fresh());
    let r = refused(&other);
    assert_eq!((r.rule, r.subcode, r.error_type), (Rule::UnknownNumber, Some(33), "GraphMethodException"));
    assert_eq!(refused(&send(&mut l, 1, b"not json")).rule, Rule::MalformedRequest);
    assert_eq!(refused(&send(&mut l, 1, &body("ACCEPT", Some(&answer(1))))).rule, Rule::MalformedRequest);
    let no_product = serde_json::to_vec(&json!({ "call_id": CALL, "action": "terminate" })).unwrap();
    assert_eq!(refused(&send(&mut l, 1, &no_product)).rule, Rule::MalformedRequest);
    let no_call = serde_json::to_vec(&json!({ "messaging_product": "whatsapp", "action": "terminate" })).unwrap();
    assert_eq!(refused(&send(&mut l, 1, &no_call)).rule, Rule::MalformedRequest);
    let unknown = serde_json::to_vec(&json!({ "messaging_product": "whatsapp", "call_id": "wacid.NOPE", "action": "terminate" })).unwrap();
    let h = send(&mut l, 1, &unknown);
    assert_eq!((refused(&h).rule, refused(&h).code), (Rule::UnknownCall, ErrorCode::InvalidParameter));
    assert_eq!(l.state(&CallId::new(CALL)), Some(CallState::Offered), "nothing changed");
    assert_eq!(l.stray().len(), 3, "not JSON, no call_id, unknown call_id");
    assert_eq!(l.actions(&CallId::new(CALL)).len(), 6);
    assert_eq!(l.violations().len(), 9);
}

#[test]
fn opaque_data_is_limited() {
    let mut l = ledger();
    let long = json!({ "messaging_product": "whatsapp", "call_id": CALL, "action": "accept",
                       "session": { "sdp_type": "answer", "sdp": answer(1) }, "biz_opaque_callback_data": "x".repeat(513) });
    assert_eq!(refused(&send(&mut l, 1, &serde_json::to_vec(&long).unwrap())).rule, Rule::MalformedRequest);
}

#[test]
fn connect_places_a_business_call_once_per_user() {
    let mut l = ledger();
    let offer = build_offer(&local(9));
    let connect = |to: &str| {
        serde_json::to_vec(&json!({ "messaging_product": "whatsapp", "to": to, "action": "connect",
                                    "session": { "sdp_type": "offer", "sdp": offer } }))
        .unwrap()
    };
    let h = l.handle(t(1), req(&connect("15550002222")), CallId::new("wacid.OUT"));
    assert_eq!(h.reply, Reply::Placed(CallId::new("wacid.OUT")));
    assert!(matches!(&h.effects[..], [Effect::Placed { to, .. }] if to.as_str() == "15550002222"));
    assert_eq!(h.recorded.call_id, Some(CallId::new("wacid.OUT")));

    let again = l.handle(t(2), req(&connect("15550002222")), CallId::new("wacid.OUT2"));
    let r = refused(&again);
    assert_eq!((r.rule, r.code), (Rule::DuplicateCall, ErrorCode::DuplicateCall));
    // The user who is calling us is on a call too.
    assert_eq!(refused(&l.handle(t(2), req(&connect(USER)), CallId::new("wacid.X"))).rule, Rule::DuplicateCall);
    assert_eq!(refused(&l.handle(t(2), req(&connect("+1555")), CallId::new("wacid.X"))).rule, Rule::MalformedRequest);

    // Only terminate applies to a call the business placed.
    let accept = serde_json::to_vec(&json!({ "messaging_product": "whatsapp", "call_id": "wacid.OUT", "action": "accept",
                                             "session": { "sdp_type": "answer", "sdp": answer(1) } }))
    .unwrap();
    assert_eq!(refused(&send(&mut l, 3, &accept)).rule, Rule::NotUserInitiated);
    let end = serde_json::to_vec(&json!({ "messaging_product": "whatsapp", "call_id": "wacid.OUT", "action": "terminate" })).unwrap();
    assert_eq!(send(&mut l, 4, &end).reply, Reply::Success);
    assert_eq!(l.state(&CallId::new("wacid.OUT")), Some(CallState::Terminated));
}

#[test]
fn a_request_for_another_numbers_call_is_refused() {
    let mut l = Ledger::new(TOKEN, [(PhoneNumberId::new(NUMBER), "+1".to_owned()), (PhoneNumberId::new("222"), "+2".to_owned())]);
    l.offer(CallId::new(CALL), PhoneNumberId::new(NUMBER), WaId::new(USER), META_OFFER_2025).unwrap();
    let b = body("terminate", None);
    let h = l.handle(t(1), GraphRequest { phone_number_id: "222", ..req(&b) }, CallId::new("wacid.F"));
    assert_eq!(refused(&h).rule, Rule::WrongNumber);
}

#[test]
fn offers_are_checked_when_the_call_is_placed() {
    let mut l = ledger();
    let dup = l.offer(CallId::new(CALL), PhoneNumberId::new(NUMBER), WaId::new(USER), META_OFFER_2025);
    assert_eq!(dup, Err(LedgerError::DuplicateCallId(CallId::new(CALL))));
    let unknown = l.offer(CallId::new("wacid.2"), PhoneNumberId::new("1"), WaId::new(USER), META_OFFER_2025);
    assert!(matches!(unknown, Err(LedgerError::UnknownNumber(_))));
    let bad = l.offer(CallId::new("wacid.3"), PhoneNumberId::new(NUMBER), WaId::new(USER), "v=0\r\n");
    assert!(matches!(bad, Err(LedgerError::BadOffer(_))));
}

#[test]
fn media_before_accept_is_a_violation() {
    let mut l = ledger();
    l.media_before_accept(t(1), &CallId::new(CALL), "first audio 120 ms before accept");
    assert_eq!(l.violations_of(&CallId::new(CALL))[0].rule, Rule::MediaBeforeAccept);
}
