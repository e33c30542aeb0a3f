//! The `whatsip` command.

use anyhow::Context;
use base64::Engine as _;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use whatsip::api::client::ApiClient;
use whatsip::call::test_ring::RingRequest;
use whatsip::config::{ConfigError, Settings};

/// whatsip rings the SIP desk phones and PBXs you already have with WhatsApp Business calls.
#[derive(Parser)]
#[command(name = "whatsip", version, about, long_about = None)]
struct Cli {
    /// Configuration file (TOML). Without it, built-in defaults: SIP on 127.0.0.1:5060,
    /// admin API on 127.0.0.1:8088, data in ./data. WHATSIP_* variables override either.
    #[arg(long, short, global = true, env = "WHATSIP_CONFIG")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: SIP registrar and trunks, media, and the admin API.
    Serve,
    /// Check the configuration file (and the dialplan folder it names) and print every
    /// problem; exit status 2 if any.
    Check,
    /// Ring a phone through the running gateway, to test it: plays a tone (or a file),
    /// records what the phone sends, and reports what it heard.
    ///
    /// TARGET is a registered user (1001) or an extension on a trunk (2001@pbx).
    Ring {
        /// Registered user (1001) or trunk extension (2001@pbx).
        target: String,
        /// WAV file to play to the phone (any rate; mono or stereo).
        #[arg(long)]
        play: Option<PathBuf>,
        /// Tone to play when no file is given; 0 for silence.
        #[arg(long, default_value_t = 1000)]
        tone: u32,
        /// Seconds to stay connected after the phone answers.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Save what the phone sent as an 8 kHz WAV.
        #[arg(long)]
        record: Option<PathBuf>,
        /// DTMF digits to send once answered.
        #[arg(long)]
        dtmf: Option<String>,
        /// Seconds to ring before giving up (default: sip.ring_timeout_seconds).
        #[arg(long)]
        ring_timeout: Option<u32>,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the phones registered to the running gateway.
    Registrations {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List every configured user: registered or not (and where), do-not-disturb, on a call.
    Users {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Turn a user's do-not-disturb on or off: while on, ring groups skip the user.
    ///
    /// The mark is stored and survives restarts. Users can set it from their own phone by
    /// dialling sip.dnd_on_code / sip.dnd_off_code (default *78 / *79); `whatsip users` shows it.
    ///
    /// Example: whatsip dnd 1001 on
    Dnd {
        /// The user, as named in [[sip.users]] (e.g. 1001).
        user: String,
        /// on: do not ring this user; off: ring again.
        #[arg(value_name = "on|off")]
        state: OnOff,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Show trunks and whether whatsip is registered to each PBX.
    Trunks {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List recent WhatsApp calls (newest first): who called, who answered, how it ended.
    Calls {
        /// How many calls to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Dialplans: which ring group answers which WhatsApp call, and what happens otherwise.
    Dialplan {
        #[command(subcommand)]
        command: DialplanCommand,
    },
    /// Stand in for Meta on this machine (no Meta account needed): a fake Graph API at
    /// whatsapp.graph_base_url (http://127.0.0.1:PORT) and WhatsApp users who call the gateway.
    Sandbox {
        #[command(subcommand)]
        command: whatsip::sandbox::cli::SandboxCommand,
    },
}

#[derive(Subcommand)]
enum DialplanCommand {
    /// Check every *.toml in DIR: prints each problem as file:line:col and exits 2 if any,
    /// else a line per route. With --config, users, trunks and numbers must exist there.
    Check {
        /// The dialplan folder.
        #[arg(default_value = "dialplans")]
        dir: PathBuf,
    },
    /// Show what a call would do, without placing it: the route that matches, who rings when
    /// and for how long if nobody answers, and where each outcome leads.
    Simulate {
        /// The dialplan folder.
        #[arg(default_value = "dialplans")]
        dir: PathBuf,
        /// The business number called (display number or Meta's phone_number_id).
        #[arg(long)]
        to: String,
        /// The caller's WhatsApp number.
        #[arg(long)]
        from: String,
        /// When the call comes in, RFC 3339 (2026-11-24T09:30:00+01:00); default now.
        #[arg(long)]
        at: Option<String>,
        /// The call button's payload.
        #[arg(long)]
        cta: Option<String>,
        /// The deep link's payload.
        #[arg(long)]
        deeplink: Option<String>,
        /// Members to treat as unavailable (user names or ext@trunk); repeatable.
        #[arg(long)]
        unavailable: Vec<String>,
    },
    /// Show the plan the running gateway routes by, and the last edit it refused.
    Status {
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make the running gateway check its dialplan folder now and switch to it if it is valid
    /// (it also reloads by itself when a file changes, and on SIGHUP). Exits 2 and prints
    /// every problem if the edit is refused; calls keep routing by the running plan.
    Reload {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OnOff {
    On,
    Off,
}

#[derive(clap::Args)]
struct ApiArgs {
    /// Admin API base URL (default: http://<api.listen>).
    #[arg(long, env = "WHATSIP_API_URL")]
    api_url: Option<String>,
    /// Admin API token (default: api.token, or <data_dir>/api.token).
    #[arg(long, env = "WHATSIP_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            match &e {
                ConfigError::Invalid(problems) => {
                    for p in problems {
                        eprintln!("whatsip: invalid setting {p}");
                    }
                }
                ConfigError::Load(_) => eprintln!("whatsip: {e}"),
            }
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Check => {
            println!("configuration is valid");
            if settings.routing.dialplan_dir.is_empty() {
                return ExitCode::SUCCESS;
            }
            // The plan `serve` would refuse to start with is part of the configuration.
            let dir = PathBuf::from(&settings.routing.dialplan_dir);
            ExitCode::from(whatsip::routing::dialplan::check_command(&dir, Some(&settings)))
        }
        Command::Serve => {
            whatsip::logging::init(&settings.log);
            whatsip::logging::log_panics();
            match whatsip::serve::run(settings) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("whatsip: {e}");
                    if e.is_bad_input() { ExitCode::from(2) } else { ExitCode::FAILURE }
                }
            }
        }
        Command::Ring { target, play, tone, seconds, record, dtmf, ring_timeout, api } => {
            let result = (|| -> anyhow::Result<bool> {
                let play_wav_base64 = match &play {
                    Some(p) => Some(base64::engine::general_purpose::STANDARD.encode(
                        std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?,
                    )),
                    None => None,
                };
                let request = RingRequest {
                    target,
                    seconds,
                    ring_timeout_seconds: ring_timeout,
                    play_wav_base64,
                    tone_hz: tone,
                    record: record.is_some(),
                    dtmf,
                };
                request.check().map_err(anyhow::Error::msg)?;
                let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
                let report = runtime()?.block_on(client.ring(&request))?;
                println!("outcome: {}{}", report.outcome, report.detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default());
                for contact in &report.rang {
                    println!("rang: {contact}");
                }
                if let Some(c) = &report.contact {
                    println!("answered by: {c} after {:.1} s, codec {}", report.ring_ms as f64 / 1000.0, report.codec.as_deref().unwrap_or("?"));
                    println!("talked: {:.1} s, ended by {}", report.talk_ms as f64 / 1000.0, report.ended_by.as_deref().unwrap_or("?"));
                    println!("rtp: sent {} received {} lost {}", report.packets_sent, report.packets_received, report.packets_lost);
                    match (report.heard_hz, report.heard_dbfs) {
                        (Some(hz), Some(db)) => println!("heard: {hz:.0} Hz at {db:.1} dBFS"),
                        _ => println!("heard: silence"),
                    }
                    if !report.dtmf_received.is_empty() {
                        println!("dtmf from phone: {}", report.dtmf_received);
                    }
                }
                if let (Some(path), Some(b64)) = (&record, &report.recording_wav_base64) {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(b64)?;
                    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
                    println!("recording: {}", path.display());
                }
                Ok(report.outcome == "answered")
            })();
            finish(result)
        }
        Command::Registrations { api } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            let list = runtime()?.block_on(client.registrations())?;
            if list.is_empty() {
                println!("no phone is registered");
            }
            for r in list {
                println!("{:<12} {:<48} expires in {:>5} s  from {} ({}) {}", r.user, r.contact, r.expires_in, r.source, r.transport, r.user_agent.unwrap_or_default());
            }
            Ok(true)
        })()),
        Command::Users { api } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            let list = runtime()?.block_on(client.users())?;
            if list.is_empty() {
                println!("no users are configured ([[sip.users]])");
                return Ok(true);
            }
            println!("{:<12} {:<10} {:<4} {:<4} CONTACTS", "USER", "REGISTERED", "DND", "BUSY");
            for u in list {
                let yes_no = |b: bool| if b { "yes" } else { "no" };
                let contacts = if u.contacts.is_empty() { "-".to_string() } else { u.contacts.join(" ") };
                println!("{:<12} {:<10} {:<4} {:<4} {contacts}", u.user, yes_no(u.registered), yes_no(u.dnd), yes_no(u.busy));
            }
            Ok(true)
        })()),
        Command::Dnd { user, state, api } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            let presence = runtime()?.block_on(client.set_dnd(&user, matches!(state, OnOff::On)))?;
            let now = if presence.dnd { "on: ring groups skip this user" } else { "off: this user rings again" };
            println!("{}: do-not-disturb {now}", presence.user);
            Ok(true)
        })()),
        Command::Calls { limit, api } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            let list = runtime()?.block_on(client.calls(limit))?;
            if list.is_empty() {
                println!("no calls yet");
            }
            for c in list {
                let when = utc(c.offered_at);
                let who = match &c.user_name {
                    Some(name) => format!("{name} (+{})", c.user),
                    None => format!("+{}", c.user),
                };
                let mut outcome = match &c.reason {
                    Some(r) => format!("{} ({r})", c.outcome),
                    None => c.outcome.clone(),
                };
                if c.callback.is_some() {
                    outcome.push_str(", callback");
                }
                let answered = c.answered_by.as_deref().unwrap_or("-");
                let route = c.route.as_deref().unwrap_or("-");
                println!("{when}  {:<28} -> {:<16} {:<40} talk {:>4} s  by {answered}  route {route}  ended by {}  {}", who, c.business_number, outcome, c.talk_seconds(), c.ended_by, c.call_id);
            }
            Ok(true)
        })()),
        Command::Trunks { api } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            for t in runtime()?.block_on(client.trunks())? {
                println!("{:<12} {:<24} {}", t.name, t.address, t.registration);
            }
            Ok(true)
        })()),
        Command::Dialplan { command: DialplanCommand::Check { dir } } => {
            let given = cli.config.is_some().then_some(&settings);
            ExitCode::from(whatsip::routing::dialplan::check_command(&dir, given))
        }
        Command::Dialplan { command: DialplanCommand::Simulate { dir, to, from, at, cta, deeplink, unavailable } } => {
            let at = match at.as_deref().map(str::parse::<jiff::Timestamp>).transpose() {
                Ok(at) => at.unwrap_or_else(jiff::Timestamp::now),
                Err(e) => {
                    eprintln!("whatsip: --at: {e} (expected RFC 3339, e.g. 2026-11-24T09:30:00+01:00)");
                    return ExitCode::from(2);
                }
            };
            let facts = whatsip::routing::dialplan::CallFacts {
                business_number: &to,
                phone_number_id: &to,
                caller: &from,
                cta_payload: cta.as_deref(),
                deeplink_payload: deeplink.as_deref(),
            };
            let call = whatsip::routing::simulate::SimulatedCall { facts, at, unavailable };
            let given = cli.config.is_some().then_some(&settings);
            ExitCode::from(whatsip::routing::simulate::simulate_command(&dir, given, &call))
        }
        Command::Dialplan { command: DialplanCommand::Status { api } } => finish((|| {
            let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
            let status = runtime()?.block_on(client.dialplan_status())?;
            print_plan_status(&status);
            Ok(true)
        })()),
        Command::Dialplan { command: DialplanCommand::Reload { api } } => {
            let result = (|| -> anyhow::Result<Result<whatsip::routing::live::PlanStatus, Vec<String>>> {
                let client = ApiClient::from_settings(&settings, api.api_url, api.token)?;
                Ok(runtime()?.block_on(client.dialplan_reload())?)
            })();
            match result {
                Ok(Ok(status)) => {
                    println!("dialplan reloaded");
                    print_plan_status(&status);
                    ExitCode::SUCCESS
                }
                Ok(Err(problems)) => {
                    for p in &problems {
                        eprintln!("{p}");
                    }
                    eprintln!("whatsip: the edit is refused; calls keep routing by the running plan");
                    ExitCode::from(2)
                }
                Err(e) => finish(Err(e)),
            }
        }
        Command::Sandbox { command } => finish(whatsip::sandbox::cli::run(&settings, command).map_err(anyhow::Error::from)),
    }
}

fn print_plan_status(status: &whatsip::routing::live::PlanStatus) {
    let dir = if status.dir.is_empty() { "none (each number rings its target)" } else { status.dir.as_str() };
    println!("dialplan folder: {dir}");
    println!("loaded: {} UTC ({} load{} since start)", utc(status.loaded_at), status.loads, if status.loads == 1 { "" } else { "s" });
    for r in &status.routes {
        println!("  {r}");
    }
    if let Some(refused) = &status.refused {
        println!("last edit refused at {} UTC:", utc(refused.at));
        for p in &refused.problems {
            println!("  {p}");
        }
    }
}

/// `YYYY-MM-DD HH:MM:SS` UTC from Unix milliseconds.
fn utc(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(|| ms.to_string(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn finish(result: anyhow::Result<bool>) -> ExitCode {
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("whatsip: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every variable a flag reads must be one the settings loader leaves alone, or setting it
    /// would stop the command as an unknown setting.
    #[test]
    fn flag_variables_are_not_read_as_settings() {
        fn walk(cmd: &clap::Command, found: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if let Some(env) = arg.get_env() {
                    found.push(env.to_string_lossy().into_owned());
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, found);
            }
        }
        let mut found = Vec::new();
        walk(&super::Cli::command(), &mut found);
        assert!(found.len() >= 3, "{found:?}");
        for name in found {
            assert!(whatsip::config::COMMAND_LINE_VARS.contains(&name.as_str()), "{name} is not in COMMAND_LINE_VARS");
        }
    }

    #[test]
    fn record_times_print_as_utc() {
        assert_eq!(super::utc(0), "1970-01-01 00:00:00");
        assert_eq!(super::utc(1_700_000_000_123), "2023-11-14 22:13:20");
    }
}
