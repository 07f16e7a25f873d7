// The peer: PostGraphile 4 over the same database, as the same RLS-bound role.
//
// Environment: PEER_DATABASE_URL (ultracore_app's URL), PEER_JWT_SECRET (the gateway's
// HS256 key), PEER_PORT, PEER_POOL_SIZE. Each request must carry one of the gateway's own
// access tokens; it is verified here (signature, issuer, audience, expiry) and its tenant
// and user become `app.tenant_id` / `app.user_id` through pgSettings, which PostGraphile
// applies with set_config(..., true) inside the request's transaction: the same RLS
// policies decide what it sees. Unlike the gateway, it does not look the session up in
// the database (PostGraphile has no notion of one).

'use strict';

const http = require('http');
const path = require('path');

const modules = path.join(__dirname, 'node_modules');
const { postgraphile } = require(path.join(modules, 'postgraphile'));
const { Pool } = require(path.join(modules, 'pg'));
const jwt = require(path.join(modules, 'jsonwebtoken'));
const { makePgSmartTagsPlugin } = require(path.join(modules, 'graphile-utils'));

const secret = process.env.PEER_JWT_SECRET;
const port = Number(process.env.PEER_PORT || 5678);
if (!process.env.PEER_DATABASE_URL || !secret) {
  console.error('PEER_DATABASE_URL and PEER_JWT_SECRET are required');
  process.exit(2);
}

const pool = new Pool({
  connectionString: process.env.PEER_DATABASE_URL,
  max: Number(process.env.PEER_POOL_SIZE || 16),
});

function claimsOf(req) {
  const header = req.headers.authorization || '';
  const match = /^Bearer (.+)$/i.exec(header);
  if (!match) {
    throw Object.assign(new Error('a bearer token is required'), { statusCode: 401 });
  }
  return jwt.verify(match[1], secret, {
    algorithms: ['HS256'],
    audience: 'ultracore-api',
    issuer: 'ultracore',
  });
}

// Only the tables and the two computed columns the scenarios use: every other function
// of the schema (audit chain helpers, triggers' helpers ...) is omitted, as PostGraphile
// would otherwise expose each as a field (and two of them collide with column names).
const COMPUTED = new Set(['security_incidents_related_threats', 'threat_events_affected_users']);
const OnlyOurFunctions = makePgSmartTagsPlugin({
  kind: 'procedure',
  match: (proc) => !COMPUTED.has(proc.name),
  tags: { omit: true },
});

const middleware = postgraphile(pool, 'public', {
  appendPlugins: [OnlyOurFunctions],
  graphiql: false,
  disableQueryLog: true,
  retryOnInitFail: false,
  ignoreRBAC: false,
  disableDefaultMutations: true,
  setofFunctionsContainNulls: false,
  legacyRelations: 'omit',
  dynamicJson: true,
  enableQueryBatching: false,
  // security_events and audit_log are partitioned by month (migration 0021): expose the
  // partitioned parent (relkind 'p'), as PostGraphile 4 otherwise leaves it out.
  usePartitionedParent: true,
  pgSettings: async (req) => {
    const claims = claimsOf(req);
    return { 'app.tenant_id': String(claims.tid), 'app.user_id': String(claims.sub) };
  },
});

http.createServer(middleware).listen(port, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${port}`);
});
