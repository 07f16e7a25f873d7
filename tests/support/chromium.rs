//! Headless Chromium driven over the DevTools protocol, for the browser tests (the
//! analyst console, GraphiQL). Chromium is Debian's `chromium` package; `.ci/run`
//! installs it. Without it these tests fail: they are never skipped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::TempDir;

// ---- Chromium ---------------------------------------------------------------------------

/// The Chromium binary on PATH (`chromium`, else `chromium-browser`); fails the test
/// without one.
pub fn chromium_binary() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "Chromium is required by the console tests and neither `chromium` nor `chromium-browser` \
         is on PATH. Install Debian's package (`apt-get install -y chromium`); `.ci/run` does so."
    );
}

/// A headless Chromium of this test, killed (with its whole process group) when dropped.
pub struct Chromium {
    child: Child,
    /// ws:// URL of the browser's DevTools endpoint.
    devtools: String,
    /// The last lines Chromium wrote to stderr, for failure messages.
    stderr: Arc<Mutex<Vec<String>>>,
    _profile: TempDir,
}

impl Chromium {
    pub async fn launch() -> Chromium {
        let binary = chromium_binary();
        let profile = TempDir::new("ultracore-chromium");
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-default-apps",
                "--disable-extensions",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--no-proxy-server",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so Drop can kill every Chromium process at once.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("Chromium's stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, url) = tokio::sync::oneshot::channel();
        let tail = lines.clone();
        // Reads stderr to its end (a full pipe would stall Chromium), keeping the tail.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ")
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(url.trim().to_string());
                }
                let mut tail = tail.lock().unwrap_or_else(|p| p.into_inner());
                tail.push(line);
                if tail.len() > 60 {
                    tail.remove(0);
                }
            }
        });
        let mut chromium = Chromium {
            child,
            devtools: String::new(),
            stderr: lines,
            _profile: profile,
        };
        match tokio::time::timeout(Duration::from_secs(30), url).await {
            Ok(Ok(url)) => chromium.devtools = url,
            _ => panic!(
                "Chromium did not print its DevTools address within 30 s; its stderr:\n{}",
                chromium.stderr_tail()
            ),
        }
        chromium
    }

    pub fn stderr_tail(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the DevTools protocol --------------------------------------------------------------

/// A DevTools client attached to one page; every event it sees is kept for the checks.
pub struct Page {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    pub events: Vec<Value>,
    pub browser: Chromium,
    /// A JavaScript expression describing the page's state, for failure messages.
    pub describe: &'static str,
}

/// Installed before any script of the page runs: records CSP violations as the page
/// sees them (a second witness besides the DevTools Audits and Log domains).
const CSP_WITNESS: &str = "window.__cspViolations = []; \
    document.addEventListener('securitypolicyviolation', \
      (e) => window.__cspViolations.push(e.violatedDirective + ' blocked ' + e.blockedURI));";

impl Page {
    /// Starts Chromium and opens an empty page with Network, Page, Runtime, Log and
    /// Audits enabled.
    pub async fn new() -> Page {
        let browser = Chromium::launch().await;
        let (socket, _) = tokio_tungstenite::connect_async(browser.devtools.as_str())
            .await
            .unwrap_or_else(|e| panic!("connect to Chromium's DevTools at {}: {e}", browser.devtools));
        let mut page = Page {
            socket,
            session: String::new(),
            next_id: 1,
            events: Vec::new(),
            browser,
            describe: "document.body ? document.body.innerText.slice(0, 2000) : ''",
        };
        let target = page
            .command(None, "Target.createTarget", json!({ "url": "about:blank" }))
            .await;
        let target_id = target["targetId"].as_str().expect("targetId").to_string();
        let attached = page
            .command(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        page.session = attached["sessionId"].as_str().expect("sessionId").to_string();
        for domain in ["Network", "Page", "Runtime", "Log", "Audits"] {
            page.call(&format!("{domain}.enable"), json!({})).await;
        }
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": CSP_WITNESS }),
        )
        .await;
        page
    }

    /// Sends one command (to the page's session, or to the browser with None) and
    /// answers its result, keeping every event that arrives meanwhile.
    pub async fn command(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
            .unwrap_or_else(|e| panic!("send {method} to Chromium: {e}"));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let frame = match tokio::time::timeout_at(deadline, self.socket.next()).await {
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => panic!("DevTools socket failed during {method}: {e}"),
                Ok(None) => panic!(
                    "Chromium closed the DevTools socket during {method}; its stderr:\n{}",
                    self.browser.stderr_tail()
                ),
                Err(_) => panic!("Chromium did not answer {method} within 30 s"),
            };
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).expect("DevTools message is JSON");
            if value["id"] == id {
                if let Some(error) = value.get("error") {
                    panic!("{method} failed: {error}");
                }
                return value["result"].clone();
            }
            if value.get("method").is_some() {
                self.events.push(value);
            }
        }
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        self.command(Some(&session), method, params).await
    }

    /// Evaluates `expression` in the page; answers its value (JSON-serialisable).
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("evaluating `{expression}` threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it answers something other than null, false or ""; fails
    /// with `what` and the page's state after `within`.
    pub async fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let start = Instant::now();
        loop {
            let value = self.eval(expression).await;
            let truthy = !(value.is_null() || value == json!(false) || value == json!(""));
            if truthy {
                return value;
            }
            if start.elapsed() > within {
                let state = self.eval(self.describe).await;
                panic!("{what}: not within {within:?}; the page: {state:#}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
