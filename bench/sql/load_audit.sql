-- Dataset, step 2: audit rows of the tenants with :first <= idx <= :last (the big tenant
-- and the rest run as two parallel jobs).
--
-- Inserted through the chain trigger of 0008, like every other writer: it numbers each
-- row, links it to the previous row's hash and hashes it with audit_log_canonical(), so
-- `ultracore audit verify` accepts the result (finish step checks one tenant). The
-- trigger also stamps the time, so these rows carry the load's time, not the past.

\set ON_ERROR_STOP on
set synchronous_commit = off;

insert into audit_log (tenant_id, user_id, action, entity_type, entity_id, old_values, new_values, ip_address,
                       user_agent)
select x.tenant_id,
       bench.user_id(x.idx, case when x.n_users >= 100 then 100 * (1 + x.a::int % (x.n_users / 100))
                                 else 1 + x.a::int % x.n_users end),
       (array['user.update','threat.report','incident.open','session.revoke','user.lock','intel.add'])[1 + x.a % 6],
       (array['user','threat_event','security_incident','session','user','threat_intelligence'])[1 + x.a % 6],
       gen_random_uuid(),
       case when x.a % 6 in (0, 4) then jsonb_build_object('is_locked', false, 'role', 'customer') end,
       jsonb_build_object('bench', true, 'seq', x.a),
       '100.64.0.0'::inet + ((x.a * 7919) % 4000000),
       'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0'
  from (select p.idx, p.tenant_id, p.n_users, a
          from bench.plan p, lateral generate_series(1, p.n_audit) a
         where p.idx between :first and :last
        offset 0) x;
