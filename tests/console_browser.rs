//! The analyst console at /console, in headless Chromium driven over the DevTools
//! protocol, and its HTTP surface.
//!
//! - signed in as a manager, the page shows the threat counts of the database, shows a
//!   threat within 10 s of its insertion (its text escaped, never parsed as HTML), and
//!   opens an incident linking it; the browser requested nothing from any host but the
//!   gateway, reported no Content-Security-Policy violation and no error, and stored
//!   no token (no storage, no cookie);
//! - when the socket drops, the page resumes the feed with its last cursor: a threat
//!   committed while it was disconnected appears once it is back;
//! - /console and its files carry the CSP and the security headers, revalidate by ETag,
//!   an unknown file is a 404 with the same headers, and `http.console = false` removes
//!   the page.
//!
//! Chromium is Debian's `chromium` package; `.ci/run` installs it. Without it these
//! tests fail: they are never skipped.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::{Value, json};
use support::chromium::{Page, chromium_binary};
use support::fixture::{A, Fixture, PASSWORD, tenant_txn};
use support::gateway::TestGateway;
use support::{TestDb, assert_no_findings};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use uuid::Uuid;

/// How long the page may take to show a threat after its insertion.
const SHOWN_WITHIN: Duration = Duration::from_secs(10);

// ---- the console page ----------------------------------------------------------------

/// What these cases ask of the console page.
impl Page {
    async fn navigate(&mut self, url: &str) {
        let result = self.call("Page.navigate", json!({ "url": url })).await;
        assert!(result.get("errorText").is_none(), "navigating to {url}: {result}");
        self.wait_for(
            "the console page loads with its script",
            "document.readyState === 'complete' && !!document.getElementById('status') \
             && document.getElementById('status').dataset.state === 'signed-out'",
            Duration::from_secs(15),
        )
        .await;
    }

    /// Fills and submits the sign-in form, then waits until the feed is live.
    async fn sign_in(&mut self, tenant: &str, username: &str) {
        let submit = format!(
            "(() => {{ \
               document.getElementById('tenant').value = {tenant}; \
               document.getElementById('username').value = {username}; \
               document.getElementById('password').value = {password}; \
               document.getElementById('login-form').requestSubmit(); \
               return true; }})()",
            tenant = json!(tenant),
            username = json!(username),
            password = json!(PASSWORD),
        );
        self.eval(&submit).await;
        self.wait_for(
            "the console signs in and its feed goes live",
            "document.getElementById('status').dataset.state === 'live'",
            Duration::from_secs(30),
        )
        .await;
    }

    /// Whether a threat of `threat_type` is listed.
    async fn shows(&mut self, threat_type: &str) -> bool {
        self.eval(&format!("!!{}", row_js(threat_type))).await == json!(true)
    }

    /// Whether a threat of `threat_type` is listed and came from the live feed (not
    /// from the list of recent threats the page loads when it connects).
    async fn received(&mut self, threat_type: &str) -> bool {
        self.eval(&format!("{}?.dataset.source === 'feed'", row_js(threat_type)))
            .await
            == json!(true)
    }

    /// Reads every event already sent, so the findings are complete.
    async fn drain(&mut self) -> Value {
        self.eval("window.__cspViolations").await
    }
}

/// The page's visible state, for failure messages.
const PAGE_STATE: &str = "JSON.stringify({ \
    status: document.getElementById('status')?.textContent, \
    state: document.getElementById('status')?.dataset.state, \
    loginError: document.getElementById('login-error')?.textContent, \
    feedError: document.getElementById('feed-error')?.textContent, \
    threats: Array.from(document.querySelectorAll('#threats .type')).map((e) => e.textContent).slice(0, 10) })";

/// A JS expression answering the list row of the threat of `threat_type` (or undefined).
fn row_js(threat_type: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('#threats li.threat')) \
           .find((li) => li.querySelector('.type')?.textContent === {})",
        json!(threat_type)
    )
}

/// What the browser did, from the DevTools events.
#[derive(Default, Debug)]
struct Observed {
    /// Every URL requested (documents, scripts, styles, fetches, WebSockets).
    urls: Vec<String>,
    /// CSP violations reported by Audits, Log or a blocked load.
    csp: Vec<String>,
    /// Console errors, exceptions and failed loads.
    errors: Vec<String>,
}

fn observe(events: &[Value]) -> Observed {
    let mut seen = Observed::default();
    for event in events {
        let params = &event["params"];
        match event["method"].as_str().unwrap_or_default() {
            "Network.requestWillBeSent" => seen
                .urls
                .push(params["request"]["url"].as_str().unwrap_or_default().to_string()),
            "Network.webSocketCreated" => seen
                .urls
                .push(params["url"].as_str().unwrap_or_default().to_string()),
            "Network.loadingFailed" => {
                let reason = params["blockedReason"].as_str().unwrap_or_default();
                let line = format!("load failed: {} {reason}", params["errorText"]);
                if reason.contains("csp") || reason.contains("content-type") {
                    seen.csp.push(line);
                } else {
                    seen.errors.push(line);
                }
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                let text = entry["text"].as_str().unwrap_or_default();
                if text.contains("Content Security Policy") || text.contains("Trusted Type") {
                    seen.csp.push(format!("log: {text}"));
                } else if entry["level"] == "error" {
                    seen.errors
                        .push(format!("log ({}): {text} {}", entry["source"], entry["url"]));
                }
            }
            "Runtime.consoleAPICalled" if params["type"] == "error" || params["type"] == "assert" => {
                seen.errors
                    .push(format!("console.{}: {}", params["type"], params["args"]));
            }
            "Runtime.exceptionThrown" => seen.errors.push(format!(
                "exception: {}",
                params["exceptionDetails"]["exception"]["description"]
            )),
            "Audits.issueAdded" => {
                let issue = &params["issue"];
                if issue["code"] == "ContentSecurityPolicyIssue" {
                    seen.csp.push(format!("audit: {}", issue["details"]));
                }
            }
            _ => {}
        }
    }
    seen
}

/// URLs whose host and port are not exactly `authority` (e.g. `127.0.0.1:40123`).
fn foreign_urls(urls: &[String], authority: &str) -> Vec<String> {
    urls.iter()
        .filter(|u| {
            let Ok(url) = url::Url::parse(u) else { return true };
            let host = url.host_str().unwrap_or_default();
            let here = match url.port_or_known_default() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_string(),
            };
            here != authority
        })
        .cloned()
        .collect()
}

fn authority(base_url: &str) -> String {
    base_url.trim_start_matches("http://").to_string()
}

// ---- the database -----------------------------------------------------------------------

/// Fields drop in order: the gateway (and its feed hub) before the database.
struct World {
    gw: TestGateway,
    owner: DatabaseConnection,
    fx: Fixture,
    _db: TestDb,
}

async fn world() -> World {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
    let db = TestDb::new().await;
    let fx = Fixture::seed(&db).await;
    let gw = TestGateway::start(&db).await;
    let owner = db.owner().await;
    World {
        _db: db,
        fx,
        gw,
        owner,
    }
}

impl World {
    /// Inserts and commits a threat in tenant A, as the owner; answers its id.
    async fn threat(&self, threat_type: &str, severity: &str, description: &str) -> Uuid {
        let id = Uuid::now_v7();
        let tenant = self.fx.a.tenant_id;
        let txn = tenant_txn(&self.owner, tenant).await;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "insert into threat_events (threat_id, tenant_id, threat_type, severity, description) \
             values ($1, $2, $3, $4, $5)",
            [
                id.into(),
                tenant.into(),
                threat_type.into(),
                severity.into(),
                description.into(),
            ],
        ))
        .await
        .expect("insert a threat");
        txn.commit().await.expect("commit the threat");
        id
    }

    /// Tenant A's threats by severity (upper case, as the API names them).
    async fn counts(&self) -> Value {
        let rows = self
            .owner
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select upper(severity) as severity, count(*)::bigint as n from threat_events \
                 where tenant_id = $1 group by severity",
                [self.fx.a.tenant_id.into()],
            ))
            .await
            .expect("count threats");
        let mut counts = json!({ "CRITICAL": 0, "HIGH": 0, "MEDIUM": 0, "LOW": 0 });
        for row in rows {
            let severity: String = row.try_get("", "severity").expect("severity");
            let n: i64 = row.try_get("", "n").expect("n");
            counts[severity] = json!(n);
        }
        counts
    }

    /// Incidents of tenant A that link `threat`: (id, status) pairs.
    async fn incidents_linking(&self, threat: Uuid) -> Vec<(Uuid, String)> {
        self.owner
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "select incident_id, status from security_incidents \
                 where tenant_id = $1 and $2 = any(related_threat_ids)",
                [self.fx.a.tenant_id.into(), threat.into()],
            ))
            .await
            .expect("read incidents")
            .into_iter()
            .map(|r| {
                (
                    r.try_get("", "incident_id").expect("incident_id"),
                    r.try_get("", "status").expect("status"),
                )
            })
            .collect()
    }

    /// Inserts probe threats until the page shows one: from then on its subscription is
    /// demonstrably registered (the page sends `subscribe` without an answer to wait for).
    async fn until_feed_delivers(&self, page: &mut Page) {
        // Any probe counts, also one that shows up late: delivery waits for the oldest
        // transaction still running in the cluster, which other tests share.
        let mut probes = Vec::new();
        // Up to two minutes: another test's DROP DATABASE can hold back the cluster's
        // oldest running transaction, the feed's horizon, for about a minute.
        for attempt in 0..120 {
            let probe = format!("console-probe-{attempt}");
            self.threat(&probe, "low", "probe").await;
            probes.push(probe);
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(1) {
                for probe in &probes {
                    if page.received(probe).await {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        let state = page.eval(PAGE_STATE).await;
        panic!("the console never showed a probe threat; the page: {state:#}");
    }
}

/// Polls until the page's counts equal the database's.
async fn counts_match(w: &World, page: &mut Page, what: &str) {
    let start = Instant::now();
    loop {
        let expected = w.counts().await;
        let shown = page
            .eval(
                "Object.fromEntries(['CRITICAL', 'HIGH', 'MEDIUM', 'LOW'].map((s) => \
                   [s, Number(document.getElementById('count-' + s).textContent)]))",
            )
            .await;
        if shown == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: the page shows counts {shown}, the database holds {expected}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---- the tests --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_new_threat_within_10s_and_opens_an_incident_from_it() {
    chromium_binary(); // before anything else: no Chromium is a clear failure
    let w = world().await;
    let base = w.gw.url();
    let mut page = Page::new().await;
    page.describe = PAGE_STATE;
    page.navigate(&format!("{base}/console")).await;
    page.sign_in(A, "manager").await;
    counts_match(&w, &mut page, "after sign-in").await;
    w.until_feed_delivers(&mut page).await;

    // A threat whose description is markup: it must show as text.
    let threat_type = format!("console-check-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let description = "<img src=\"/console/pwned.png\"> <b>bold</b> & \"quoted\"";
    let inserted = Instant::now();
    let threat = w.threat(&threat_type, "high", description).await;
    loop {
        if page.shows(&threat_type).await {
            break;
        }
        assert!(
            inserted.elapsed() < SHOWN_WITHIN,
            "the console did not show the threat within {SHOWN_WITHIN:?} of its insertion; the page: {:#}",
            page.eval(PAGE_STATE).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shown_after = inserted.elapsed();
    let rendered = page
        .eval(&format!(
            "(() => {{ const row = {}; return {{ \
               description: row.querySelector('.description')?.textContent, \
               severity: row.querySelector('.badge')?.textContent, \
               id: row.dataset.threatId, \
               source: row.dataset.source, \
               markup: document.querySelectorAll('#threats img, #threats b').length }}; }})()",
            row_js(&threat_type)
        ))
        .await;
    assert_eq!(rendered["description"], description, "{rendered}");
    assert_eq!(rendered["severity"], "high", "{rendered}");
    assert_eq!(rendered["id"], threat.to_string(), "{rendered}");
    assert_eq!(rendered["source"], "feed", "{rendered}");
    assert_eq!(
        rendered["markup"], 0,
        "a threat's text was parsed as HTML: {rendered}"
    );
    counts_match(&w, &mut page, "after the threat arrived").await;

    // Open an incident from it.
    let clicked = page
        .eval(&format!(
            "(() => {{ const row = {}; const b = row?.querySelector('button.open-incident'); \
               if (!b) return false; b.click(); return true; }})()",
            row_js(&threat_type)
        ))
        .await;
    assert_eq!(
        clicked,
        json!(true),
        "no Open incident button on the threat's row"
    );
    let outcome = page
        .wait_for(
            "the incident is opened",
            &format!(
                "(() => {{ const r = {}?.querySelector('.result'); \
                   if (!r || !(r.classList.contains('ok') || r.classList.contains('failed'))) return null; \
                   return {{ ok: r.classList.contains('ok'), text: r.textContent, id: r.dataset.incidentId || null }}; }})()",
                row_js(&threat_type)
            ),
            Duration::from_secs(15),
        )
        .await;
    assert_eq!(outcome["ok"], true, "opening the incident failed: {outcome}");
    let incidents = w.incidents_linking(threat).await;
    assert_eq!(incidents.len(), 1, "one incident links the threat: {incidents:?}");
    let (incident, status) = &incidents[0];
    assert_eq!(status, "open");
    assert_eq!(outcome["id"], incident.to_string(), "{outcome}");

    // Tokens live in memory only.
    let stored = page
        .eval("localStorage.length + sessionStorage.length + document.cookie.length")
        .await;
    assert_eq!(stored, 0, "the console stored something in the browser");

    let witnessed = page.drain().await;
    let seen = observe(&page.events);
    assert_no_findings(
        "requests to another host than the gateway",
        &foreign_urls(&seen.urls, &authority(&base)),
    );
    for expected in [
        format!("{base}/console"),
        format!("{base}/console/app.js"),
        format!("{base}/console/app.css"),
        format!("{base}/graphql"),
        format!("{}/graphql/ws", base.replace("http://", "ws://")),
    ] {
        assert!(
            seen.urls.contains(&expected),
            "the browser never requested {expected}: {:#?}",
            seen.urls
        );
    }
    assert_no_findings("CSP violations", &seen.csp);
    assert_eq!(witnessed, json!([]), "the page saw CSP violations");
    assert_no_findings("console errors", &seen.errors);
    eprintln!("the console showed the threat {shown_after:?} after its insertion");
}

/// A TCP relay in front of the gateway whose connections the test can cut, and which can
/// refuse new ones for a while.
struct CutProxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    accept: AbortHandle,
}

#[derive(Default)]
struct ProxyState {
    refusing: bool,
    links: Vec<AbortHandle>,
}

impl CutProxy {
    async fn start(target: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
                if state.refusing {
                    drop(inbound);
                    continue;
                }
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                state.links.retain(|l| !l.is_finished());
                state.links.push(link.abort_handle());
            }
        })
        .abort_handle();
        CutProxy { addr, state, accept }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Closes every open connection and refuses new ones until [`CutProxy::restore`].
    fn cut(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.refusing = true;
        for link in state.links.drain(..) {
            link.abort();
        }
    }

    fn restore(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).refusing = false;
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_resumes_its_feed_after_the_socket_drops_and_loses_nothing() {
    chromium_binary(); // before anything else: no Chromium is a clear failure
    let w = world().await;
    let gateway: SocketAddr = authority(&w.gw.url()).parse().expect("gateway address");
    let proxy = CutProxy::start(gateway).await;
    let base = proxy.url();
    let mut page = Page::new().await;
    page.describe = PAGE_STATE;
    page.navigate(&format!("{base}/console")).await;
    // An officer reads threats but may not open incidents.
    page.sign_in(A, "officer").await;
    w.until_feed_delivers(&mut page).await;

    proxy.cut();
    page.wait_for(
        "the console notices the dropped socket",
        "document.getElementById('status').dataset.state !== 'live'",
        Duration::from_secs(15),
    )
    .await;
    let threat_type = format!("console-missed-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let threat = w
        .threat(&threat_type, "critical", "committed while the console was away")
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !page.shows(&threat_type).await,
        "the threat arrived although the proxy refused every connection"
    );

    proxy.restore();
    page.wait_for(
        "the console resumes its feed and receives the threat committed meanwhile",
        &format!("!!{}", row_js(&threat_type)),
        Duration::from_secs(45),
    )
    .await;
    let rows = page
        .eval(&format!(
            "Array.from(document.querySelectorAll('#threats .type')).filter((e) => e.textContent === {}).length",
            json!(threat_type)
        ))
        .await;
    assert_eq!(rows, 1, "the threat is listed once");
    assert!(
        page.received(&threat_type).await,
        "the threat must come from the resumed feed (replayed after the page's last cursor)"
    );
    page.wait_for(
        "the console is live again",
        "document.getElementById('status').dataset.state === 'live'",
        Duration::from_secs(10),
    )
    .await;

    // The officer's Open incident is refused, and says so.
    page.eval(&format!(
        "{}.querySelector('button.open-incident').click()",
        row_js(&threat_type)
    ))
    .await;
    let outcome = page
        .wait_for(
            "the refusal is shown",
            &format!(
                "(() => {{ const r = {}?.querySelector('.result'); \
                   return r && r.classList.contains('failed') ? r.textContent : null; }})()",
                row_js(&threat_type)
            ),
            Duration::from_secs(15),
        )
        .await;
    assert!(
        outcome.as_str().is_some_and(|t| t.contains("not allowed")),
        "{outcome}"
    );
    assert_eq!(w.incidents_linking(threat).await, vec![]);

    let witnessed = page.drain().await;
    let seen = observe(&page.events);
    assert_no_findings(
        "requests to another host than the gateway",
        &foreign_urls(&seen.urls, &authority(&base)),
    );
    assert_no_findings("CSP violations", &seen.csp);
    assert_eq!(witnessed, json!([]), "the page saw CSP violations");
    // Failed loads are expected while the proxy refused connections; exceptions are not.
    let exceptions: Vec<String> = seen
        .errors
        .into_iter()
        .filter(|e| e.starts_with("exception"))
        .collect();
    assert_no_findings("exceptions", &exceptions);
}

// ---- HTTP -------------------------------------------------------------------------------

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn security_findings(response: &reqwest::Response, base: &str) -> Vec<String> {
    let path = response.url().path().to_string();
    let mut findings = Vec::new();
    let csp = header(response, "content-security-policy");
    let host = authority(base);
    for directive in [
        "default-src 'none'".to_string(),
        "script-src 'self'".to_string(),
        "style-src 'self'".to_string(),
        format!("connect-src 'self' ws://{host} wss://{host}"),
        "frame-ancestors 'none'".to_string(),
        "base-uri 'none'".to_string(),
        "form-action 'none'".to_string(),
        "require-trusted-types-for 'script'".to_string(),
    ] {
        if !csp.split(';').any(|d| d.trim() == directive) {
            findings.push(format!("{path}: CSP lacks `{directive}`: {csp}"));
        }
    }
    for loose in ["unsafe-inline", "unsafe-eval", "*", "http:", "https:", "data:"] {
        if csp
            .split([' ', ';'])
            .any(|token| token == loose || token == format!("'{loose}'"))
        {
            findings.push(format!("{path}: CSP allows {loose}: {csp}"));
        }
    }
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        if header(response, name) != value {
            findings.push(format!("{path}: {name} is {:?}", header(response, name)));
        }
    }
    if header(response, "cache-control").is_empty() {
        findings.push(format!("{path}: no Cache-Control"));
    }
    findings
}

#[tokio::test]
async fn console_files_carry_the_csp_and_security_headers_and_unknown_files_are_404() {
    let db = TestDb::new().await;
    let gw = TestGateway::start(&db).await;
    let base = gw.url();
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let mut findings = Vec::new();
    for (path, content_type, must_contain) in [
        ("/console", "text/html; charset=utf-8", "/console/app.js"),
        ("/console/", "text/html; charset=utf-8", "/console/app.css"),
        (
            "/console/app.js",
            "text/javascript; charset=utf-8",
            "graphql-transport-ws",
        ),
        ("/console/app.css", "text/css; charset=utf-8", ".threat"),
        ("/console/icon.svg", "image/svg+xml", "<svg"),
    ] {
        let response = client.get(format!("{base}{path}")).send().await.expect("GET");
        findings.extend(security_findings(&response, &base));
        if response.status() != 200 {
            findings.push(format!("{path}: status {}", response.status()));
        }
        if header(&response, "content-type") != content_type {
            findings.push(format!(
                "{path}: content-type {:?}",
                header(&response, "content-type")
            ));
        }
        let etag = header(&response, "etag");
        let body = response.text().await.expect("body");
        if !body.contains(must_contain) {
            findings.push(format!("{path}: the body lacks {must_contain:?}"));
        }
        // Revalidation: the same ETag answers 304 with the same headers and no body.
        let again = client
            .get(format!("{base}{path}"))
            .header("if-none-match", &etag)
            .send()
            .await
            .expect("GET again");
        if etag.is_empty() || again.status() != 304 {
            findings.push(format!("{path}: ETag {etag:?} revalidated as {}", again.status()));
        }
        findings.extend(security_findings(&again, &base));
    }
    for path in [
        "/console/nope.js",
        "/console/app.js.map",
        "/console/index.html",
        "/console/%2e%2e%2fCargo.toml",
        "/console/app.js/x",
    ] {
        let response = client.get(format!("{base}{path}")).send().await.expect("GET");
        if response.status() != 404 {
            findings.push(format!("{path}: status {} (want 404)", response.status()));
            continue;
        }
        // An unknown file under /console/ still carries the console's headers.
        if !path.ends_with("/x") {
            findings.extend(security_findings(&response, &base));
        }
    }
    assert_no_findings("the console's HTTP surface", &findings);
}

#[tokio::test]
async fn console_can_be_turned_off() {
    let db = TestDb::new().await;
    let gw = TestGateway::start_with(&db, |c| c.http.console = false).await;
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    for path in ["/console", "/console/", "/console/app.js", "/console/app.css"] {
        let response = client
            .get(format!("{}{path}", gw.url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 404, "{path} with http.console = false");
    }
    // The API itself is unaffected.
    let response = client
        .get(format!("{}/healthz", gw.url()))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(response.status(), 200);
}
