//! `ultracore demo seed` and `ultracore demo attack`: the demo tenants are created with
//! users of every role and a history the console can show, a second seed refuses to
//! touch them, and the attack, replayed against a running gateway, makes the detectors
//! lock an account, block the address and open incidents.

mod support;

use support::cli::{run, ultracore_with_database};
use support::gateway::TestGateway;
use support::sql::count;
use support::{TempDir, TestDb};

#[tokio::test]
async fn the_demo_seeds_two_tenants_and_its_attack_trips_the_detectors() {
    let db = TestDb::new().await;
    let dir = TempDir::new("ultracore-demo");
    let output = run(ultracore_with_database(&db.owner_url(), dir.path()).args(["demo", "seed"]));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for role in ["super_admin", "admin", "manager", "officer", "customer"] {
        assert_eq!(
            stdout
                .lines()
                .filter(|l| l.split_whitespace().nth(2) == Some(role))
                .count()
                % 2,
            0,
            "every role in both tenants: {stdout}"
        );
        assert!(stdout.contains(role), "{role} printed: {stdout}");
    }
    let owner = db.owner().await;
    let users = count(
        &owner,
        "select count(*) as n from users u join tenants t using (tenant_id) where t.slug like 'demo-%'",
    )
    .await;
    assert_eq!(users, 20);
    let history = count(&owner, "select count(*) as n from security_events").await;
    assert!(history >= 2 * 10 * 40, "a month of sign-ins: {history}");
    assert_eq!(
        count(
            &owner,
            "select count(*) as n from security_incidents where status = 'investigating'"
        )
        .await,
        2,
        "one open investigation per tenant"
    );

    let again = run(ultracore_with_database(&db.owner_url(), dir.path()).args(["demo", "seed"]));
    assert!(!again.status.success(), "a second seed must refuse");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already exists"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let gw = TestGateway::start(&db).await;
    let attack = tokio::task::spawn_blocking({
        let url = gw.url();
        let cwd = dir.path().to_path_buf();
        let database = db.owner_url();
        move || {
            run(ultracore_with_database(&database, &cwd).args([
                "demo",
                "attack",
                "--url",
                &url,
                "--delay-ms",
                "0",
            ]))
        }
    })
    .await
    .expect("attack task");
    let printed = String::from_utf8_lossy(&attack.stdout);
    assert!(
        attack.status.success(),
        "{printed}\n{}",
        String::from_utf8_lossy(&attack.stderr)
    );

    let threats = |kind: &str| {
        format!(
            "select count(*) as n from threat_events e join tenants t using (tenant_id) \
              where t.slug = 'demo-bank' and e.threat_type {kind} and e.detected_at > now() - interval '10 minutes'"
        )
    };
    assert!(
        count(
            &owner,
            &threats("in ('password_spraying', 'credential_stuffing')")
        )
        .await
            >= 1,
        "stuffing or spraying detected: {printed}"
    );
    assert!(
        count(&owner, &threats("= 'brute_force'")).await >= 1,
        "brute force: {printed}"
    );
    let locked = count(
        &owner,
        "select count(*) as n from users u join tenants t using (tenant_id) \
          where t.slug = 'demo-bank' and u.username = 'carol' and u.locked_until > now()",
    )
    .await;
    assert_eq!(locked, 1, "the brute-forced account is locked: {printed}");
    let blocked = count(
        &owner,
        "select count(*) as n from rate_limit_entries r join tenants t using (tenant_id) \
          where t.slug = 'demo-bank' and r.is_blocked and r.blocked_until > now() and r.ip_address = '127.0.0.1'",
    )
    .await;
    assert!(blocked >= 1, "the address is blocked: {printed}");
}
