//! Helpers shared by the end-to-end tests: run the real `doudi` binary in a folder, with a clean
//! environment, and read what it printed.

// Each test file uses some of these.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Run `doudi` in `dir` with nothing from the caller's environment that could change it.
pub fn doudi(dir: &Path, args: &[&str]) -> Output {
    doudi_env(dir, args, &[])
}

/// [`doudi`] with extra environment variables.
pub fn doudi_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_doudi"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("DOUDI_CONFIG")
        .env_remove("DOUDI_DB")
        .env_remove("DOUDI_USER")
        .env("DOUDI_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run doudi")
}

/// Its standard output, after asserting it succeeded.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "doudi failed: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its standard output, after asserting it exited with `code`.
pub fn exits(out: Output, code: i32) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Its standard error, after asserting it refused the request (exit 2).
pub fn refused(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected a refusal (exit 2): stdout {} stderr {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}
