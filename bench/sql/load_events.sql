-- Dataset, step 2: security events, slice :part of :parts (the slices run in parallel).
--
-- Slices are time ranges (slice 0 the oldest), and each inserts in time order, so the heap
-- is laid out like an append-only table's after 90 days: a day's events sit together in
-- the pages of their time (what index-only scans and heap fetches of recent rows see in
-- production), not scattered over the whole table.
--
-- Loaded with session_replication_role = replica, which skips this session's triggers:
-- the live-feed triggers (0016; a bulk load is no feed news, and feed_changes only keeps
-- history clients resume from) and the foreign-key checks (every user_id is computed
-- from a user generated in prepare.sql; finish.sql checks them all with one anti-join).

\set ON_ERROR_STOP on
set session_replication_role = replica;
set synchronous_commit = off;
set work_mem = '512MB';

insert into security_events (event_id, tenant_id, user_id, event_type, event_category, severity, ip_address,
                             device_fingerprint, user_agent, geolocation, description, metadata, risk_score,
                             fraud_score, anomaly_score, action_taken, "timestamp")
select bench.uuid7_at(e.ts), e.tenant_id,
       case when e.r1 < 0.9 then bench.user_id(e.idx, 1 + (e.r2 * e.n_users)::int % e.n_users) end,
       t.event_type, t.category,
       case when e.r3 < 0.70 then 'low' when e.r3 < 0.90 then 'medium' when e.r3 < 0.98 then 'high' else 'critical' end,
       '100.64.0.0'::inet + (e.r2 * 4000000)::bigint,
       case when e.r1 < 0.6 then 'fp-' || (e.r2 * 1000000)::int end,
       (array['Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0',
              'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Safari/605.1.15',
              'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148',
              'Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile',
              'okhttp/4.12.0'])[1 + (e.r4 * 5)::int % 5],
       case when e.r4 < 0.3 then '{"country": "GB", "city": "London"}'::jsonb end,
       t.event_type || ' from ' || host('100.64.0.0'::inet + (e.r2 * 4000000)::bigint),
       '{"source": "bench"}'::jsonb,
       round((e.r3 * 100)::numeric, 2), round((e.r4 * e.r3)::numeric, 2), round((e.r1 * e.r4)::numeric, 2),
       case when t.category = 'authentication' then (array['allow','allow','allow','challenge','deny'])[1 + (e.r4 * 5)::int % 5] end,
       e.ts
  from (select p.idx, p.tenant_id, p.n_users,
               (select base from bench.params) - interval '90 days'
                   + (:part + random()) / :parts * interval '90 days' as ts,
               random() as r1, random() as r2, random() as r3, random() as r4, random() as r5
          from bench.plan p,
               lateral generate_series(1 + (p.n_events * :part) / :parts, (p.n_events * (:part + 1)) / :parts) g
        order by ts) e
  cross join lateral (
        select case when e.r5 < 0.45 then 'login_success' when e.r5 < 0.60 then 'login_failure'
                    when e.r5 < 0.65 then 'mfa_challenge' when e.r5 < 0.80 then 'token_refresh'
                    when e.r5 < 0.85 then 'logout' when e.r5 < 0.87 then 'password_change'
                    when e.r5 < 0.92 then 'access_denied' when e.r5 < 0.95 then 'threat_detected'
                    else 'login_ip_throttled' end as event_type,
               case when e.r5 < 0.65 then 'authentication' when e.r5 < 0.85 then 'session'
                    when e.r5 < 0.87 then 'account' when e.r5 < 0.92 then 'authorization'
                    when e.r5 < 0.95 then 'threat' else 'rate_limit' end as category
  ) t;
