-- Dataset, step 2: threat intelligence (one job). Triggers stay on: the canonicalising
-- trigger of 0015 sees every value, as for any other writer. A tenth of the indicators
-- are global (tenant_id NULL), the rest follow the tenants' shares.

\set ON_ERROR_STOP on
set synchronous_commit = off;

insert into threat_intelligence (intel_id, tenant_id, indicator_type, indicator_value, threat_type, severity,
                                 confidence, source, description, first_seen, last_seen, expires_at, is_active,
                                 created_at, updated_at)
select bench.uuid7_at(x.seen), x.tenant_id, x.kind,
       case x.kind
           when 'ip' then host('11.0.0.0'::inet + (x.scope * 1000000 + x.j))
           when 'domain' then 'bad' || x.j || '.s' || x.scope || '.example'
           when 'email' then 'phish' || x.j || '@s' || x.scope || '.example'
           else md5(x.scope || ':' || x.j)
       end,
       (array['botnet','phishing','malware','scanner'])[1 + x.j % 4],
       (array['low','medium','high','critical'])[1 + (x.j * 7) % 4],
       round((40 + (x.j * 37) % 60)::numeric, 2),
       case when x.tenant_id is null then 'platform-feed' else 'tenant-feed' end,
       'Indicator from the bench generator',
       x.seen, x.seen + interval '7 days',
       case when x.j % 5 = 0 then x.seen + interval '180 days' end,
       x.j % 10 <> 0,
       x.seen, x.seen
  from (select s.scope, s.tenant_id, j,
               (array['ip','domain','email','hash'])[1 + j % 4] as kind,
               (select base from bench.params) - random() * interval '365 days' as seen
          from (select p.idx as scope, p.tenant_id, p.n_intel as n from bench.plan p
                union all
                select (select tenants from bench.params), null, (select intel from bench.params) / 10) s,
               lateral generate_series(1, s.n) j
        offset 0) x;
