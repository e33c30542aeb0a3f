use super::*;
use crate::ids::{PhoneNumberId, WaId};
use crate::whatsapp::event::*;
use std::time::UNIX_EPOCH;

const T0: u64 = 1_700_000_000;

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn connect(call: &str, ts: u64) -> WaEvent {
    WaEvent::Connect(CallConnect {
        call_id: CallId::new(call),
        phone_number_id: PhoneNumberId::new("42"),
        display_phone_number: None,
        from: WaId::new("16315553602"),
        to: WaId::new("16315553601"),
        direction: Direction::UserInitiated,
        timestamp: at(ts),
        session: Some((SdpType::Offer, Sdp::new("v=0\r\n"))),
        caller_name: None,
        deeplink_payload: None,
        cta_payload: None,
        biz_opaque_callback_data: None,
    })
}

fn terminate(call: &str, ts: u64) -> WaEvent {
    WaEvent::Terminate(CallTerminate {
        call_id: CallId::new(call),
        phone_number_id: PhoneNumberId::new("42"),
        from: None,
        to: None,
        direction: Direction::UserInitiated,
        timestamp: at(ts),
        status: Some(TerminateStatus::Completed),
        start_time: None,
        end_time: None,
        duration_seconds: None,
        errors: Vec::new(),
        biz_opaque_callback_data: None,
    })
}

fn status(call: &str, status: CallStatus, ts: u64) -> WaEvent {
    WaEvent::Status(CallStatusUpdate {
        call_id: CallId::new(call),
        phone_number_id: PhoneNumberId::new("42"),
        timestamp: at(ts),
        status,
        recipient: None,
        biz_opaque_callback_data: None,
    })
}

fn permission(id: &str, ts: u64) -> WaEvent {
    WaEvent::PermissionReply(PermissionReply {
        phone_number_id: PhoneNumberId::new("42"),
        user: WaId::new("16315553602"),
        message_id: MessageId::new(id),
        timestamp: at(ts),
        response: PermissionResponse::Accept,
        is_permanent: false,
        expires: None,
        source: None,
        context: None,
    })
}

fn ingress() -> Ingress {
    Ingress::new(IngressConfig::default())
}

#[test]
fn duplicate_delivery_is_dropped() {
    let mut ing = ingress();
    let now = at(T0 + 2);
    assert_eq!(ing.admit(now, &connect("wacid.1", T0)), Verdict::Deliver);
    // Meta timed out on our answer and sent it again (§2.1: ~20 s).
    assert_eq!(ing.admit(at(T0 + 22), &connect("wacid.1", T0)), Verdict::Duplicate);
    // Same call, a new timestamp: still the one connect of that call.
    assert_eq!(ing.admit(at(T0 + 23), &connect("wacid.1", T0 + 5)), Verdict::RepeatedConnect);
    assert_eq!(ing.admit(now, &status("wacid.2", CallStatus::Ringing, T0)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &status("wacid.2", CallStatus::Ringing, T0)), Verdict::Duplicate);
    assert_eq!(ing.admit(now, &permission("wamid.1", T0)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &permission("wamid.1", T0)), Verdict::Duplicate);
    assert_eq!(ing.admit(now, &permission("wamid.2", T0)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &terminate("wacid.1", T0 + 1)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &terminate("wacid.1", T0 + 1)), Verdict::Duplicate);
    assert_eq!(ing.admit(now, &terminate("wacid.1", T0 + 2)), Verdict::RepeatedTerminate);
}

#[test]
fn terminate_before_connect_starts_no_call() {
    let mut ing = ingress();
    // The user hung up at once and the connect delivery was retried: terminate comes first.
    assert_eq!(ing.admit(at(T0 + 1), &terminate("wacid.1", T0 + 1)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0 + 20), &connect("wacid.1", T0)), Verdict::ConnectAfterTerminate);
    // Another call is not affected.
    assert_eq!(ing.admit(at(T0 + 20), &connect("wacid.2", T0 + 19)), Verdict::Deliver);
    // The tombstone outlives the connect's usefulness: a connect that late is stale anyway.
    assert_eq!(
        ing.admit(at(T0 + 300), &connect("wacid.1", T0 + 2)),
        Verdict::Stale { age: Duration::from_secs(298), max_age: Duration::from_secs(60) }
    );
}

#[test]
fn reordered_status_events_only_move_forward() {
    let mut ing = ingress();
    let now = at(T0 + 10);
    assert_eq!(ing.admit(now, &status("wacid.1", CallStatus::Accepted, T0 + 5)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &status("wacid.1", CallStatus::Ringing, T0 + 1)), Verdict::StatusRegressed);
    // An undocumented status has no known place: it goes through.
    assert_eq!(ing.admit(now, &status("wacid.1", CallStatus::Other("WEIRD".into()), T0 + 2)), Verdict::Deliver);

    // REJECTED overtaken by its terminate still goes through (it is the outcome); RINGING does not.
    assert_eq!(ing.admit(now, &terminate("wacid.2", T0 + 6)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &status("wacid.2", CallStatus::Ringing, T0 + 1)), Verdict::StatusRegressed);
    assert_eq!(ing.admit(now, &status("wacid.2", CallStatus::Rejected, T0 + 5)), Verdict::Deliver);

    // In order, everything goes through.
    assert_eq!(ing.admit(now, &status("wacid.3", CallStatus::Ringing, T0 + 1)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &status("wacid.3", CallStatus::Ringing, T0 + 2)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &status("wacid.3", CallStatus::Accepted, T0 + 3)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &terminate("wacid.3", T0 + 9)), Verdict::Deliver);
}

#[test]
fn stale_events_are_dropped_but_permission_replies_never_are() {
    let mut ing = ingress();
    let now = at(T0 + 3600);
    assert_eq!(
        ing.admit(now, &terminate("wacid.1", T0)),
        Verdict::Stale { age: Duration::from_secs(3600), max_age: Duration::from_secs(600) }
    );
    assert!(matches!(ing.admit(now, &status("wacid.1", CallStatus::Ringing, T0)), Verdict::Stale { .. }));
    assert!(matches!(ing.admit(now, &connect("wacid.2", T0 + 3600 - 61)), Verdict::Stale { .. }));
    assert_eq!(ing.admit(now, &connect("wacid.3", T0 + 3600 - 60)), Verdict::Deliver);
    assert_eq!(ing.admit(now, &permission("wamid.1", T0)), Verdict::Deliver);
    // A clock behind Meta's makes events look like they come from the future: not stale.
    assert_eq!(ing.admit(now, &connect("wacid.4", T0 + 3700)), Verdict::Deliver);
}

#[test]
fn entries_expire_after_the_window_and_late_redeliveries_are_stale() {
    let mut ing = ingress();
    assert_eq!(ing.admit(at(T0), &connect("wacid.1", T0)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0), &status("wacid.2", CallStatus::Ringing, T0)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0), &terminate("wacid.3", T0)), Verdict::Deliver);
    assert_eq!(ing.len(), 6, "three events and three calls remembered");

    // One window later all is forgotten; what Meta could still redeliver is stale by then.
    let later = at(T0 + 601);
    assert!(matches!(ing.admit(later, &status("wacid.2", CallStatus::Ringing, T0)), Verdict::Stale { .. }));
    assert!(ing.is_empty(), "{ing:?}");
    assert!(matches!(ing.admit(later, &connect("wacid.3", T0)), Verdict::Stale { .. }));

    // An event stamped in the future is remembered until one window after its own time.
    assert_eq!(ing.admit(at(T0 + 1000), &permission("wamid.1", T0 + 1500)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0 + 1700), &permission("wamid.1", T0 + 1500)), Verdict::Duplicate);
    assert_eq!(ing.admit(at(T0 + 2101), &permission("wamid.1", T0 + 1500)), Verdict::Deliver);
}

#[test]
fn memory_is_capped() {
    let mut ing = Ingress::new(IngressConfig { max_entries: 3, ..IngressConfig::default() });
    for i in 0..10 {
        let call = format!("wacid.{i}");
        assert_eq!(ing.admit(at(T0 + i), &connect(&call, T0 + i)), Verdict::Deliver);
        assert!(ing.len() <= 6, "{}", ing.len());
    }
    // The newest calls are still known; the oldest were let go first.
    assert_eq!(ing.admit(at(T0 + 10), &connect("wacid.9", T0 + 9)), Verdict::Duplicate);
    assert_eq!(ing.admit(at(T0 + 10), &connect("wacid.0", T0)), Verdict::Deliver);
}

#[test]
fn a_clock_going_backwards_does_not_break_it() {
    let mut ing = Ingress::new(IngressConfig { max_entries: 2, ..IngressConfig::default() });
    assert_eq!(ing.admit(at(T0 + 100), &connect("wacid.1", T0 + 100)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0 + 100), &connect("wacid.2", T0 + 100)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0), &connect("wacid.3", T0)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0), &terminate("wacid.3", T0)), Verdict::Deliver);
    assert_eq!(ing.admit(at(T0), &connect("wacid.3", T0 + 1)), Verdict::ConnectAfterTerminate);
}
