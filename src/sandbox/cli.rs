//! `whatsip sandbox`: Meta on this machine, for trying the gateway without a Meta account.
//!
//! `whatsip sandbox call --to <number>` serves the fake Graph API where the gateway's
//! `whatsapp.graph_base_url` points, has a WhatsApp user call the number through the gateway's
//! webhook, talks for a while after the gateway accepts, hangs up and says what the user heard.
//! `whatsip sandbox serve` only serves the Graph API, until Ctrl-C.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::config::{SandboxConfig, SandboxConfigError};
use super::ledger::{CallState, RecordedAction};
use super::session::{CallSpec, Sandbox, SandboxError, SandboxEvent};
use super::{AudioSource, WaPeerReport};
use crate::config::{LogSettings, Settings};
use crate::ids::WaId;
use crate::media::dtmf::digit_to_event;
use crate::media::tone::{dominant_frequency, rms_dbfs};

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// A WhatsApp user calls one of the numbers through the running gateway (`whatsip serve`
    /// with the same configuration): prints what happens and what the user heard. Exit status
    /// 0 if the gateway accepted the call.
    Call(CallArgs),
    /// Serve only the fake Graph API at whatsapp.graph_base_url, until Ctrl-C.
    Serve,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CallArgs {
    /// The business number: its phone_number_id or its display number.
    #[arg(long)]
    pub to: String,
    /// The caller's WhatsApp id (international digits, no +).
    #[arg(long, default_value = "15550001111")]
    pub from: String,
    /// The caller's profile name.
    #[arg(long, default_value = "Sandbox User")]
    pub name: String,
    /// Seconds to talk after the gateway accepts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// Keys the user presses once talking (0-9 * # A-D).
    #[arg(long)]
    pub dtmf: Option<String>,
    /// The tone the user "says"; 0 for an open microphone in a silent room.
    #[arg(long, default_value_t = 1000)]
    pub tone_hz: u32,
    /// Save what the user heard as a WAV file.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Seconds the gateway has to accept before Meta gives up (Meta: about 30-60).
    #[arg(long, default_value_t = 60)]
    pub answer_window: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] SandboxConfigError),
    #[error("{given:?} is none of the configured numbers ({known})")]
    NoSuchNumber { given: String, known: String },
    #[error("--from {0:?}: a WhatsApp id is digits only (international, no +)")]
    BadFrom(String),
    #[error("--dtmf {0:?}: digits are 0-9, *, #, A-D")]
    BadDtmf(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write {path}: {reason}")]
    Record { path: PathBuf, reason: String },
}

/// Runs a `sandbox` subcommand; `Ok(false)` means "ran, but the call was not accepted".
pub fn run(settings: &Settings, command: SandboxCommand) -> Result<bool, CliError> {
    // Progress goes to stdout; the log only says what went wrong, unless RUST_LOG asks for more.
    crate::logging::init(&LogSettings { filter: "warn".into(), ..settings.log.clone() });
    let config = SandboxConfig::from_settings(settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    match command {
        SandboxCommand::Call(args) => runtime.block_on(call(config, args)),
        SandboxCommand::Serve => runtime.block_on(serve(config)).map(|()| true),
    }
}

async fn serve(config: SandboxConfig) -> Result<(), CliError> {
    let sandbox = Sandbox::start(config).await?;
    println!("sandbox Graph API on {} (Ctrl-C stops it)", sandbox.graph_base_url());
    let _ = tokio::signal::ctrl_c().await;
    for r in sandbox.stray_requests() {
        println!("request: {}", describe(&r));
    }
    print_violations(&sandbox);
    sandbox.stop().await;
    Ok(())
}

async fn call(config: SandboxConfig, args: CallArgs) -> Result<bool, CliError> {
    let number = config.find_number(&args.to).cloned().ok_or_else(|| CliError::NoSuchNumber {
        given: args.to.clone(),
        known: config.numbers.iter().map(|n| format!("{} {}", n.phone_number_id, n.display_number)).collect::<Vec<_>>().join(", "),
    })?;
    if args.from.is_empty() || !args.from.chars().all(|c| c.is_ascii_digit()) {
        return Err(CliError::BadFrom(args.from));
    }
    let digits = args.dtmf.clone().unwrap_or_default();
    if digits.chars().any(|d| digit_to_event(d).is_none()) {
        return Err(CliError::BadDtmf(digits));
    }

    let sandbox = Sandbox::start(config).await?;
    println!("sandbox: Graph API on {}, webhooks to {}", sandbox.graph_base_url(), sandbox.config().webhook_url);
    let mut spec = CallSpec::new(number.phone_number_id.clone());
    spec.from = WaId::new(&args.from);
    spec.name = Some(args.name.clone()).filter(|n| !n.is_empty());
    spec.answer_window = Duration::from_secs(args.answer_window.into());
    spec.source = match args.tone_hz {
        0 => AudioSource::Silence,
        hz => AudioSource::Tone { hz: hz as f32, amplitude: 0.3 },
    };
    let start = Instant::now();
    println!("{} {} ({}) calls {} ({})", stamp(start), args.name, args.from, number.display_number, number.phone_number_id);
    let mut call = match sandbox.place_call(spec).await {
        Ok(call) => call,
        Err(e) => {
            println!("{} the gateway did not take the call: {e}", stamp(start));
            sandbox.stop().await;
            return Ok(false);
        }
    };
    println!("{} call id {}", stamp(start), call.call_id());

    // Ringing: until the gateway accepts, or the call ends (rejected, or the answer window).
    while !matches!(call.state(), CallState::Accepted) && !call.state().is_final() {
        if let Some(e) = call.next_event(Duration::from_millis(200)).await {
            print_event(start, &e);
        }
    }
    let accepted = call.progress().reached.contains(&CallState::Accepted);
    if accepted {
        let talk_until = Instant::now() + Duration::from_secs(args.seconds.into());
        let mut keys = digits.chars();
        let mut next_key = Instant::now() + Duration::from_secs(1);
        while Instant::now() < talk_until && !call.state().is_final() {
            if Instant::now() >= next_key {
                if let Some(d) = keys.next() {
                    match call.dtmf(d).await {
                        Ok(()) => println!("{} user presses {d}", stamp(start)),
                        Err(e) => println!("{} user cannot press {d}: {e}", stamp(start)),
                    }
                }
                next_key += Duration::from_millis(400);
            }
            if let Some(e) = call.next_event(Duration::from_millis(100)).await {
                print_event(start, &e);
            }
        }
    }
    let report = if call.state().is_final() {
        call.report().await
    } else {
        println!("{} user hangs up", stamp(start));
        call.hang_up().await
    };
    let _ = call.wait_for_closed(Duration::from_secs(30)).await;
    while let Some(e) = call.next_event(Duration::from_millis(50)).await {
        print_event(start, &e);
    }

    println!();
    let p = call.progress();
    let by = p.ended_by.map(|b| format!(" by the {}", format!("{b:?}").to_lowercase())).unwrap_or_default();
    let outcome = if accepted { "accepted, then" } else { "not accepted:" };
    println!("result: {outcome} {}{by}", p.state);
    for a in call.actions() {
        println!("graph: {}", describe(&a));
    }
    match report {
        Ok(report) => {
            summarize(&report);
            if let Some(path) = &args.record {
                write_wav(path, &report)?;
                println!("recording: {}", path.display());
            }
        }
        Err(e) => println!("heard: no report ({e})"),
    }
    print_violations(&sandbox);
    sandbox.stop().await;
    Ok(accepted)
}

fn summarize(report: &WaPeerReport) {
    let heard = &report.heard;
    println!(
        "user heard: {} audio packets, {} DTMF packets, {} concealed, {} late",
        heard.audio_packets,
        heard.dtmf_packets,
        heard.fec_frames + heard.concealed_frames + heard.silent_frames,
        heard.late_packets
    );
    let top = f32::min(3800.0, heard.rate as f32 / 2.0 - 1.0);
    match dominant_frequency(&heard.pcm, heard.rate, 100.0, top) {
        Some((hz, db)) => println!("user heard: {hz:.0} Hz at {db:.1} dBFS (overall {:.1} dBFS)", rms_dbfs(&heard.pcm)),
        None => println!("user heard: silence"),
    }
    if !heard.digits.is_empty() {
        println!("user heard digits: {}", heard.digits);
    }
    println!("user sent: {} audio frames, {} DTMF packets; RTCP received {}", report.sent.frames, report.sent.dtmf_packets, report.rtcp_received);
}

fn print_violations(sandbox: &Sandbox) {
    let violations = sandbox.violations();
    if violations.is_empty() {
        println!("Meta's rules: none broken");
    }
    for v in violations {
        println!("RULE BROKEN: {v}");
    }
}

fn print_event(start: Instant, e: &SandboxEvent) {
    let line = match e {
        SandboxEvent::ConnectDelivered { posts } => format!("connect webhook delivered ({posts} POST{})", plural(*posts)),
        SandboxEvent::Graph(a) => format!("gateway: {}", describe(a)),
        SandboxEvent::AnswerApplied => "user: took the gateway's SDP answer".into(),
        SandboxEvent::PeerConnected => "user: media connected (ICE + DTLS)".into(),
        SandboxEvent::FirstAudio => "user: hears the gateway".into(),
        SandboxEvent::Digit(d) => format!("user: heard digit {d}"),
        SandboxEvent::PeerProblem(why) => format!("user: problem: {why}"),
        SandboxEvent::TerminateDelivered { posts } => format!("terminate webhook delivered ({posts} POST{})", plural(*posts)),
        SandboxEvent::TerminateUndelivered(why) => format!("terminate webhook not delivered: {why}"),
        SandboxEvent::Ended { state, by } => format!("call {state} (by the {})", format!("{by:?}").to_lowercase()),
    };
    println!("{} {line}", stamp(start));
}

fn describe(a: &RecordedAction) -> String {
    let outcome = match &a.outcome {
        Ok(()) => "ok".to_owned(),
        Err(r) => format!("REFUSED {r}"),
    };
    let action = if a.raw_action.is_empty() { "(no action)" } else { a.raw_action.as_str() };
    let sdp = a.sdp.as_ref().map(|s| format!(" [{} SDP, {} bytes]", a.sdp_type.as_deref().unwrap_or("?"), s.len())).unwrap_or_default();
    format!("{action}{sdp} -> {outcome}")
}

fn stamp(start: Instant) -> String {
    format!("[{:6.2}s]", start.elapsed().as_secs_f64())
}

fn plural(n: u32) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn write_wav(path: &PathBuf, report: &WaPeerReport) -> Result<(), CliError> {
    let err = |e: hound::Error| CliError::Record { path: path.clone(), reason: e.to_string() };
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: report.heard.rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(err)?;
    for &s in &report.heard.pcm {
        w.write_sample(s).map_err(err)?;
    }
    w.finalize().map_err(err)
}
