use super::*;

const CONNECT: &str = include_str!("../../../tests/fixtures/whatsapp/connect.json");
const TERMINATE: &str = include_str!("../../../tests/fixtures/whatsapp/terminate.json");
const STATUS: &str = include_str!("../../../tests/fixtures/whatsapp/status.json");
const PERMISSION: &str = include_str!("../../../tests/fixtures/whatsapp/permission_reply.json");

fn at(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

fn one(body: &str) -> WaEvent {
    let n = parse_notification(body.as_bytes()).unwrap();
    assert!(n.skipped.is_empty(), "{:?}", n.skipped);
    assert_eq!(n.events.len(), 1, "{:?}", n.events);
    n.events.into_iter().next().unwrap()
}

#[test]
fn user_initiated_connect_from_the_doc() {
    let WaEvent::Connect(c) = one(CONNECT) else { panic!() };
    assert_eq!(c.call_id, CallId::new("wacid.ABGGFjFVU2AfAgo6V-Hc5eCgK5Gh"));
    assert_eq!(c.phone_number_id, PhoneNumberId::new("106540352242922"));
    assert_eq!(c.display_phone_number.as_deref(), Some("16315553601"));
    assert_eq!((c.from.as_str(), c.to.as_str()), ("16315553602", "16315553601"));
    assert_eq!(c.user(), &WaId::new("16315553602"));
    assert_eq!(c.direction, Direction::UserInitiated);
    assert_eq!(c.timestamp, at(1671644824));
    assert_eq!(c.caller_name.as_deref(), Some("Jane Caller"));
    assert_eq!(c.deeplink_payload.as_deref(), Some("deeplink_payload"));
    assert_eq!(c.cta_payload.as_deref(), Some("cta_payload"));
    let (kind, sdp) = c.session.unwrap();
    assert_eq!(kind, SdpType::Offer);
    // The offer is handed on byte for byte, CRLFs included.
    let raw: Value = serde_json::from_str(CONNECT).unwrap();
    let sent = raw["entry"][0]["changes"][0]["value"]["calls"][0]["session"]["sdp"].as_str().unwrap();
    assert_eq!(sdp.as_str(), sent);
    assert!(sdp.as_str().starts_with("v=0\r\n"));
}

#[test]
fn terminate_from_the_doc_carries_the_errors_beside_it() {
    let WaEvent::Terminate(t) = one(TERMINATE) else { panic!() };
    assert_eq!(t.status, Some(TerminateStatus::Failed));
    assert_eq!((t.start_time, t.end_time, t.duration_seconds), (Some(at(1671644824)), Some(at(1671644944)), Some(120)));
    assert!(t.answered());
    assert_eq!(t.biz_opaque_callback_data.as_deref(), Some("random_string"));
    assert_eq!(
        t.errors,
        vec![ReportedError {
            code: ErrorCode::MediaReceiveTimeout,
            message: Some("ERROR_TITLE".into()),
            details: Some("ERROR_DETAILS".into())
        }]
    );
}

#[test]
fn status_from_the_doc() {
    let WaEvent::Status(s) = one(STATUS) else { panic!() };
    assert_eq!(s.call_id, CallId::new("wacid.ABGGFjFVU2AfAgo6V"));
    assert_eq!(s.status, CallStatus::Ringing);
    assert_eq!(s.recipient, Some(WaId::new("16315553602")));
    assert_eq!(s.timestamp, at(1671644824));
}

#[test]
fn permission_reply_from_the_doc_on_the_messages_field() {
    let WaEvent::PermissionReply(p) = one(PERMISSION) else { panic!() };
    assert_eq!(p.user, WaId::new("16315553602"));
    assert_eq!(p.message_id, MessageId::new("wamid.sH0kFlaCGg0xcvZbgmg90lHrg2dL"));
    assert_eq!(p.response, PermissionResponse::Accept);
    assert!(!p.is_permanent);
    assert_eq!(p.expires, Some(at(1768550400)));
    assert_eq!(p.source, Some(PermissionSource::UserAction));
    assert_eq!(p.context, Some(PermissionContext::Request(MessageId::new("wamid.gBGGFlaCmZ9plHrf2Mh-o"))));
    assert_eq!(p.timestamp, at(1767168000));
}

fn envelope(field: &str, value: Value) -> String {
    serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "1", "changes": [{ "field": field, "value": value }] }]
    })
    .to_string()
}

#[test]
fn numbers_as_numbers_names_in_any_case_and_unknown_fields() {
    let body = envelope(
        "Calls",
        serde_json::json!({
            "metadata": { "phone_number_id": 106540352242922u64, "display_phone_number": 16315553601u64, "new_thing": [1] },
            "calls": [{
                "id": "wacid.A", "from": 16315553602u64, "to": "16315553601", "event": "TERMINATE",
                "timestamp": 1671644824, "direction": "business_initiated", "status": "Completed",
                "duration": "0", "brand_new_field": { "x": 1 }
            }],
            "statuses": [{ "id": "wacid.B", "type": "CALL", "status": "accepted", "timestamp": " 1671644825 " }]
        }),
    );
    let n = parse_notification(body.as_bytes()).unwrap();
    assert!(n.skipped.is_empty(), "{:?}", n.skipped);
    let [WaEvent::Terminate(t), WaEvent::Status(s)] = &n.events[..] else { panic!("{:?}", n.events) };
    assert_eq!(t.phone_number_id, PhoneNumberId::new("106540352242922"));
    assert_eq!(t.from, Some(WaId::new("16315553602")));
    assert_eq!(t.direction, Direction::BusinessInitiated);
    assert_eq!(t.status, Some(TerminateStatus::Completed));
    assert_eq!(t.timestamp, at(1671644824));
    assert!(t.answered(), "a duration, even 0, is only sent for answered calls");
    assert!(t.errors.is_empty());
    assert_eq!((s.status.clone(), s.timestamp), (CallStatus::Accepted, at(1671644825)));
}

#[test]
fn a_batch_keeps_its_good_items_and_reports_the_bad_ones() {
    let calls = |ids: &[(&str, &str)]| -> Value {
        ids.iter()
            .map(|(id, event)| serde_json::json!({ "id": id, "from": "1", "to": "2", "event": event, "timestamp": "100", "direction": "USER_INITIATED" }))
            .collect()
    };
    let value = |calls: Value| serde_json::json!({ "metadata": { "phone_number_id": "42" }, "calls": calls });
    let body = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [
            { "id": "1", "changes": [
                { "field": "calls", "value": value(calls(&[("wacid.1", "connect"), ("wacid.2", "call_created"), ("wacid.3", "terminate")])) },
                { "field": "calls", "value": { "metadata": {}, "calls": calls(&[("wacid.4", "connect")]) } },
            ]},
            { "id": "2", "changes": [
                { "field": "calls", "value": value(serde_json::json!([
                    { "from": "1", "to": "2", "event": "connect", "timestamp": "100" },
                    { "id": "wacid.6", "event": "connect", "timestamp": "soon", "from": "1", "to": "2" },
                    { "id": "wacid.7", "event": "terminate", "timestamp": 100 },
                ])) },
                { "field": "account_update", "value": { "event": "ACCOUNT_VIOLATION" } },
            ]},
        ]
    });
    let n = parse_notification(body.to_string().as_bytes()).unwrap();
    let got: Vec<(String, String)> =
        n.events.iter().map(|e| (e.call_id().unwrap().to_string(), e.kind())).collect();
    assert_eq!(
        got,
        [("wacid.1", "connect"), ("wacid.3", "terminate"), ("wacid.7", "terminate")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let skipped: Vec<&str> = n.skipped.iter().map(|s| s.place.as_str()).collect();
    assert_eq!(
        skipped,
        [
            "entry[0].changes[0].value.calls[1]",
            "entry[0].changes[1].value",
            "entry[1].changes[0].value.calls[0]",
            "entry[1].changes[0].value.calls[1]",
        ]
    );
    assert!(n.skipped[0].reason.contains("call_created"), "{}", n.skipped[0]);
    assert!(n.skipped[2].reason.contains("no id"), "{}", n.skipped[2]);
    assert!(n.skipped[3].reason.contains("soon"), "{}", n.skipped[3]);
    assert_eq!(n.ignored.len(), 1);
}

#[test]
fn ordinary_messaging_traffic_is_ignored_quietly() {
    let body = envelope(
        "messages",
        serde_json::json!({
            "metadata": { "phone_number_id": "42" },
            "messages": [{ "from": "1", "id": "wamid.x", "timestamp": "5", "type": "text", "text": { "body": "hi" } }],
            "statuses": [{ "id": "wamid.y", "status": "delivered", "timestamp": "6", "recipient_id": "1" }]
        }),
    );
    let n = parse_notification(body.as_bytes()).unwrap();
    assert!(n.events.is_empty() && n.skipped.is_empty());
    assert_eq!(n.ignored.len(), 2);
}

#[test]
fn automatic_callback_grant_refers_to_the_call() {
    let body = envelope(
        "messages",
        serde_json::json!({
            "metadata": { "phone_number_id": "42" },
            "messages": [{ "from": "1", "id": "wamid.x", "timestamp": 5,
                "context": { "id": "wacid.C" },
                "interactive": { "type": "CALL_PERMISSION_REPLY", "call_permission_reply": {
                    "response": "Accept", "is_permanent": "true", "response_source": "automatic" } } }]
        }),
    );
    let WaEvent::PermissionReply(p) = one(&body) else { panic!() };
    assert_eq!(p.context, Some(PermissionContext::Call(CallId::new("wacid.C"))));
    assert_eq!((p.response, p.is_permanent, p.expires), (PermissionResponse::Accept, true, None));
    assert_eq!(p.source, Some(PermissionSource::Automatic));
}

#[test]
fn a_session_without_sdp_type_takes_it_from_the_direction() {
    let body = envelope(
        "calls",
        serde_json::json!({
            "metadata": { "phone_number_id": "42" },
            "calls": [{ "id": "wacid.D", "from": "2", "to": "1", "event": "connect", "timestamp": "5",
                "direction": "BUSINESS_INITIATED", "session": { "sdp": "v=0\r\n" },
                "connection": { "webrtc": { "sdp": "{\"legacy\":true}" } } }]
        }),
    );
    let WaEvent::Connect(c) = one(&body) else { panic!() };
    assert_eq!(c.user(), &WaId::new("1"));
    assert_eq!(c.session.map(|(k, s)| (k, s.as_str().to_string())), Some((SdpType::Answer, "v=0\r\n".into())));
}

#[test]
fn bodies_that_are_not_notifications() {
    assert!(matches!(parse_notification(b"not json"), Err(ParseError::NotJson(_))));
    assert_eq!(parse_notification(b"[1,2]").unwrap_err(), ParseError::NotANotification);
    let n = parse_notification(br#"{"object":"page","entry":[]}"#).unwrap();
    assert!(n.events.is_empty() && n.ignored.len() == 1);
}
