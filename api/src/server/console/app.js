// UltraCore analyst console.
//
// Signs in through the `login` mutation, keeps the tokens in memory only (never in
// storage or cookies: a reload signs out), shows threat counts by severity, follows the
// live threat feed over /graphql/ws (graphql-transport-ws) and resumes it with
// `after: <last cursor>` when the socket drops, and opens incidents from threats.
// Every piece of data reaches the page through textContent: no HTML is built from
// strings (the page's Content-Security-Policy enforces Trusted Types with no policy).
"use strict";

(() => {
  const GRAPHQL_URL = "/graphql";
  const WS_PROTOCOL = "graphql-transport-ws";
  const SUBSCRIPTION_ID = "threats";
  const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
  const MAX_ROWS = 200;
  const RECENT = 20;
  const COUNTS_DEBOUNCE_MS = 2000;
  const MAX_BACKOFF_MS = 30000;

  const LOGIN = `mutation ConsoleLogin($input: LoginInput!) {
    login(input: $input) {
      accessToken refreshToken expiresAt mfaRequired passwordExpired
      user { username role }
    }
  }`;
  const REFRESH = `mutation ConsoleRefresh($refreshToken: String!) {
    refreshSession(refreshToken: $refreshToken) { accessToken refreshToken expiresAt }
  }`;
  const LOGOUT = "mutation ConsoleLogout { logout }";
  const COUNTS = `query ConsoleCounts {
    CRITICAL: threatEvents(first: 0, filter: {severities: [CRITICAL]}) { totalCount }
    HIGH: threatEvents(first: 0, filter: {severities: [HIGH]}) { totalCount }
    MEDIUM: threatEvents(first: 0, filter: {severities: [MEDIUM]}) { totalCount }
    LOW: threatEvents(first: 0, filter: {severities: [LOW]}) { totalCount }
  }`;
  const RECENT_THREATS = `query ConsoleRecent($first: Int!) {
    threatEvents(first: $first, orderBy: DETECTED_AT_DESC) {
      edges { node { id threatType severity detectedAt description } }
    }
  }`;
  const THREAT_FEED = `subscription ConsoleFeed($after: String) {
    threatDetected(after: $after) {
      cursor
      threat { id threatType severity detectedAt description }
    }
  }`;
  const OPEN_INCIDENT = `mutation ConsoleOpenIncident($input: OpenIncidentInput!) {
    openIncident(input: $input) { id title status priority severity relatedThreatIds }
  }`;

  const state = {
    token: null,
    refreshToken: null,
    expiresAt: 0,
    refreshTimer: null,
    refreshing: null,
    socket: null,
    generation: 0,
    acked: false,
    lastCursor: null,
    retry: 0,
    reconnectTimer: null,
    countsTimer: null,
    counts: {},
    seen: new Set(),
    recentLoaded: false,
  };

  const $ = (id) => document.getElementById(id);

  /** An error of the API, with its `extensions.code`. */
  class ApiError extends Error {
    constructor(message, code, retryAfter) {
      super(message);
      this.code = code || null;
      this.retryAfter = retryAfter ?? null;
    }
  }

  function describe(err) {
    if (!(err instanceof ApiError)) return "The gateway could not be reached.";
    switch (err.code) {
      case "UNAUTHENTICATED":
        return "Invalid credentials, or the session has ended.";
      case "FORBIDDEN":
        return "Your role is not allowed to do this.";
      case "RATE_LIMITED":
        return err.retryAfter
          ? `Too many attempts: try again in ${err.retryAfter} s.`
          : "Too many attempts: try again later.";
      default:
        return err.message || "The request failed.";
    }
  }

  /** Runs one GraphQL operation over POST /graphql; answers its data or throws ApiError. */
  async function gql(query, variables, token) {
    const headers = { "content-type": "application/json", accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(GRAPHQL_URL, {
        method: "POST",
        headers,
        body: JSON.stringify({ query, variables: variables || {} }),
        credentials: "omit",
        cache: "no-store",
        referrerPolicy: "no-referrer",
      });
    } catch (_) {
      throw new Error("network");
    }
    let body;
    try {
      body = await response.json();
    } catch (_) {
      throw new ApiError(`HTTP ${response.status}`, null);
    }
    const errors = Array.isArray(body.errors) ? body.errors : [];
    if (errors.length > 0) {
      const first = errors[0] || {};
      const ext = first.extensions || {};
      throw new ApiError(String(first.message || "error"), ext.code, ext.retryAfter);
    }
    if (!response.ok) throw new ApiError(`HTTP ${response.status}`, null);
    return body.data || {};
  }

  /** As the signed-in user; one refresh and retry when the access token has expired. */
  async function authed(query, variables) {
    try {
      return await gql(query, variables, state.token);
    } catch (err) {
      if (err instanceof ApiError && err.code === "UNAUTHENTICATED" && (await refresh())) {
        return gql(query, variables, state.token);
      }
      throw err;
    }
  }

  function setStatus(name, text) {
    const el = $("status");
    el.dataset.state = name;
    el.textContent = text || name;
  }

  // ---- signing in and out -------------------------------------------------------------

  async function onLogin(event) {
    event.preventDefault();
    const form = $("login-form");
    const error = $("login-error");
    const button = $("sign-in");
    error.textContent = "";
    const tenant = $("tenant").value.trim();
    const username = $("username").value.trim();
    const password = $("password").value;
    if (!tenant || !username || !password) {
      error.textContent = "Tenant, username and password are required.";
      return;
    }
    const input = { tenant, username, password };
    const mfaShown = !$("totp-row").hidden;
    const code = $("totp").value.replace(/\s+/g, "");
    if (mfaShown) {
      if (!code) {
        error.textContent = "Enter your authentication code.";
        $("totp").focus();
        return;
      }
      if (/^[0-9]{6}$/.test(code)) input.totpCode = code;
      else input.backupCode = code;
    }
    button.disabled = true;
    try {
      const data = await gql(LOGIN, { input }, null);
      const auth = data.login || {};
      if (auth.mfaRequired) {
        $("totp-row").hidden = false;
        $("totp").value = "";
        $("totp").focus();
        error.textContent = mfaShown ? "That code was not accepted." : "";
        return;
      }
      if (auth.passwordExpired) {
        error.textContent = "Your password has expired: change it, then sign in here again.";
        return;
      }
      if (!auth.accessToken) {
        error.textContent = "The sign-in did not complete.";
        return;
      }
      form.reset();
      $("totp-row").hidden = true;
      start(auth, tenant);
    } catch (err) {
      error.textContent = describe(err);
    } finally {
      button.disabled = false;
    }
  }

  function remember(auth) {
    state.token = auth.accessToken;
    if (auth.refreshToken) state.refreshToken = auth.refreshToken;
    const expires = Date.parse(auth.expiresAt || "");
    state.expiresAt = Number.isFinite(expires) ? expires : Date.now() + 5 * 60 * 1000;
    clearTimeout(state.refreshTimer);
    if (state.refreshToken) {
      const wait = Math.max(5000, state.expiresAt - Date.now() - 60 * 1000);
      state.refreshTimer = setTimeout(() => {
        refresh().then((ok) => {
          if (!ok) signOut("Your session has ended: sign in again.");
        });
      }, wait);
    }
  }

  /** Replaces the tokens through refreshSession; false when the session is over. */
  function refresh() {
    if (!state.refreshToken) return Promise.resolve(false);
    if (state.refreshing) return state.refreshing;
    const presented = state.refreshToken;
    state.refreshing = gql(REFRESH, { refreshToken: presented }, null)
      .then((data) => {
        const auth = data.refreshSession || {};
        if (!auth.accessToken || state.refreshToken !== presented) return false;
        remember(auth);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        state.refreshing = null;
      });
    return state.refreshing;
  }

  function start(auth, tenant) {
    remember(auth);
    const user = auth.user || {};
    const role = typeof user.role === "string" ? user.role.toLowerCase().replace(/_/g, " ") : "";
    $("identity").textContent = `${user.username || ""} · ${tenant}${role ? ` · ${role}` : ""}`;
    $("login-view").hidden = true;
    $("console-view").hidden = false;
    $("sign-out").hidden = false;
    $("feed-error").textContent = "";
    connect();
  }

  function signOut(message) {
    const token = state.token;
    state.token = null;
    state.refreshToken = null;
    clearTimeout(state.refreshTimer);
    clearTimeout(state.reconnectTimer);
    clearTimeout(state.countsTimer);
    dropSocket();
    if (token) gql(LOGOUT, {}, token).catch(() => {});
    state.lastCursor = null;
    state.retry = 0;
    state.counts = {};
    state.seen.clear();
    state.recentLoaded = false;
    $("threats").replaceChildren();
    $("feed-empty").hidden = false;
    for (const severity of SEVERITIES) $(`count-${severity}`).textContent = "–";
    $("identity").textContent = "";
    $("console-view").hidden = true;
    $("login-view").hidden = false;
    $("sign-out").hidden = true;
    $("login-error").textContent = message || "";
    setStatus("signed-out", "signed out");
  }

  // ---- the live feed ------------------------------------------------------------------

  function socketUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/graphql/ws`;
  }

  /** Closes the current socket, if any, so that none of its events count any more. */
  function dropSocket() {
    state.generation += 1;
    const socket = state.socket;
    state.socket = null;
    state.acked = false;
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000, "bye");
  }

  function connect() {
    dropSocket();
    clearTimeout(state.reconnectTimer);
    if (!state.token) return;
    const generation = state.generation;
    const current = () => generation === state.generation;
    setStatus(state.lastCursor ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(socketUrl(), WS_PROTOCOL);
    } catch (_) {
      scheduleReconnect();
      return;
    }
    state.socket = socket;
    const send = (message) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
    };
    socket.addEventListener("open", () => {
      if (!current()) return;
      send({ type: "connection_init", payload: { Authorization: `Bearer ${state.token}` } });
    });
    socket.addEventListener("message", (event) => {
      if (!current()) return;
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (_) {
        return;
      }
      switch (message.type) {
        case "connection_ack":
          state.acked = true;
          state.retry = 0;
          send({
            id: SUBSCRIPTION_ID,
            type: "subscribe",
            payload: { query: THREAT_FEED, variables: { after: state.lastCursor } },
          });
          $("feed-error").textContent = "";
          setStatus("live");
          loadCounts();
          // Without a cursor (nothing arrived yet) the feed cannot resume where it
          // stopped: the recent list fills what a dropped socket may have missed.
          if (!state.recentLoaded || !state.lastCursor) loadRecent();
          break;
        case "ping":
          send({ type: "pong" });
          break;
        case "next":
          if (message.id === SUBSCRIPTION_ID) onFeedPayload(message.payload || {});
          break;
        case "error":
          if (message.id === SUBSCRIPTION_ID) {
            const errors = Array.isArray(message.payload) ? message.payload : [];
            failFeed((errors[0] && errors[0].message) || "The subscription was refused.");
          }
          break;
        case "complete":
          // The gateway ended the stream (its session ended, or it is shutting down):
          // a new connection tells which.
          if (message.id === SUBSCRIPTION_ID) {
            dropSocket();
            scheduleReconnect();
          }
          break;
        default:
          break;
      }
    });
    socket.addEventListener("close", (event) => {
      if (!current()) return;
      const acked = state.acked;
      state.socket = null;
      state.acked = false;
      if (!state.token) return;
      if (!acked && event.code === 1002) {
        // connection_init refused: the access token expired or is no longer valid.
        state.generation += 1;
        refresh().then((ok) => {
          if (ok) scheduleReconnect();
          else signOut("Your session has ended: sign in again.");
        });
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (!state.token) return;
    clearTimeout(state.reconnectTimer);
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** state.retry);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    state.retry = Math.min(state.retry + 1, 10);
    setStatus("reconnecting", `reconnecting in ${Math.ceil(delay / 1000)} s`);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function failFeed(text) {
    dropSocket();
    $("feed-error").textContent = text;
    setStatus("error", "feed stopped");
  }

  function onFeedPayload(payload) {
    const errors = Array.isArray(payload.errors) ? payload.errors : [];
    if (errors.length > 0) {
      const first = errors[0] || {};
      const code = (first.extensions || {}).code;
      if (code === "UNAUTHENTICATED") {
        dropSocket();
        refresh().then((ok) => {
          if (ok) connect();
          else signOut("Your session has ended: sign in again.");
        });
      } else if (code === "FORBIDDEN") {
        failFeed("Your role cannot read threats (threats:read is needed).");
      } else {
        $("feed-error").textContent = String(first.message || "The feed reported an error.");
      }
      return;
    }
    const item = (payload.data || {}).threatDetected;
    if (!item || !item.threat) return;
    if (typeof item.cursor === "string") state.lastCursor = item.cursor;
    const added = addThreat(item.threat, true);
    if (added && typeof state.counts[item.threat.severity] === "number") {
      state.counts[item.threat.severity] += 1;
      renderCount(item.threat.severity);
    }
    // Then the exact figures, once a burst is over.
    clearTimeout(state.countsTimer);
    state.countsTimer = setTimeout(loadCounts, COUNTS_DEBOUNCE_MS);
  }

  // ---- counts and the list ------------------------------------------------------------

  async function loadCounts() {
    try {
      const data = await authed(COUNTS, {});
      for (const severity of SEVERITIES) {
        const count = data[severity] && data[severity].totalCount;
        if (typeof count === "number") {
          state.counts[severity] = count;
          renderCount(severity);
        }
      }
    } catch (err) {
      if (state.token) $("feed-error").textContent = `Counts: ${describe(err)}`;
    }
  }

  function renderCount(severity) {
    const el = $(`count-${severity}`);
    if (el) el.textContent = String(state.counts[severity]);
  }

  async function loadRecent() {
    state.recentLoaded = true;
    try {
      const data = await authed(RECENT_THREATS, { first: RECENT });
      const edges = (data.threatEvents && data.threatEvents.edges) || [];
      for (const edge of edges) {
        if (edge && edge.node) addThreat(edge.node, false);
      }
    } catch (err) {
      state.recentLoaded = false;
      if (state.token) $("feed-error").textContent = `Recent threats: ${describe(err)}`;
    }
  }

  /**
   * Shows a threat: on top when it just arrived from the feed, else in its place by
   * detection time.
   */
  function addThreat(threat, live) {
    if (!threat.id || state.seen.has(threat.id)) return false;
    state.seen.add(threat.id);
    const list = $("threats");
    const row = renderThreat(threat, live);
    if (live) {
      list.prepend(row);
    } else {
      const at = Date.parse(threat.detectedAt || "");
      const before = Array.from(list.children).find((other) => {
        const otherAt = Number(other.dataset.detectedAt);
        return Number.isFinite(at) && Number.isFinite(otherAt) && otherAt < at;
      });
      list.insertBefore(row, before || null);
    }
    while (list.children.length > MAX_ROWS) {
      const last = list.lastElementChild;
      state.seen.delete(last.dataset.threatId);
      last.remove();
    }
    $("feed-empty").hidden = true;
    if (live) setTimeout(() => row.classList.remove("fresh"), 8000);
    return true;
  }

  function text(tag, className, value) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    el.textContent = value == null ? "" : String(value);
    return el;
  }

  function when(iso) {
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso || "") : date.toLocaleString();
  }

  function renderThreat(threat, live) {
    const severity = SEVERITIES.includes(threat.severity) ? threat.severity : "LOW";
    const row = document.createElement("li");
    row.className = `threat sev-${severity.toLowerCase()}${live ? " fresh" : ""}`;
    row.dataset.threatId = String(threat.id);
    row.dataset.source = live ? "feed" : "list";
    const at = Date.parse(threat.detectedAt || "");
    if (Number.isFinite(at)) row.dataset.detectedAt = String(at);

    row.append(text("span", `badge sev-${severity.toLowerCase()}`, severity.toLowerCase()));
    row.append(text("span", "type", threat.threatType));

    const actions = document.createElement("div");
    actions.className = "actions";
    const button = text("button", "open-incident", "Open incident");
    button.type = "button";
    const result = text("span", "result", "");
    result.setAttribute("role", "status");
    button.addEventListener("click", () => openIncident(threat, button, result));
    actions.append(button, result);
    row.append(actions);

    row.append(text("span", "meta", `${when(threat.detectedAt)} · ${threat.id}`));
    if (threat.description) row.append(text("p", "description", threat.description));
    return row;
  }

  async function openIncident(threat, button, result) {
    button.disabled = true;
    result.className = "result";
    result.textContent = "Opening…";
    const severity = SEVERITIES.includes(threat.severity) ? threat.severity : "MEDIUM";
    const input = {
      incidentType: String(threat.threatType).slice(0, 100),
      severity,
      priority: severity,
      title: `${threat.threatType} (${severity.toLowerCase()} threat)`.slice(0, 500),
      description: threat.description ? String(threat.description).slice(0, 10000) : null,
      relatedThreatIds: [threat.id],
    };
    try {
      const data = await authed(OPEN_INCIDENT, { input });
      const incident = data.openIncident || {};
      result.className = "result ok";
      result.dataset.incidentId = String(incident.id || "");
      result.textContent = `Incident ${String(incident.id || "").slice(0, 8)} opened: ${String(
        incident.status || "",
      ).toLowerCase()}, ${String(incident.priority || "").toLowerCase()} priority`;
      button.textContent = "Incident opened";
    } catch (err) {
      result.className = "result failed";
      result.textContent = describe(err);
      button.disabled = false;
    }
  }

  // ---- start --------------------------------------------------------------------------

  $("login-form").addEventListener("submit", onLogin);
  $("sign-out").addEventListener("click", () => signOut(""));
  setStatus("signed-out", "signed out");
})();
