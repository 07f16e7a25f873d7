-- Dataset, step 2: threats, incidents and devices (one job; runs beside the others).
--
-- session_replication_role = replica skips the feed triggers and the foreign-key
-- checks, as for security events: every referenced user and threat id is computed from
-- a row generated in prepare.sql or here; finish.sql checks the user references.

\set ON_ERROR_STOP on
set session_replication_role = replica;
set synchronous_commit = off;

insert into threat_events (threat_id, tenant_id, threat_type, severity, status, description, indicators,
                           affected_user_ids, detection_method, confidence, response_action, response_status,
                           detected_at, mitigated_at, resolved_at)
select bench.threat_id(x.idx, x.j), x.tenant_id, x.threat_type,
       case when x.r1 < 0.35 then 'low' when x.r1 < 0.70 then 'medium' when x.r1 < 0.92 then 'high' else 'critical' end,
       x.status,
       x.threat_type || ' detected by the bench generator',
       array['100.64.0.0'::inet + (x.r2 * 4000000)::bigint]::text[],
       array(select bench.user_id(x.idx, 1 + ((x.j * 7919 + u * 104729) % x.n_users))
               from generate_series(1, 1 + (x.r3 * 3)::int % 3) u),
       (array['rule_based','rule_based','ml_model','manual'])[1 + (x.r2 * 4)::int % 4],
       round((50 + x.r3 * 50)::numeric, 2),
       (array['block_ip','lock_account','alert','demand_mfa'])[1 + (x.r1 * 4)::int % 4],
       'executed',
       bench.threat_detected(x.idx, x.j),
       case when x.status in ('mitigated', 'resolved') then bench.threat_detected(x.idx, x.j) + interval '1 hour' end,
       case when x.status = 'resolved' then bench.threat_detected(x.idx, x.j) + interval '1 day' end
  from (select p.idx, p.tenant_id, p.n_users, j, random() as r1, random() as r2, random() as r3,
               (array['brute_force','credential_stuffing','password_spraying','account_takeover',
                      'threat_intel_match','impossible_travel'])[1 + (j * 13) % 6] as threat_type,
               (array['detected','investigating','mitigated','resolved','resolved'])[1 + (j * 7) % 5] as status
          from bench.plan p, lateral generate_series(1, p.n_threats) j
        offset 0) x;

insert into security_incidents (incident_id, tenant_id, incident_type, severity, status, priority, title,
                                description, assigned_to, related_threat_ids, related_event_ids,
                                created_at, updated_at, resolved_at, closed_at)
select bench.uuid7_at(x.ts), x.tenant_id, x.kind,
       (array['medium','high','high','critical'])[1 + (x.i * 3) % 4],
       x.status,
       (array['low','medium','high','critical'])[1 + (x.i * 5) % 4],
       'Bench incident ' || x.i || ': ' || x.kind,
       'Opened by the bench generator',
       case when x.i % 3 <> 0 then bench.user_id(x.idx, case when x.n_users >= 100
                                                         then 100 * (1 + x.i % (x.n_users / 100))
                                                         else 1 + x.i % x.n_users end) end,
       array(select bench.threat_id(x.idx, 1 + ((x.i * 31 + t * 7919) % x.n_threats))
               from generate_series(1, 1 + x.i % 3) t),
       '{}',
       x.ts, x.ts + interval '2 hours',
       case when x.status in ('resolved', 'closed') then x.ts + interval '1 day' end,
       case when x.status = 'closed' then x.ts + interval '2 days' end
  from (select p.idx, p.tenant_id, p.n_users, p.n_threats, i,
               (select base from bench.params) - random() * interval '90 days' as ts,
               (array['brute_force','credential_stuffing','password_spraying','account_takeover'])[1 + i % 4] as kind,
               (array['open','investigating','resolved','closed'])[1 + (i * 7) % 4] as status
          from bench.plan p, lateral generate_series(1, p.n_incidents) i
        offset 0) x;

-- Devices: user k of a tenant owns device j when k = 1 + (j - 1) % n_users (so some
-- users have two or three, many none); a third are trusted.
insert into trusted_devices (device_id, tenant_id, user_id, device_fingerprint, device_name, device_type,
                             trust_score, is_trusted, trusted_at, first_seen_at, last_seen_at, last_ip_address,
                             created_at, updated_at)
select bench.uuid7_at(x.seen - interval '30 days'), x.tenant_id,
       bench.user_id(x.idx, 1 + ((x.j - 1) * 7919 % x.n_users)),
       'fp-' || x.idx || '-' || x.j,
       (array['Work laptop','Phone','Tablet','Home PC'])[1 + x.j % 4],
       (array['desktop','mobile','tablet','desktop'])[1 + x.j % 4],
       (30 + (x.j * 37) % 70)::numeric(5,2),
       x.j % 3 = 0,
       case when x.j % 3 = 0 then x.seen - interval '20 days' end,
       x.seen - interval '30 days', x.seen,
       '100.64.0.0'::inet + ((x.j::bigint * 104729) % 4000000),
       x.seen - interval '30 days', x.seen
  from (select p.idx, p.tenant_id, p.n_users, j,
               (select base from bench.params) - random() * interval '60 days' as seen
          from bench.plan p, lateral generate_series(1, p.n_devices) j
        offset 0) x;
