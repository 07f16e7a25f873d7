// Subscription load: N WebSocket subscribers across tenants, security events inserted at
// a fixed rate, delivery latency per (event, subscriber).
//
// Usage: node subscribers.js CONFIG.json. CONFIG: { url, tokens: [{tenant, token}],
// subscribers, rate, duration_s, owner_url, connect_concurrency }. Prints one line
// `BENCH_RESULT {...}` with the figures.
//
// Protocol: graphql-transport-ws on /graphql/ws, the access token in connection_init as
// {"Authorization": "Bearer ..."}, then one `securityEventRecorded` subscription per
// socket filtered to the probe events' type. Subscribers are spread round-robin over the
// tenants (one signed-in admin per tenant, whose token its subscribers share).
//
// Latency: each probe is one autocommit INSERT by the database owner (plain SQL, as any
// writer; the row's feed trigger NOTIFYs at commit). It is measured from the moment
// the INSERT's commit is acknowledged to this process until the item arrives on a
// subscriber's socket, on this process's monotonic clock; the INSERT round trip itself is
// reported beside it. A probe is first sent to every tenant and awaited by every
// subscriber (so all subscriptions are live) before the measured phase starts.

'use strict';

const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');

const modules = path.join(__dirname, '..', 'peer', 'node_modules');
const WebSocket = require(path.join(modules, 'ws'));
const { Client } = require(path.join(modules, 'pg'));

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const DOCUMENT =
  'subscription { securityEventRecorded(filter: {eventTypes: ["bench_probe"]}) ' +
  '{ cursor event { id description timestamp } } }';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const log = (...args) => console.error('[subscribers]', ...args);

const state = {
  sent: new Map(), // probe seq -> { committed, expected, received }
  latencies: [],
  unexpected: 0,
  errors: 0,
  closed: 0,
  errorSample: '',
  measuring: false,
};

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank];
}

function subscribe(index, tenantEntry) {
  return new Promise((resolve) => {
    const socket = new WebSocket(config.url, 'graphql-transport-ws', { perMessageDeflate: false });
    let settled = false;
    const done = (ok) => {
      if (!settled) {
        settled = true;
        resolve(ok ? socket : null);
      }
    };
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${tenantEntry.token}` } }));
    });
    socket.on('message', (data) => {
      const now = performance.now();
      let message;
      try {
        message = JSON.parse(data.toString());
      } catch (e) {
        state.errors += 1;
        return;
      }
      switch (message.type) {
        case 'connection_ack':
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: DOCUMENT } }));
          done(true);
          break;
        case 'ping':
          socket.send(JSON.stringify({ type: 'pong' }));
          break;
        case 'next': {
          const payload = message.payload || {};
          if (payload.errors) {
            state.errors += 1;
            if (!state.errorSample) state.errorSample = JSON.stringify(payload.errors).slice(0, 300);
            return;
          }
          const description = payload.data.securityEventRecorded.event.description || '';
          const seq = Number(description.split(':')[1]);
          const probe = state.sent.get(seq);
          if (!probe || probe.tenant !== tenantEntry.tenant) {
            state.unexpected += 1;
            return;
          }
          probe.received += 1;
          if (probe.measured) {
            if (probe.committed === null) {
              probe.early.push(now);
            } else {
              state.latencies.push(now - probe.committed);
            }
          }
          break;
        }
        case 'error':
        case 'complete':
          state.errors += 1;
          if (!state.errorSample) state.errorSample = JSON.stringify(message).slice(0, 300);
          break;
        default:
          break;
      }
    });
    socket.on('error', (e) => {
      state.errors += 1;
      if (!state.errorSample) state.errorSample = String(e && e.message).slice(0, 300);
      done(false);
    });
    socket.on('close', () => {
      state.closed += 1;
      done(false);
    });
  });
}

async function insertProbe(client, seq, tenant, expected, measured) {
  const probe = { tenant, expected, received: 0, committed: null, measured, early: [] };
  state.sent.set(seq, probe);
  const started = performance.now();
  await client.query(
    "insert into security_events (tenant_id, event_type, event_category, severity, description) " +
      "values ($1, 'bench_probe', 'threat', 'low', $2)",
    [tenant, `bench_probe:${seq}`],
  );
  probe.committed = performance.now();
  probe.roundTrip = probe.committed - started;
  // Deliveries that beat the commit acknowledgement count as zero latency.
  for (const _ of probe.early) state.latencies.push(0);
  probe.early = [];
}

async function main() {
  const tenants = config.tokens;
  const perTenant = new Map(tenants.map((t) => [t.tenant, 0]));
  const sockets = [];
  const connectStart = performance.now();
  let next = 0;
  let failedConnects = 0;
  const worker = async () => {
    while (next < config.subscribers) {
      const index = next++;
      const entry = tenants[index % tenants.length];
      const socket = await subscribe(index, entry);
      if (socket) {
        sockets.push(socket);
        perTenant.set(entry.tenant, perTenant.get(entry.tenant) + 1);
      } else {
        failedConnects += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: config.connect_concurrency || 100 }, worker));
  const connectSeconds = (performance.now() - connectStart) / 1000;
  log(`${sockets.length} subscribed (${failedConnects} failed) in ${connectSeconds.toFixed(1)} s`);

  const clients = [];
  for (let i = 0; i < 4; i += 1) {
    const client = new Client({ connectionString: config.owner_url });
    await client.connect();
    clients.push(client);
  }

  // Warm-up: one probe per tenant, awaited by all of its subscribers, so every
  // subscription is registered with the gateway's feed before anything is measured.
  let seq = 0;
  const warmup = [];
  for (const t of tenants) {
    seq += 1;
    warmup.push(seq);
    await insertProbe(clients[seq % clients.length], seq, t.tenant, perTenant.get(t.tenant), false);
  }
  const warmDeadline = performance.now() + 60000;
  while (performance.now() < warmDeadline) {
    if (warmup.every((s) => state.sent.get(s).received >= state.sent.get(s).expected)) break;
    await sleep(100);
  }
  const warmMissing = warmup.reduce((n, s) => n + Math.max(0, state.sent.get(s).expected - state.sent.get(s).received), 0);
  log(`warm-up: ${warmMissing} deliveries missing`);

  // Measured phase: `rate` probes per second for `duration_s`, tenants round-robin, each
  // INSERT on its own client in turn (a slow commit does not delay the schedule).
  const total = Math.round(config.rate * config.duration_s);
  const first = seq + 1;
  const phaseStart = performance.now();
  const pending = [];
  for (let i = 0; i < total; i += 1) {
    const due = phaseStart + (i * 1000) / config.rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    seq += 1;
    const t = tenants[i % tenants.length];
    pending.push(insertProbe(clients[i % clients.length], seq, t.tenant, perTenant.get(t.tenant), true));
  }
  await Promise.all(pending);
  const last = seq;
  const insertSeconds = (performance.now() - phaseStart) / 1000;

  const expectedOf = () => {
    let expected = 0;
    let received = 0;
    for (let s = first; s <= last; s += 1) {
      expected += state.sent.get(s).expected;
      received += Math.min(state.sent.get(s).received, state.sent.get(s).expected);
    }
    return { expected, received };
  };
  const drainDeadline = performance.now() + 15000;
  while (performance.now() < drainDeadline) {
    const { expected, received } = expectedOf();
    if (received >= expected) break;
    await sleep(100);
  }
  const { expected, received } = expectedOf();
  const roundTrips = [];
  for (let s = first; s <= last; s += 1) roundTrips.push(state.sent.get(s).roundTrip);
  roundTrips.sort((a, b) => a - b);
  const sorted = state.latencies.slice().sort((a, b) => a - b);

  for (const socket of sockets) socket.terminate();
  for (const client of clients) await client.end();

  const result = {
    subscribers: sockets.length,
    failed_connects: failedConnects,
    connect_seconds: connectSeconds,
    tenants: tenants.length,
    probes: total,
    insert_seconds: insertSeconds,
    expected_deliveries: expected,
    deliveries: received,
    missing_deliveries: expected - received,
    warmup_missing: warmMissing,
    deliveries_per_second: received / insertSeconds,
    p50_ms: percentile(sorted, 50),
    p99_ms: percentile(sorted, 99),
    max_ms: sorted.length ? sorted[sorted.length - 1] : null,
    insert_round_trip_p50_ms: percentile(roundTrips, 50),
    unexpected: state.unexpected,
    errors: state.errors,
    error_sample: state.errorSample,
  };
  console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
