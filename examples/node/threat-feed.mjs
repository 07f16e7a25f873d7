// Signs in over HTTP, then follows the tenant's live threat feed over
// graphql-transport-ws (the `graphql-ws` package), printing each threat as one JSON line.
//
//   cd examples/node && npm install
//   GATEWAY=http://127.0.0.1:8000 TENANT=demo-bank USERNAME=olivia.analyst PASSWORD=... \
//   node threat-feed.mjs [--count N]
//
// With --count N it exits after N threats (0 when they arrived). It keeps the last
// cursor: reconnecting with it as `after` replays what was missed.
import { readFileSync } from "node:fs";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const gateway = process.env.GATEWAY ?? "http://127.0.0.1:8000";
const { TENANT, USERNAME, PASSWORD } = process.env;
if (!TENANT || !USERNAME || !PASSWORD) {
  console.error("set TENANT, USERNAME and PASSWORD");
  process.exit(2);
}
const countArg = process.argv.indexOf("--count");
const wanted = countArg > 0 ? Number(process.argv[countArg + 1]) : Infinity;
const documents = new URL("../graphql/", import.meta.url);
const read = (name) => readFileSync(new URL(name, documents), "utf8");

const login = await fetch(`${gateway}/graphql`, {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({
    query: read("login.graphql"),
    variables: { input: { tenant: TENANT, username: USERNAME, password: PASSWORD } },
  }),
}).then((r) => r.json());
if (login.errors) {
  console.error("sign-in failed:", JSON.stringify(login.errors));
  process.exit(1);
}
const token = login.data.login.accessToken;

const client = createClient({
  url: gateway.replace(/^http/, "ws") + "/graphql/ws",
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
});

let seen = 0;
let lastCursor = null;
client.subscribe(
  { query: read("threat-feed.graphql"), variables: { minSeverity: "LOW" } },
  {
    next: ({ data, errors }) => {
      if (errors) {
        console.error("feed error:", JSON.stringify(errors));
        process.exit(1);
      }
      lastCursor = data.threatDetected.cursor;
      console.log(JSON.stringify(data.threatDetected.threat));
      seen += 1;
      if (seen >= wanted) {
        client.dispose();
        process.exit(0);
      }
    },
    error: (err) => {
      console.error("feed closed:", err?.reason ?? err?.message ?? String(err), "last cursor:", lastCursor);
      process.exit(1);
    },
    complete: () => process.exit(0),
  },
);
console.error("subscribed to the threat feed");
