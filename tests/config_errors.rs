//! A bad configuration stops startup with key, value and reason, and exit status 2.

use std::process::Command;

fn whatsip(args: &[&str], config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_whatsip")).args(args).arg("--config").arg(&path).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_values_exit_2_naming_key_value_reason() {
    let (code, err) = whatsip(&["serve"], "[sip]\nlisten_udp = \"localhost\"\n[rtp]\nport_min = 70000\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("port_min"), "{err}");

    let (code, err) = whatsip(&["serve"], "[sip]\nlisten_udp = \"nowhere:5060\"\nring_timeout_seconds = 0\n");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sip.listen_udp = \"nowhere:5060\": expected ip:port"), "{err}");
    assert!(err.contains("sip.ring_timeout_seconds = \"0\": must be between 1 and 600"), "{err}");

    let (code, err) = whatsip(&["serve"], "[sip]\nlisten_udpp = \"127.0.0.1:5060\"\n");
    assert_eq!(code, 2);
    assert!(err.contains("listen_udpp"), "{err}");

    let (code, err) = whatsip(&["serve"], "this is not toml");
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml"), "{err}");
}

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/whatsip.example.toml");

/// `whatsip ARGS` with `env` set: exit code and stderr.
fn whatsip_env(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_whatsip")).args(args).envs(env.iter().copied()).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn check_accepts_the_example_and_env_overrides_are_checked_too() {
    let (code, err) = whatsip_env(&["check", "--config", EXAMPLE], &[]);
    assert_eq!(code, Some(0), "{err}");

    let (code, err) = whatsip_env(&["check", "--config", EXAMPLE], &[("WHATSIP_API__LISTEN", "not-an-address")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("api.listen"), "{err}");
}

#[test]
fn the_command_lines_own_variables_are_not_settings_and_a_stray_one_is_named() {
    let own = [("WHATSIP_CONFIG", EXAMPLE), ("WHATSIP_API_URL", "http://127.0.0.1:9"), ("WHATSIP_API_TOKEN", "secret")];
    let (code, err) = whatsip_env(&["check"], &own);
    assert_eq!(code, Some(0), "{err}");

    let (code, err) = whatsip_env(&["check", "--config", EXAMPLE], &[("WHATSIP_RING_TIMEOUT", "20")]);
    assert_eq!(code, Some(2));
    assert!(err.contains("environment variable WHATSIP_RING_TIMEOUT: unknown field `ring_timeout`"), "{err}");
}

#[test]
fn missing_config_file_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_whatsip")).args(["check", "--config", "/nonexistent/whatsip.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}
