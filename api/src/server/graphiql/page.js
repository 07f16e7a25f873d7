// GraphiQL served by the gateway from local files (no CDN): queries and mutations go to
// POST /graphql with the headers editor's headers (put the bearer token there);
// subscriptions go over graphql-transport-ws at /graphql/ws, with the Authorization
// header sent in connection_init, as the gateway expects.
(function () {
  "use strict";
  const params = new URLSearchParams(window.location.search);
  const wsUrl = (window.location.protocol === "https:" ? "wss://" : "ws://") + window.location.host + "/graphql/ws";

  function authorization(headers) {
    for (const [name, value] of Object.entries(headers || {})) {
      if (name.toLowerCase() === "authorization") return value;
    }
    return null;
  }

  function isSubscription(params) {
    const text = String(params.query || "").replace(/#[^\n]*/g, "");
    const name = params.operationName;
    const pattern = name
      ? new RegExp("subscription\\s+" + name.replace(/[^A-Za-z0-9_]/g, "") + "\\b")
      : /^\s*subscription\b/;
    return pattern.test(text);
  }

  // A minimal graphql-transport-ws client: one socket per subscription, as an async
  // iterator GraphiQL can consume; returning from it closes the socket.
  function subscribe(graphQLParams, headers) {
    const queue = [];
    let wake = null;
    let finished = false;
    const socket = new WebSocket(wsUrl, "graphql-transport-ws");
    const push = (item) => { queue.push(item); if (wake) { wake(); wake = null; } };
    const finish = () => { finished = true; if (wake) { wake(); wake = null; } };
    socket.onopen = () => {
      const auth = authorization(headers);
      socket.send(JSON.stringify({ type: "connection_init", payload: auth ? { Authorization: auth } : {} }));
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      switch (message.type) {
        case "connection_ack":
          socket.send(JSON.stringify({ id: "1", type: "subscribe", payload: graphQLParams }));
          break;
        case "next": push(message.payload); break;
        case "error": push({ errors: message.payload }); finish(); break;
        case "complete": finish(); break;
        case "ping": socket.send(JSON.stringify({ type: "pong" })); break;
        default: break;
      }
    };
    socket.onerror = () => push({ errors: [{ message: "the WebSocket failed" }] });
    socket.onclose = (event) => {
      if (!finished && event.code !== 1000) push({ errors: [{ message: "closed: " + (event.reason || event.code) }] });
      finish();
    };
    return {
      [Symbol.asyncIterator]() { return this; },
      async next() {
        while (queue.length === 0 && !finished) await new Promise((resolve) => { wake = resolve; });
        if (queue.length > 0) return { value: queue.shift(), done: false };
        return { value: undefined, done: true };
      },
      async return() { finished = true; socket.close(1000); return { value: undefined, done: true }; },
    };
  }

  function fetcher(graphQLParams, options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    if (isSubscription(graphQLParams)) return subscribe(graphQLParams, headers);
    headers["content-type"] = "application/json";
    return fetch("/graphql", { method: "POST", headers, body: JSON.stringify(graphQLParams) })
      .then((response) => response.json());
  }

  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  const props = {
    fetcher,
    defaultQuery: params.get("query") || "# Put {\"Authorization\": \"Bearer <token>\"} in Headers below, then:\nquery Me {\n  me { id username role }\n}\n",
    defaultHeaders: params.get("headers") || "{\n  \"Authorization\": \"Bearer <access token from login>\"\n}",
    defaultEditorToolsVisibility: "headers",
    // Tokens are never written to the browser's storage.
    shouldPersistHeaders: false,
  };
  // A link may carry the query and headers to open with (?query=...&headers=...); they
  // win over what GraphiQL remembers from an earlier visit.
  if (params.get("query")) props.query = params.get("query");
  if (params.get("headers")) props.headers = params.get("headers");
  root.render(React.createElement(GraphiQL, props));
})();
