//! `whatsip dialplan check` as an admin runs it: the shipped examples pass, a broken copy
//! fails with exit status 2 and a `file:line:col` message.

use std::path::Path;
use std::process::Command;

fn whatsip() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_whatsip"));
    // No settings file from the environment: the check must not depend on the host.
    cmd.env_remove("WHATSIP_CONFIG");
    cmd
}

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans")
}

#[test]
fn the_examples_pass() {
    let out = whatsip().args(["dialplan", "check"]).arg(examples()).output().expect("run whatsip");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "stdout: {stdout}\nstderr: {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("route support"), "{stdout}");
    assert!(stdout.contains("at most 20 s before an answer"), "{stdout}");
    assert_eq!(stdout.lines().count(), 8, "{stdout}");
}

#[test]
fn a_broken_copy_fails_with_file_line_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(examples()).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    // No sounds/ in the copy, and a group the route names is renamed away.
    let file = dir.path().join("pbx-queue-overflow.toml");
    let text = std::fs::read_to_string(&file).expect("read").replace("name = \"overflow\"", "name = \"overflows\"");
    std::fs::write(&file, text).expect("write");

    let out = whatsip().args(["dialplan", "check"]).arg(dir.path()).output().expect("run whatsip");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("pbx-queue-overflow.toml:26:8: group \"overflow\" is not defined — "), "{stderr}");
    assert!(stderr.contains("office-hours.toml:"), "{stderr}");
    assert!(stderr.contains("does not exist"), "{stderr}");
}

#[test]
fn users_must_exist_when_settings_are_given() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("whatsip.toml");
    std::fs::write(&config, "[[sip.users]]\nname = \"1001\"\npassword = \"secret\"\n").expect("write");
    let out = whatsip().arg("--config").arg(&config).args(["dialplan", "check"]).arg(examples()).output().expect("run whatsip");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains("no [[sip.users]] is named 1002"), "{stderr}");
    assert!(stderr.contains("no [[whatsapp.numbers]]"), "{stderr}");
}

#[test]
fn simulate_shows_the_route_and_the_office_closed_on_a_holiday() {
    let out = whatsip()
        .args(["dialplan", "simulate"])
        .arg(examples())
        .args(["--to", "+4940555000", "--from", "4915112345678", "--at", "2026-12-24T10:00:00+01:00"])
        .output()
        .expect("run whatsip");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("route office-closed") && stdout.contains("closed.wav"), "{stdout}");

    let out = whatsip()
        .args(["dialplan", "simulate"])
        .arg(examples())
        .args(["--to", "+4940555000", "--from", "1", "--at", "2026-12-22T10:00:00+01:00"])
        .output()
        .expect("run whatsip");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("route office-open") && stdout.contains("ring group office"), "{stdout}");
}

#[test]
fn simulate_shows_nested_members_and_a_member_out_of_hours() {
    // Tuesday 10:00 in Vienna: service-backup's 1031 rings with 1030, 1032 works afternoons.
    let out = whatsip()
        .args(["dialplan", "simulate"])
        .arg(examples())
        .args(["--to", "+43120000", "--from", "15551234567", "--at", "2026-11-24T10:00:00+01:00"])
        .output()
        .expect("run whatsip");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("route service-line") && stdout.contains("ring 1031 until 10 s"), "{stdout}");
    assert!(stdout.contains("skipped 1032 (out of hours)"), "{stdout}");
}
