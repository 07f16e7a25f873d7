//! Running the `ultracore` binary: a clean environment, a working directory chosen by
//! the test, and its output described for assertion messages.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The binary run from `cwd` (so no stray ultracore.toml is read), with nothing inherited
/// from ULTRACORE_*, RUST_LOG or DATABASE_URL, and nothing on its standard input.
pub fn ultracore(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ultracore"));
    for (key, _) in std::env::vars_os() {
        if key
            .to_str()
            .is_some_and(|k| k.starts_with("ULTRACORE_") || k == "RUST_LOG" || k == "DATABASE_URL")
        {
            cmd.env_remove(&key);
        }
    }
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// [`ultracore`] with `DATABASE_URL` set to `database_url` (and no other setting).
pub fn ultracore_with_database(database_url: &str, cwd: &Path) -> Command {
    let mut cmd = ultracore(cwd);
    cmd.env("DATABASE_URL", database_url);
    cmd
}

/// Runs `cmd` to its end and returns what it printed.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run ultracore")
}

/// Runs `cmd` with `stdin` written to its standard input. The child may exit before
/// reading all of it (it refuses early), so a broken pipe on our side is expected, not
/// an error.
pub fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ultracore");
    let mut pipe = child.stdin.take().expect("stdin");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&input);
        // Dropping the pipe closes it: the child sees end of input.
    });
    let out = child.wait_with_output().expect("wait for ultracore");
    writer.join().expect("stdin writer");
    out
}

/// Exit status, stdout and stderr, for an assertion message.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
