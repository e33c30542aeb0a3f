use super::*;
use crate::config::Settings;
use crate::ids::TrunkId;
use crate::routing::ring::GroupName;
use crate::sip::registrar::unix_now;
use crate::store::{Binding, RegistrationChange};
use std::time::Duration;

fn user(name: &str) -> MemberTarget {
    MemberTarget::User(UserName::new(name))
}

fn ext(trunk: &str, extension: &str) -> MemberTarget {
    MemberTarget::Trunk { trunk: TrunkId::new(trunk), extension: extension.into() }
}

/// A presence on the store in `dir`, which an earlier one in the same test may just have released.
fn presence(dir: &std::path::Path) -> Arc<Presence> {
    Presence::load(crate::store::reopen(dir).unwrap()).unwrap()
}

#[test]
fn busy_counts_each_call_and_clears_at_the_last_end() {
    let dir = tempfile::tempdir().unwrap();
    let p = presence(dir.path());
    let (a, b) = (user("1001"), ext("pbx", "2001"));
    let t0 = Instant::now();
    assert!(!p.busy(&a));
    p.call_started(&a);
    p.call_started(&a);
    p.call_started(&b);
    assert!(p.busy(&a) && p.busy(&b));
    p.call_ended(&a, t0);
    assert!(p.busy(&a), "still on its second call");
    p.call_ended(&a, t0 + Duration::from_secs(1));
    assert!(!p.busy(&a));
    assert!(p.busy(&b), "another member's call is its own");
    p.call_ended(&b, t0);
    assert!(!p.busy(&b));
    // An end without a start (the caller's slip) leaves the member idle, not negative:
    // the next call makes it busy again.
    p.call_ended(&a, t0);
    p.call_started(&a);
    assert!(p.busy(&a));
}

#[test]
fn call_ends_feed_longest_idle_memory() {
    use crate::routing::ring::{Command, Member, Output, RingGroup, RingRun, Strategy};
    let dir = tempfile::tempdir().unwrap();
    let p = presence(dir.path());
    let t0 = Instant::now();
    let (a, b) = (user("1001"), user("1002"));
    for m in [&a, &b] {
        p.call_started(m);
    }
    // 1002 hung up first, so it has been idle longest and rings first.
    p.call_ended(&b, t0);
    p.call_ended(&a, t0 + Duration::from_secs(30));
    let member = |target: &MemberTarget| Member { target: target.clone(), ring_for: Duration::from_secs(10), start_after: Duration::ZERO };
    let group = RingGroup {
        name: GroupName::new("desk"),
        strategy: Strategy::LongestIdle,
        members: vec![member(&a), member(&b)],
        ring_timeout: Duration::from_secs(60),
        skip_busy: true,
        allow_call_waiting: false,
    };
    let snapshot: AvailabilitySnapshot = [(a.clone(), Availability::AVAILABLE), (b.clone(), Availability::AVAILABLE)].into_iter().collect();
    let now = t0 + Duration::from_secs(60);
    let mut run = p.with_memory(|memory| RingRun::start(&group, &snapshot, memory, now, 0));
    match run.poll_output() {
        Output::Command(Command::Ring { target, .. }) => assert_eq!(target, b),
        other => panic!("expected the first ring, got {other:?}"),
    }
}

#[tokio::test]
async fn dnd_is_persisted_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (UserName::new("1001"), UserName::new("1002"));
    {
        let p = presence(dir.path());
        assert!(!p.dnd(&alice));
        p.set_dnd(&alice, true).await.unwrap();
        p.set_dnd(&bob, true).await.unwrap();
        p.set_dnd(&bob, false).await.unwrap();
        assert!(p.dnd(&alice) && !p.dnd(&bob));
    }
    let p = presence(dir.path());
    assert!(p.dnd(&alice), "on across a restart");
    assert!(!p.dnd(&bob), "turned off before the restart, stays off");
    p.set_dnd(&alice, false).await.unwrap();
    drop(p);
    assert!(!presence(dir.path()).dnd(&alice));
}

#[test]
fn trunks_are_usable_unregistered_only_when_they_do_not_register() {
    assert!(trunk_usable(&TrunkRegistrationState::Disabled));
    assert!(trunk_usable(&TrunkRegistrationState::Registered { expires_in: 600 }));
    assert!(!trunk_usable(&TrunkRegistrationState::Registering));
    assert!(!trunk_usable(&TrunkRegistrationState::Failed { reason: "403".into(), retry_in: 5 }));
}

/// A real SIP stack on a loopback port: 1001 registered (a stored binding the registrar restores),
/// 1002 not; trunk `open` does not register, trunk `reg` registers to a PBX that never answers.
async fn stack(dir: &std::path::Path) -> (Arc<Presence>, SipStack) {
    let toml = format!(
        r#"data_dir = "{data}"
[sip]
listen_udp = "127.0.0.1:0"
listen_tcp = ""
[[sip.users]]
name = "1001"
password = "secret1001"
[[sip.users]]
name = "1002"
password = "secret1002"
[[sip.trunks]]
name = "open"
address = "127.0.0.1:9"
[[sip.trunks]]
name = "reg"
address = "127.0.0.1:9"
username = "whatsip"
password = "secret"
register = true
"#,
        data = dir.display()
    );
    let settings: Settings = toml::from_str(&toml).unwrap();
    settings.validate().unwrap();
    let store = Store::open(dir).unwrap();
    let now = unix_now();
    let binding = Binding {
        user: UserName::new("1001"),
        contact: "sip:1001@127.0.0.1:5062".into(),
        expires_at: now + 600,
        registered_at: now,
        call_id: "cid".into(),
        cseq: 1,
        source: "127.0.0.1:5062".into(),
        transport: "udp".into(),
        user_agent: None,
    };
    store.apply_registrations(&[RegistrationChange::Upsert(binding)]).await.unwrap();
    let p = Presence::load(store.clone()).unwrap();
    let sip = SipStack::start(Arc::new(settings), store, p.clone()).await.unwrap();
    (p, sip)
}

#[tokio::test]
async fn snapshot_combines_registrations_trunk_state_dnd_busy_and_hours() {
    let dir = tempfile::tempdir().unwrap();
    let (p, sip) = stack(dir.path()).await;
    p.set_dnd(&UserName::new("1001"), true).await.unwrap();
    p.call_started(&ext("open", "2001"));
    let members = [
        (user("1001"), true),
        (user("1002"), true),
        (user("9999"), true),
        (ext("open", "2001"), false),
        (ext("open", "2002"), true),
        (ext("reg", "3001"), true),
        (ext("nowhere", "1"), true),
        (MemberTarget::Group(GroupName::new("sales")), true),
    ];
    let snap = p.snapshot(&members, &sip).await;
    let a = |registered, busy, dnd, in_hours| Some(Availability { registered, busy, dnd, in_hours });
    let get = |t: &MemberTarget| snap.get(t).copied();
    assert_eq!(get(&user("1001")), a(true, false, true, true), "registered, on DND");
    assert_eq!(get(&user("1002")), a(false, false, false, true), "configured, not registered");
    assert_eq!(get(&user("9999")), a(false, false, false, true), "unknown users have no registration");
    assert_eq!(get(&ext("open", "2001")), a(true, true, false, false), "busy, out of hours as the caller said");
    assert_eq!(get(&ext("open", "2002")), a(true, false, false, true), "busy is per extension");
    assert_eq!(get(&ext("reg", "3001")), a(false, false, false, true), "not registered to its PBX yet");
    assert_eq!(get(&ext("nowhere", "1")), a(false, false, false, true), "no such trunk");
    assert_eq!(get(&MemberTarget::Group(GroupName::new("sales"))), None, "groups are flattened by the caller");
}

#[tokio::test]
async fn users_lists_every_configured_user_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (p, sip) = stack(dir.path()).await;
    p.set_dnd(&UserName::new("1002"), true).await.unwrap();
    p.set_dnd(&UserName::new("9999"), true).await.unwrap();
    p.call_started(&user("1001"));
    let list = p.users(&sip).await;
    assert_eq!(
        list,
        [
            UserPresence {
                user: UserName::new("1001"),
                registered: true,
                contacts: vec!["sip:1001@127.0.0.1:5062".into()],
                dnd: false,
                busy: true,
            },
            UserPresence { user: UserName::new("1002"), registered: false, contacts: vec![], dnd: true, busy: false },
        ]
    );
    let json = serde_json::to_value(&list[1]).unwrap();
    assert_eq!(json, serde_json::json!({"user": "1002", "registered": false, "contacts": [], "dnd": true, "busy": false}));
}
