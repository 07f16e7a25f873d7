//! The production profile refuses to start on defaults: no generated secrets, no short
//! keys, no mail written to disk; secrets may come from files. (A serving role that can
//! bypass RLS is refused in every profile: tests/embedded_serve.rs.)

mod support;

use std::process::Output;

use support::TempDir;
use support::cli::ultracore;

/// `ultracore serve` in the production profile with `env`, against an address where no
/// database listens (every refusal here must come before connecting).
fn serve_production(dir: &TempDir, env: &[(&str, String)]) -> Output {
    let mut cmd = ultracore(dir.path());
    cmd.env("ULTRACORE_PROFILE", "production")
        .env("ULTRACORE_DATA_DIR", dir.path())
        .env(
            "ULTRACORE_APP_DATABASE_URL",
            "postgres://ultracore_app:x@127.0.0.1:1/ultracore",
        )
        .args(["serve", "--listen", "127.0.0.1:0"]);
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run ultracore serve")
}

fn refused_for(output: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "production started: {stderr}");
    assert!(
        stderr.contains(reason),
        "expected a refusal naming {reason:?}: {stderr}"
    );
}

const JWT_SECRET: &str = "a-production-jwt-secret-of-enough-length-0123456789";
const DATA_KEY: &str = "dWx0cmFjb3JlLXRlc3QtZGF0YS1rZXktMzItYnl0ZXM=";

#[test]
fn production_with_defaults_refuses_to_start() {
    let dir = TempDir::new("ultracore-production");
    refused_for(&serve_production(&dir, &[]), "ULTRACORE_JWT_SECRET");
    assert!(
        !dir.path().join("jwt.secret").exists(),
        "production must never generate a secret into its data directory"
    );
    refused_for(
        &serve_production(&dir, &[("ULTRACORE_JWT_SECRET", JWT_SECRET.into())]),
        "ULTRACORE_DATA_KEY",
    );
    refused_for(
        &serve_production(&dir, &[("ULTRACORE_JWT_SECRET", "short".into())]),
        "at least 32 bytes",
    );
}

#[test]
fn production_reads_secrets_from_files_and_still_wants_a_mail_relay() {
    let dir = TempDir::new("ultracore-production-files");
    let jwt = dir.path().join("jwt");
    let key = dir.path().join("key");
    std::fs::write(&jwt, format!("{JWT_SECRET}\n")).expect("write the JWT secret file");
    std::fs::write(&key, format!("{DATA_KEY}\n")).expect("write the data key file");
    let output = serve_production(
        &dir,
        &[
            ("ULTRACORE_JWT_SECRET_FILE", jwt.display().to_string()),
            ("ULTRACORE_DATA_KEY_FILE", key.display().to_string()),
        ],
    );
    // Past the secrets: the next refusal is the missing SMTP relay.
    refused_for(&output, "SMTP");
    let missing = serve_production(
        &dir,
        &[
            (
                "ULTRACORE_JWT_SECRET_FILE",
                dir.path().join("nope").display().to_string(),
            ),
            ("ULTRACORE_DATA_KEY", DATA_KEY.into()),
        ],
    );
    refused_for(&missing, "cannot read secret file");
}
