//! The registrar's shell: turns a REGISTER into a [`RegisterRequest`] for the pure
//! [`Location`], authenticates it, persists the result and answers. Also checks digest
//! credentials on INVITEs from phones and PBXs.

use super::digest::{Algorithm, DigestAnswer, DigestError, DigestServer};
use super::location::{Contacts, ExpiryPolicy, Location, RegisterError, RegisterRequest};
use super::throttle::{AuthThrottle, ThrottlePolicy, Verdict};
use crate::config::Settings;
use crate::ids::UserName;
use crate::store::{Binding, RegistrationChange, Store, StoreError};
use ezk_sip_core::IncomingRequest;
use ezk_sip_types::header::typed::{AuthResponse, Contact};
use ezk_sip_types::print::AppendCtx;
use ezk_sip_types::uri::SipUriUserPart;
use ezk_sip_types::{Name, StatusCode};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex as SyncMutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// A response the shell should send: status, reason and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: u16,
    pub reason: String,
    pub headers: Vec<(Name, String)>,
}

impl Reply {
    pub fn new(code: u16, reason: impl Into<String>) -> Reply {
        Reply { code, reason: reason.into(), headers: Vec::new() }
    }

    pub fn with(mut self, name: Name, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from(self.code)
    }
}

/// Who a request was authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authenticated {
    User(UserName),
    Trunk(crate::ids::TrunkId),
}

pub struct Registrar {
    digest: DigestServer,
    users: HashMap<UserName, String>,
    trunk_credentials: HashMap<String, (crate::ids::TrunkId, String)>,
    policy: ExpiryPolicy,
    location: Mutex<Location>,
    throttle: SyncMutex<AuthThrottle>,
    store: Store,
}

impl Registrar {
    /// Restores bindings from the store (dropping the ones that expired while we were down).
    pub async fn new(settings: &Settings, store: Store) -> Result<Registrar, StoreError> {
        let now = unix_now();
        let (location, expired) = Location::restore(store.registrations()?, now);
        store.apply_registrations(&expired).await?;
        let algorithms = settings
            .sip
            .auth_algorithms
            .iter()
            .filter_map(|a| Algorithm::from_name(a))
            .collect();
        let users = settings
            .sip
            .users
            .iter()
            .map(|u| (UserName::new(&u.name), u.password.clone()))
            .collect();
        let trunk_credentials = settings
            .sip
            .trunks
            .iter()
            .filter(|t| t.accept_inbound)
            .filter_map(|t| {
                let user = t.inbound_username.clone()?;
                Some((user, (crate::ids::TrunkId::new(&t.name), t.inbound_password.clone()?)))
            })
            .collect();
        let s = &settings.sip;
        Ok(Registrar {
            digest: DigestServer::new(&s.realm, algorithms, rand::random()),
            users,
            trunk_credentials,
            policy: ExpiryPolicy { min: s.min_expires, max: s.max_expires, default: s.default_expires },
            location: Mutex::new(location),
            throttle: SyncMutex::new(AuthThrottle::new(ThrottlePolicy {
                max_failures: s.auth_max_failures,
                window: Duration::from_secs(s.auth_window_seconds.into()),
                block: Duration::from_secs(s.auth_block_seconds.into()),
            })),
            store,
        })
    }

    pub async fn bindings(&self, user: &UserName) -> Vec<Binding> {
        self.location.lock().await.lookup(user, unix_now())
    }

    pub async fn all_bindings(&self) -> Vec<Binding> {
        self.location.lock().await.all(unix_now())
    }

    pub fn is_user(&self, user: &UserName) -> bool {
        self.users.contains_key(user)
    }

    /// Removes expired bindings; called periodically by the endpoint's housekeeping task.
    pub async fn housekeeping(&self) {
        let now = unix_now();
        let expired = self.location.lock().await.expire(now);
        if let Err(e) = self.store.apply_registrations(&expired).await {
            tracing::error!(error = %e, "cannot persist expired registrations");
        }
        self.throttle.lock().expect("throttle lock").prune(Instant::now());
    }

    /// Handles a REGISTER; the reply is sent by the caller.
    pub async fn register(&self, req: &IncomingRequest) -> Reply {
        let user = match uri_user(&req.base_headers.to.uri.uri.user_part) {
            Some(u) => UserName::new(u),
            None => return Reply::new(400, "To header has no user"),
        };
        let who = match self.authenticate(req, Name::AUTHORIZATION, "REGISTER") {
            Ok(Authenticated::User(u)) if u == user => u,
            Ok(_) => return Reply::new(403, "Credentials do not match the To user"),
            Err(reply) => return reply,
        };
        let contacts = match parse_contacts(req) {
            Ok(c) => c,
            Err(reason) => return Reply::new(400, reason),
        };
        let expires_header = match req.headers.get_raw(&Name::EXPIRES).next() {
            None => None,
            Some(v) => match v.trim().parse::<u32>() {
                Ok(v) => Some(v),
                Err(_) => return Reply::new(400, "Expires is not a number"),
            },
        };
        let request = RegisterRequest {
            user: who.clone(),
            contacts,
            expires_header,
            call_id: req.base_headers.call_id.0.to_string(),
            cseq: req.base_headers.cseq.cseq,
            source: req.tp_info.source.to_string(),
            transport: req.base_headers.via[0].transport.to_ascii_lowercase(),
            user_agent: req.headers.get_raw(&Name::USER_AGENT).next().map(|v| v.to_string()),
        };

        let now = unix_now();
        let mut location = self.location.lock().await;
        let before = location.lookup(&who, 0);
        let changes = match location.register(now, &request, self.policy) {
            Ok(changes) => changes,
            Err(e @ RegisterError::IntervalTooBrief { min }) => {
                return Reply::new(423, e.to_string()).with(Name::MIN_EXPIRES, min.to_string())
            }
            Err(e @ RegisterError::TooManyContacts) => return Reply::new(403, e.to_string()),
            Err(e) => return Reply::new(400, e.to_string()),
        };
        // Answer only once the change is on disk: a phone told "registered" must stay so
        // across a crash. On failure put the user's bindings back as they were.
        if let Err(e) = self.store.apply_registrations(&changes).await {
            tracing::error!(error = %e, user = %who, "cannot persist registration");
            location.replace_user(&who, before);
            return Reply::new(500, "Cannot store the registration");
        }
        let current = location.lookup(&who, now);
        drop(location);
        for change in &changes {
            match change {
                RegistrationChange::Upsert(b) => tracing::info!(user = %who, contact = %b.contact, expires_in = b.expires_at - now, "registered"),
                RegistrationChange::Remove { contact, .. } => tracing::info!(user = %who, %contact, "unregistered"),
            }
        }
        let mut reply = Reply::new(200, "OK");
        for b in &current {
            reply = reply.with(Name::CONTACT, format!("<{}>;expires={}", b.contact, b.expires_at.saturating_sub(now)));
        }
        reply.with(Name::DATE, httpdate_now())
    }

    /// Checks the digest answer in `header` (Authorization or Proxy-Authorization) against
    /// users and trunk credentials. Errors are the reply to send: a challenge, 403, or the
    /// throttle's refusal.
    pub fn authenticate(&self, req: &IncomingRequest, header: Name, method: &str) -> Result<Authenticated, Reply> {
        let source = req.tp_info.source.ip();
        let challenge_name = if header == Name::AUTHORIZATION { Name::WWW_AUTHENTICATE } else { Name::PROXY_AUTHENTICATE };
        let code = if header == Name::AUTHORIZATION { 401 } else { 407 };
        if let Verdict::Blocked { retry_after } = self.throttle.lock().expect("throttle lock").check(Instant::now(), source) {
            return Err(Reply::new(403, "Too many failed authentications").with(Name::RETRY_AFTER, retry_after.as_secs().max(1).to_string()));
        }
        let challenge = |stale: bool| {
            let mut reply = Reply::new(code, if code == 401 { "Unauthorized" } else { "Proxy Authentication Required" });
            for c in self.digest.challenges(unix_now(), stale) {
                reply = reply.with(challenge_name.clone(), c);
            }
            reply
        };
        let answer = match digest_answer(req, &header, self.digest.realm()) {
            None => return Err(challenge(false)),
            Some(Err(())) => return Err(Reply::new(400, "Malformed authorization header")),
            Some(Ok(a)) => a,
        };
        let (who, password) = if let Some(pw) = self.users.get(&UserName::new(&answer.username)) {
            (Authenticated::User(UserName::new(&answer.username)), pw.as_str())
        } else if let Some((trunk, pw)) = self.trunk_credentials.get(&answer.username) {
            (Authenticated::Trunk(trunk.clone()), pw.as_str())
        } else {
            return Err(self.failed(source, &answer.username, "unknown user"));
        };
        match self.digest.verify(unix_now(), method, &answer, password) {
            Ok(()) => {
                self.throttle.lock().expect("throttle lock").record_success(source);
                Ok(who)
            }
            Err(DigestError::StaleNonce) => Err(challenge(true)),
            Err(DigestError::ForeignNonce) => Err(challenge(false)),
            Err(e) => Err(self.failed(source, &answer.username, &e.to_string())),
        }
    }

    fn failed(&self, source: IpAddr, username: &str, why: &str) -> Reply {
        let blocked = self.throttle.lock().expect("throttle lock").record_failure(Instant::now(), source);
        tracing::warn!(%source, username, why, blocked, "authentication failed");
        Reply::new(403, "Wrong user name or password")
    }
}

fn uri_user(part: &SipUriUserPart) -> Option<&str> {
    match part {
        SipUriUserPart::Empty => None,
        SipUriUserPart::User(u) => Some(u),
        SipUriUserPart::UserPw(u) => Some(&u.user),
    }
}

pub fn request_uri_user(req: &IncomingRequest) -> Option<String> {
    uri_user(&req.line.uri.user_part).map(str::to_string)
}

fn parse_contacts(req: &IncomingRequest) -> Result<Contacts, &'static str> {
    let raw: Vec<_> = req.headers.get_raw(&Name::CONTACT).collect();
    if raw.is_empty() {
        return Ok(Contacts::Query);
    }
    if raw.iter().any(|v| v.trim() == "*") {
        return if raw.len() == 1 { Ok(Contacts::Star) } else { Err("Contact: * must stand alone") };
    }
    let contacts: Vec<Contact> = req.headers.get_named().map_err(|_| "Contact header does not parse")?;
    Ok(Contacts::List(
        contacts
            .iter()
            .map(|c| {
                let expires = c.params.get_val("expires").and_then(|v| v.parse().ok());
                (c.uri.uri.default_print_ctx().to_string(), expires)
            })
            .collect(),
    ))
}

fn digest_answer(req: &IncomingRequest, header: &Name, realm: &str) -> Option<Result<DigestAnswer, ()>> {
    let raw: Vec<_> = req.headers.get_raw(header).collect();
    if raw.is_empty() {
        return None;
    }
    // A phone may carry answers for several realms (proxies on the way); ours is the one.
    let responses: Vec<AuthResponse> = match req.headers.get(header.clone()) {
        Ok(r) => r,
        Err(_) => return Some(Err(())),
    };
    let digest = responses.into_iter().find_map(|r| match r {
        AuthResponse::Digest(d) if d.realm == realm => Some(d),
        _ => None,
    });
    let d = digest?;
    let username = match &d.username {
        ezk_sip_types::header::typed::Username::Username(u) => u.to_string(),
        ezk_sip_types::header::typed::Username::UsernameNonASCII(u) => u.to_string(),
    };
    Some(Ok(DigestAnswer {
        username,
        realm: d.realm.to_string(),
        nonce: d.nonce.to_string(),
        uri: d.uri.to_string(),
        response: d.response.to_string(),
        algorithm: d.algorithm.to_string(),
        qop: d.qop_response.map(|q| (q.qop.to_string(), format!("{:08x}", q.nc), q.cnonce.to_string())),
    }))
}

fn httpdate_now() -> String {
    // RFC 3261 §20.17 wants RFC 1123 dates in GMT; some phones set their clock from it.
    let secs = unix_now();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let (y, mo, d) = civil_from_days(days as i64);
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][(mo - 1) as usize];
    format!("{weekday}, {d:02} {month} {y} {h:02}:{m:02}:{s:02} GMT")
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_415), (2025, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
