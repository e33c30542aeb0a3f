//! The sandbox as a whole: [`Sandbox::start`] runs the fake Graph API, [`Sandbox::place_call`]
//! has a WhatsApp user call a business number, and [`SandboxCall`] follows and steers that call.
//!
//! Each call has one driver task that owns the user's [`WaPeer`]. It hears from the Graph side
//! (the ledger's effects: the business's answer, accept, the end of the call) and from the
//! [`SandboxCall`] (hang up, a digit, a report), and it does what Meta and the WhatsApp client
//! would: apply the answer once, start talking on accept and not before (§1.3), close the peer
//! and send the terminate webhook when the call ends (§2.5), end an unanswered call when the
//! answer window runs out (§1.3).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::config::{SandboxConfig, SandboxNumber};
use super::graph::{fresh_call_id, BusinessCall, CallLink, GraphServer, Inbox, MetaState, Progress};
use super::ledger::{CallState, Effect, Ending, Ledger, LedgerError, Party, RecordedAction, Violation};
use super::webhooks::{connect_body, terminate_body, ConnectWebhook, SendError, TerminateWebhook, WebhookSender};
use super::{AudioSource, WaPeer, WaPeerConfig, WaPeerError, WaPeerEvent, WaPeerReport};
use crate::ids::{CallId, PhoneNumberId, WaId};
use crate::whatsapp::ErrorCode;

/// §1.3: the business has about 30–60 s; the sandbox gives the most.
pub const DEFAULT_ANSWER_WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox Graph server on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("{0} is not one of the sandbox's numbers")]
    UnknownNumber(PhoneNumberId),
    #[error("the WhatsApp user's peer: {0}")]
    Peer(#[from] WaPeerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Webhook(#[from] SendError),
    #[error("no {want} within {limit:?}: the call is {state}")]
    Timeout { want: String, limit: Duration, state: CallState },
    #[error("the call ended ({state}, by {by:?}) without becoming {want}")]
    Ended { want: CallState, state: CallState, by: Option<Party> },
    #[error("the call's driver has stopped")]
    Stopped,
}

/// A simulated mobile network between the user and Meta.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Loss {
    /// Probability that a packet the user sends is lost.
    pub send: f64,
    /// Probability that a packet sent to the user is lost.
    pub receive: f64,
    pub seed: u64,
}

/// A call a WhatsApp user places to a business number.
#[derive(Debug, Clone)]
pub struct CallSpec {
    pub from: WaId,
    /// The profile name Meta shows (`contacts[].profile.name`); `None` sends no contacts.
    pub name: Option<String>,
    pub to: PhoneNumberId,
    /// What the user says once the call is accepted.
    pub source: AudioSource,
    pub loss: Loss,
    /// How long the business has to accept before Meta ends the call.
    pub answer_window: Duration,
    /// How many times the connect webhook is delivered (2 or more: Meta's redelivery, §2.1).
    pub connect_copies: u32,
    pub deeplink_payload: Option<String>,
    pub cta_payload: Option<String>,
}

impl CallSpec {
    /// "Sandbox User" (15550001111) calls `to`, saying a 1 kHz tone once answered.
    pub fn new(to: PhoneNumberId) -> CallSpec {
        CallSpec {
            from: WaId::new("15550001111"),
            name: Some("Sandbox User".to_owned()),
            to,
            source: AudioSource::Tone { hz: 1000.0, amplitude: 0.3 },
            loss: Loss::default(),
            answer_window: DEFAULT_ANSWER_WINDOW,
            connect_copies: 1,
            deeplink_payload: None,
            cta_payload: None,
        }
    }
}

/// What happened on a call, in order; for progress lines.
#[derive(Debug, Clone, PartialEq)]
pub enum SandboxEvent {
    /// The connect webhook got its 200 after `posts` POSTs.
    ConnectDelivered { posts: u32 },
    /// The business sent a Graph request about the call.
    Graph(Box<RecordedAction>),
    /// The user's peer took the business's answer.
    AnswerApplied,
    /// The user's peer has ICE and DTLS up.
    PeerConnected,
    /// The user heard the business's first audio packet.
    FirstAudio,
    /// The user heard a digit from the business.
    Digit(char),
    PeerProblem(String),
    TerminateDelivered { posts: u32 },
    TerminateUndelivered(String),
    /// The call is over and the user's peer closed.
    Ended { state: CallState, by: Party },
}

/// The sandbox: a fake Graph API and the WhatsApp users who call through it.
pub struct Sandbox {
    config: SandboxConfig,
    meta: Arc<MetaState>,
    graph: GraphServer,
    webhooks: WebhookSender,
}

impl Sandbox {
    /// Starts the Graph server on `config.graph_listen`, on the current tokio runtime.
    pub async fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let numbers = config.numbers.iter().map(|n| (n.phone_number_id.clone(), n.digits()));
        let meta = Arc::new(MetaState::new(Ledger::new(config.access_token.clone(), numbers)));
        let graph = GraphServer::start(config.graph_listen, meta.clone())
            .map_err(|source| SandboxError::Listen { addr: config.graph_listen, source })?;
        let webhooks = WebhookSender::new(&config.webhook_url, &config.app_secret, config.webhook_retry, config.accept_invalid_certs)?;
        Ok(Sandbox { config, meta, graph, webhooks })
    }

    /// `http://127.0.0.1:PORT`: the gateway's `whatsapp.graph_base_url`.
    pub fn graph_base_url(&self) -> String {
        format!("http://{}", self.graph.addr())
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The sender of Meta's webhooks, for raw, duplicated, reordered or badly signed bodies.
    pub fn webhooks(&self) -> &WebhookSender {
        &self.webhooks
    }

    /// Every broken rule, of every call and of requests about no known call.
    pub fn violations(&self) -> Vec<Violation> {
        self.meta.lock().ledger.violations().to_vec()
    }

    /// Requests about no known call (bad token, unknown number or call id, malformed).
    pub fn stray_requests(&self) -> Vec<RecordedAction> {
        self.meta.lock().ledger.stray().to_vec()
    }

    /// Calls the business placed with `connect`.
    pub fn business_calls(&self) -> Vec<BusinessCall> {
        self.meta.business_calls()
    }

    /// A WhatsApp user calls: makes the user's offer, registers the call with the Graph side,
    /// then delivers the signed connect webhook (§2.2). Returns once the gateway took it (200).
    pub async fn place_call(&self, spec: CallSpec) -> Result<SandboxCall, SandboxError> {
        self.place(spec, None).await
    }

    /// The same, for a WhatsApp user whose WebRTC stack lives outside the sandbox (aiortc in
    /// the tests): `offer` is that stack's SDP. The sandbox checks and records the business's
    /// Graph requests as for any call; the answer is in [`SandboxCall::actions`], and applying
    /// it, talking and listening are the outside stack's job.
    pub async fn place_call_with_offer(&self, spec: CallSpec, offer: &str) -> Result<SandboxCall, SandboxError> {
        self.place(spec, Some(offer)).await
    }

    async fn place(&self, spec: CallSpec, external_offer: Option<&str>) -> Result<SandboxCall, SandboxError> {
        let number = self
            .config
            .numbers
            .iter()
            .find(|n| n.phone_number_id == spec.to)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownNumber(spec.to.clone()))?;
        let peer_cfg = WaPeerConfig {
            bind_ip: self.config.peer_ip,
            source: spec.source.clone(),
            send_loss: spec.loss.send,
            receive_loss: spec.loss.receive,
            seed: spec.loss.seed,
            ..WaPeerConfig::default()
        };
        let (peer, offer) = match external_offer {
            Some(offer) => (None, offer.to_owned()),
            None => {
                let (peer, offer) = WaPeer::offer(peer_cfg).await?;
                (Some(peer), offer)
            }
        };
        let call_id = fresh_call_id();
        let (inbox_tx, inbox) = mpsc::unbounded_channel();
        let (progress_tx, progress) = watch::channel(Progress::offered());
        let registered = {
            let mut inner = self.meta.lock();
            inner.ledger.offer(call_id.clone(), spec.to.clone(), spec.from.clone(), &offer).map(|()| {
                inner.link(call_id.clone(), CallLink { inbox: inbox_tx, progress: progress_tx });
            })
        };
        if let Err(e) = registered {
            if let Some(peer) = peer {
                peer.close().await;
            }
            return Err(e.into());
        }
        let body = connect_body(&ConnectWebhook {
            phone_number_id: &spec.to,
            display_phone_number: &number.digits(),
            call_id: &call_id,
            from: &spec.from,
            name: spec.name.as_deref(),
            timestamp: SystemTime::now(),
            sdp: &offer,
            deeplink_payload: spec.deeplink_payload.as_deref(),
            cta_payload: spec.cta_payload.as_deref(),
        });
        let (events_tx, events) = mpsc::unbounded_channel();
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let driver = Driver::new(call_id.clone(), number, spec.from.clone(), peer, self.meta.clone(), self.webhooks.clone(), events_tx.clone());
        tokio::spawn(driver.run(inbox, commands_rx, tokio::time::Instant::now() + spec.answer_window));
        tracing::info!(%call_id, from = %spec.from, to = %spec.to, "sandbox: the user calls");

        let connect_sent_at = SystemTime::now();
        let call = SandboxCall { call_id, connect_body: body, connect_sent_at, commands, progress, events, meta: self.meta.clone() };
        for _ in 0..spec.connect_copies.max(1) {
            match self.webhooks.send(&call.connect_body).await {
                Ok(posts) => {
                    let _ = events_tx.send(SandboxEvent::ConnectDelivered { posts });
                }
                Err(e) => {
                    // The gateway never heard of the call: it ends without a terminate webhook.
                    let (tx, rx) = oneshot::channel();
                    let _ = call.commands.send(Command::Abandon(tx));
                    let _ = rx.await;
                    return Err(e.into());
                }
            }
        }
        Ok(call)
    }

    /// Stops the Graph server (calls' drivers end with their [`SandboxCall`]s).
    pub async fn stop(self) {
        self.graph.stop().await;
    }
}

/// One call from a WhatsApp user, as the test or the CLI steers it.
pub struct SandboxCall {
    call_id: CallId,
    connect_body: String,
    connect_sent_at: SystemTime,
    commands: mpsc::UnboundedSender<Command>,
    progress: watch::Receiver<Progress>,
    events: mpsc::UnboundedReceiver<SandboxEvent>,
    meta: Arc<MetaState>,
}

enum Command {
    HangUp(oneshot::Sender<WaPeerReport>),
    Dtmf(char, oneshot::Sender<Result<(), WaPeerError>>),
    Source(AudioSource, oneshot::Sender<Result<(), WaPeerError>>),
    Report(oneshot::Sender<Result<WaPeerReport, WaPeerError>>),
    /// The connect webhook never got through.
    Abandon(oneshot::Sender<()>),
}

impl SandboxCall {
    pub fn call_id(&self) -> &CallId {
        &self.call_id
    }

    /// The connect webhook's body exactly as delivered (to redeliver it, or reorder it).
    pub fn connect_body(&self) -> &str {
        &self.connect_body
    }

    /// When the first connect webhook POST started: the zero of the gateway's reaction times.
    pub fn connect_sent_at(&self) -> SystemTime {
        self.connect_sent_at
    }

    pub fn state(&self) -> CallState {
        self.progress.borrow().state
    }

    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Waits until the call has been in `want` (now or earlier; an accept without pre_accept
    /// counts as both). Fails at once if the call ended without getting there, and after
    /// `limit` otherwise. [`SandboxCall::actions`] tells exactly what the business sent.
    pub async fn wait_for_state(&self, want: CallState, limit: Duration) -> Result<(), SandboxError> {
        let p = self.wait(want.as_str(), limit, |p| reached(p, want) || p.state.is_final()).await?;
        if reached(&p, want) {
            Ok(())
        } else {
            Err(SandboxError::Ended { want, state: p.state, by: p.ended_by })
        }
    }

    /// Waits until the user's peer has ICE and DTLS up.
    pub async fn wait_for_peer_connected(&self, limit: Duration) -> Result<(), SandboxError> {
        self.wait("peer connection", limit, |p| p.peer_connected).await.map(drop)
    }

    /// Waits until the call is over on Meta's side: peer closed, terminate webhook sent.
    pub async fn wait_for_closed(&self, limit: Duration) -> Result<(), SandboxError> {
        self.wait("end of the call", limit, |p| p.closed).await.map(drop)
    }

    /// The next thing that happened on the call; `None` after `limit` or once the driver is gone.
    pub async fn next_event(&mut self, limit: Duration) -> Option<SandboxEvent> {
        tokio::time::timeout(limit, self.events.recv()).await.ok().flatten()
    }

    /// The user hangs up: the terminate webhook (with `start_time`/`duration` if the call was
    /// answered, §2.5), then the peer closes. Returns everything the user heard. On a call that
    /// has already ended, only returns the report.
    pub async fn hang_up(&self) -> Result<WaPeerReport, SandboxError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::HangUp(tx))?;
        rx.await.map_err(|_| SandboxError::Stopped)
    }

    /// The user presses a key (RFC 4733 in the audio stream, §5.3); sent only once talking.
    pub async fn dtmf(&self, digit: char) -> Result<(), SandboxError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Dtmf(digit, tx))?;
        Ok(rx.await.map_err(|_| SandboxError::Stopped)??)
    }

    /// What the user says from now on.
    pub async fn set_source(&self, source: AudioSource) -> Result<(), SandboxError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Source(source, tx))?;
        Ok(rx.await.map_err(|_| SandboxError::Stopped)??)
    }

    /// What the user heard and sent so far (or in all, once the call has ended).
    pub async fn report(&self) -> Result<WaPeerReport, SandboxError> {
        let (tx, rx) = oneshot::channel();
        self.command(Command::Report(tx))?;
        Ok(rx.await.map_err(|_| SandboxError::Stopped)??)
    }

    /// The business's Graph requests about this call, in order, with their SDP and outcome.
    pub fn actions(&self) -> Vec<RecordedAction> {
        self.meta.lock().ledger.actions(&self.call_id)
    }

    /// The rules the business broke on this call.
    pub fn violations(&self) -> Vec<Violation> {
        self.meta.lock().ledger.violations_of(&self.call_id)
    }

    fn command(&self, c: Command) -> Result<(), SandboxError> {
        self.commands.send(c).map_err(|_| SandboxError::Stopped)
    }

    async fn wait(&self, want: &str, limit: Duration, done: impl FnMut(&Progress) -> bool) -> Result<Progress, SandboxError> {
        let mut rx = self.progress.clone();
        let waited = tokio::time::timeout(limit, async { rx.wait_for(done).await.map(|p| p.clone()) }).await;
        match waited {
            Ok(Ok(p)) => Ok(p),
            Ok(Err(_)) => Err(SandboxError::Stopped),
            Err(_) => Err(SandboxError::Timeout { want: want.to_owned(), limit, state: self.state() }),
        }
    }
}

fn reached(p: &Progress, want: CallState) -> bool {
    p.reached.contains(&want) || (want == CallState::PreAccepted && p.reached.contains(&CallState::Accepted))
}

/// Owns one call's user peer and carries out what Meta and the WhatsApp client do.
struct Driver {
    call_id: CallId,
    number: SandboxNumber,
    user: WaId,
    peer: Option<WaPeer>,
    /// The peer's clock origin (the `at` of what it heard), read no earlier than the real one.
    peer_epoch: Instant,
    accepted_at: Option<Instant>,
    final_report: Option<WaPeerReport>,
    meta: Arc<MetaState>,
    webhooks: WebhookSender,
    events: mpsc::UnboundedSender<SandboxEvent>,
}

impl Driver {
    fn new(
        call_id: CallId,
        number: SandboxNumber,
        user: WaId,
        peer: Option<WaPeer>,
        meta: Arc<MetaState>,
        webhooks: WebhookSender,
        events: mpsc::UnboundedSender<SandboxEvent>,
    ) -> Driver {
        let elapsed = peer.as_ref().map_or(Duration::ZERO, WaPeer::elapsed);
        let peer_epoch = Instant::now().checked_sub(elapsed).unwrap_or_else(Instant::now);
        Driver {
            call_id,
            number,
            user,
            peer,
            peer_epoch,
            accepted_at: None,
            final_report: None,
            meta,
            webhooks,
            events,
        }
    }

    async fn run(
        mut self,
        mut inbox: mpsc::UnboundedReceiver<Inbox>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        answer_deadline: tokio::time::Instant,
    ) {
        let mut deadline = Some(answer_deadline);
        loop {
            tokio::select! {
                // The Graph side first: a state the SandboxCall already saw has its effect queued.
                biased;
                Some(message) = inbox.recv() => {
                    if matches!(message, Inbox::Effect(Effect::Talk { .. } | Effect::End(_), _)) {
                        deadline = None;
                    }
                    self.on_inbox(message).await;
                }
                command = commands.recv() => match command {
                    Some(c) => {
                        if self.on_command(c).await {
                            deadline = None;
                        }
                    }
                    None => {
                        // The SandboxCall is gone: the user just leaves.
                        self.close_peer().await;
                        return;
                    }
                },
                Some(event) = next_peer_event(&mut self.peer) => self.on_peer_event(event),
                () = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    let ending = self.meta.lock().ledger.answer_window_passed(SystemTime::now(), &self.call_id);
                    if let Some(ending) = ending {
                        tracing::info!(call_id = %self.call_id, "sandbox: not answered in time, Meta ends the call");
                        self.end(ending).await;
                    }
                }
            }
        }
    }

    async fn on_inbox(&mut self, message: Inbox) {
        match message {
            Inbox::Seen(action) => self.emit(SandboxEvent::Graph(Box::new(action))),
            Inbox::Effect(Effect::Answer { sdp, .. }, _) => {
                let Some(peer) = &self.peer else { return };
                match peer.accept_answer(&sdp).await {
                    Ok(()) => self.emit(SandboxEvent::AnswerApplied),
                    Err(e) => {
                        // The client could not set the call up (§1.4 138019, in the terminate webhook).
                        self.emit(SandboxEvent::PeerProblem(format!("the business's answer: {e}")));
                        let ending = self.meta.lock().ledger.fail(SystemTime::now(), &self.call_id, ErrorCode::CallSetupFailed);
                        if let Some(ending) = ending {
                            self.end(ending).await;
                        }
                    }
                }
            }
            Inbox::Effect(Effect::Talk { .. }, at) => {
                self.accepted_at = Some(at);
                if let Some(peer) = &self.peer {
                    if let Err(e) = peer.unmute() {
                        self.emit(SandboxEvent::PeerProblem(format!("unmute: {e}")));
                    }
                }
            }
            Inbox::Effect(Effect::End(ending), _) => self.end(ending).await,
            Inbox::Effect(Effect::Placed { .. }, _) => {}
        }
    }

    /// Carries out a command; true if the call has ended by it.
    async fn on_command(&mut self, command: Command) -> bool {
        match command {
            Command::HangUp(reply) => {
                let ending = self.meta.lock().ledger.user_hangs_up(SystemTime::now(), &self.call_id);
                let ended = ending.is_some();
                if let Some(ending) = ending {
                    self.end(ending).await;
                }
                self.close_peer().await;
                let _ = reply.send(self.final_report.clone().unwrap_or_default());
                ended
            }
            Command::Dtmf(digit, reply) => {
                let _ = reply.send(self.peer.as_ref().ok_or(WaPeerError::Stopped).and_then(|p| p.dtmf(digit)));
                false
            }
            Command::Source(source, reply) => {
                let _ = reply.send(self.peer.as_ref().ok_or(WaPeerError::Stopped).and_then(|p| p.set_source(source)));
                false
            }
            Command::Report(reply) => {
                let report = match (&self.peer, &self.final_report) {
                    (Some(peer), _) => peer.report().await,
                    (None, Some(r)) => Ok(r.clone()),
                    (None, None) => Err(WaPeerError::Stopped),
                };
                let _ = reply.send(report);
                false
            }
            Command::Abandon(reply) => {
                let ending = self.meta.lock().ledger.fail(SystemTime::now(), &self.call_id, ErrorCode::ConnectionError);
                if ending.is_some() {
                    self.publish();
                }
                self.close_peer().await;
                self.mark_closed();
                let _ = reply.send(());
                true
            }
        }
    }

    fn on_peer_event(&mut self, event: WaPeerEvent) {
        match event {
            WaPeerEvent::Connected => {
                self.meta_progress(|p| p.peer_connected = true);
                self.emit(SandboxEvent::PeerConnected);
            }
            WaPeerEvent::FirstAudio => self.emit(SandboxEvent::FirstAudio),
            WaPeerEvent::Dtmf(d) => self.emit(SandboxEvent::Digit(d)),
            WaPeerEvent::Failed(why) => self.emit(SandboxEvent::PeerProblem(why)),
            WaPeerEvent::Closed => {}
        }
    }

    /// The call is over: the user's app stops and Meta sends the terminate webhook. When the
    /// user hung up, the webhook goes first (the user ends it at Meta); otherwise the peer
    /// closes first (Meta tears the media down, then tells the business).
    async fn end(&mut self, ending: Ending) {
        self.publish();
        if ending.by != Party::User {
            self.close_peer().await;
        }
        let body = terminate_body(&TerminateWebhook {
            phone_number_id: &self.number.phone_number_id,
            display_phone_number: &self.number.digits(),
            call_id: &self.call_id,
            user: &self.user,
            user_initiated: true,
            timestamp: ending.at,
            status: ending.status(),
            answered: ending.answered,
            error: ending.error,
            biz_opaque_callback_data: ending.biz_opaque_callback_data.as_deref(),
        });
        match self.webhooks.send(&body).await {
            Ok(posts) => self.emit(SandboxEvent::TerminateDelivered { posts }),
            Err(e) => self.emit(SandboxEvent::TerminateUndelivered(e.to_string())),
        }
        self.close_peer().await;
        self.emit(SandboxEvent::Ended { state: ending.state, by: ending.by });
        self.mark_closed();
    }

    async fn close_peer(&mut self) {
        let Some(peer) = self.peer.take() else { return };
        let report = peer.close().await;
        self.check_media(&report);
        self.final_report = Some(report);
    }

    /// §1.3, §8.1: audio before accept answers the call on the user's phone.
    fn check_media(&self, report: &WaPeerReport) {
        let Some(first) = report.heard.first_audio() else { return };
        let details = match self.accepted_at {
            None => format!("the user heard audio {} ms into the call, which was never accepted", first.as_millis()),
            Some(at) => {
                let accepted = at.saturating_duration_since(self.peer_epoch);
                if first >= accepted {
                    return;
                }
                format!("the user heard audio {} ms before accept", (accepted - first).as_millis())
            }
        };
        tracing::warn!(call_id = %self.call_id, %details, "sandbox: media before accept");
        self.meta.lock().ledger.media_before_accept(SystemTime::now(), &self.call_id, details);
    }

    fn publish(&self) {
        self.meta.lock().publish(&self.call_id);
    }

    fn mark_closed(&self) {
        self.meta_progress(|p| p.closed = true);
    }

    fn meta_progress(&self, change: impl FnOnce(&mut Progress)) {
        self.meta.lock().modify_progress(&self.call_id, change);
    }

    fn emit(&self, event: SandboxEvent) {
        tracing::debug!(call_id = %self.call_id, ?event, "sandbox call event");
        // Nobody reading events is fine.
        let _ = self.events.send(event);
    }
}

async fn next_peer_event(peer: &mut Option<WaPeer>) -> Option<WaPeerEvent> {
    match peer {
        Some(p) => p.events().recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
