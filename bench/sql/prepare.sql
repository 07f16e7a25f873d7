-- Dataset, step 1 of 3 (run as the database owner, once, before the parallel loaders).
--
-- Creates the `bench` schema (the generator's own helpers, dropped again by finish.sql),
-- the tenants and every user, and drops the secondary indexes of the big tables so that
-- they are built once, sorted, after the load (finish.sql recreates each one from the
-- exact definition saved here: same name, same columns, same options).
--
-- psql variables: tenants, users, events, threats, incidents, intel, audit, devices
-- (row counts), hash (one Argon2id PHC string that every generated user shares).

\set ON_ERROR_STOP on
set client_min_messages = warning;

drop schema if exists bench cascade;
create schema bench;

create table bench.params (
    base      timestamptz not null,
    tenants   int not null,
    users     int not null,
    events    bigint not null,
    threats   int not null,
    incidents int not null,
    intel     int not null,
    audit     bigint not null,
    devices   int not null,
    hash      text not null
);
insert into bench.params
values (date_trunc('second', now()), :tenants, :users, :events, :threats, :incidents, :intel, :audit,
        :devices, :'hash');

-- A UUIDv7 for a given time: 48-bit Unix milliseconds, then random bits (like
-- ultracore_uuid_v7(), but for a time in the past, so keys stay time-ordered).
create function bench.uuid7_at(ts timestamptz) returns uuid
language sql volatile as $$
    select encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
                  placing substring(int8send(floor(extract(epoch from ts) * 1000)::bigint) from 3 for 6)
                  from 1 for 6), 52, 1), 53, 1), 'hex')::uuid
$$;

-- The same, but deterministic: the random part comes from md5(salt), so a row's id can be
-- recomputed from its ordinal wherever another table refers to it (no lookup join).
create function bench.uuid7_det(ts timestamptz, salt text) returns uuid
language sql immutable as $$
    select encode(
        set_byte(set_byte(
            overlay(decode(md5(salt), 'hex')
                    placing substring(int8send(floor(extract(epoch from ts) * 1000)::bigint) from 3 for 6)
                    from 1 for 6),
            6, (get_byte(decode(md5(salt), 'hex'), 6) & 15) | 112),
            8, (get_byte(decode(md5(salt), 'hex'), 8) & 63) | 128),
        'hex')::uuid
$$;

-- Tenant t's k-th generated user: creation time and id, computable anywhere.
create function bench.user_created(t int, k int) returns timestamptz
language sql stable as $$
    select (select base from bench.params) - make_interval(secs => ((t::bigint * 7919 + k::bigint * 104729) % 31536000) + 86400 * 95)
$$;
create function bench.user_id(t int, k int) returns uuid
language sql stable as $$
    select bench.uuid7_det(bench.user_created(t, k), 'user:' || t || ':' || k)
$$;

-- Tenant t's j-th threat: detection time within the 90 days, and id.
create function bench.threat_detected(t int, j int) returns timestamptz
language sql stable as $$
    select (select base from bench.params) - make_interval(secs => ((t::bigint * 31337 + j::bigint * 7919) % 7776000))
$$;
create function bench.threat_id(t int, j int) returns uuid
language sql stable as $$
    select bench.uuid7_det(bench.threat_detected(t, j), 'threat:' || t || ':' || j)
$$;

-- The plan: each tenant's share of every table. Tenant 0 holds 30% of the rows; the
-- other 70% fall off with a power law over the remaining tenants (a few large banks,
-- a long tail of small ones).
create table bench.plan as
with w as (
    select i as idx,
           case when i = 0 then 0.30
                else 0.70 * (1.0 / power(i, 0.7)) / (select sum(1.0 / power(x, 0.7))
                                                      from generate_series(1, (select tenants from bench.params) - 1) x)
           end as share
      from generate_series(0, (select tenants from bench.params) - 1) i
)
select w.idx,
       w.share,
       bench.uuid7_det((select base from bench.params) - interval '400 days' + make_interval(secs => w.idx),
                       'tenant:' || w.idx) as tenant_id,
       'bank-' || lpad(w.idx::text, 3, '0') as slug,
       greatest(5, round(p.users * w.share))::int as n_users,
       greatest(1, round(p.events * w.share))::bigint as n_events,
       greatest(1, round(p.threats * w.share))::int as n_threats,
       greatest(1, round(p.incidents * w.share))::int as n_incidents,
       greatest(1, round(p.intel * 0.9 * w.share))::int as n_intel,
       greatest(1, round(p.audit * w.share))::bigint as n_audit,
       greatest(1, round(p.devices * w.share))::int as n_devices
  from w, bench.params p;
alter table bench.plan add primary key (idx);

-- Tenants. The bench's tenants sign in all day from 127.0.0.1: the per-address
-- login throttle is raised out of the way (README, "Tenant settings").
insert into tenants (tenant_id, slug, name, status, settings, created_at, updated_at)
select tenant_id, slug, 'Bench Bank ' || lpad(idx::text, 3, '0'), 'active',
       '{"login_failures_per_ip": 1000000000, "lockout_threshold": 1000000}'::jsonb,
       (select base from bench.params) - interval '400 days', (select base from bench.params) - interval '400 days'
  from bench.plan;

-- Generated users (customers mostly, some staff). They never sign in: they share one
-- valid Argon2id hash.
insert into users (user_id, tenant_id, username, email, password_hash, first_name, last_name, phone_number,
                   role, is_active, is_verified, trust_score, password_changed_at, created_at, updated_at,
                   last_login_at, last_login_ip)
select bench.user_id(p.idx, k), p.tenant_id,
       'user' || k, 'user' || k || '@' || p.slug || '.example', (select hash from bench.params),
       (array['Ada','Alan','Grace','Edsger','Barbara','Donald','Frances','Ken','Radia','Tim'])[1 + k % 10],
       (array['Lovelace','Turing','Hopper','Dijkstra','Liskov','Knuth','Allen','Thompson','Perlman','Lee'])[1 + (k / 10) % 10],
       case when k % 3 = 0 then '+4420' || lpad(k::text, 7, '0') end,
       case when k % 100 = 0 then 'admin' when k % 100 = 1 then 'manager'
            when k % 100 in (2, 3, 4) then 'officer' else 'customer' end,
       k % 50 <> 7, k % 4 <> 0,
       (20 + (k * 37) % 80)::numeric(5,2),
       bench.user_created(p.idx, k), bench.user_created(p.idx, k), bench.user_created(p.idx, k),
       case when k % 5 <> 0 then (select base from bench.params) - make_interval(secs => (k * 7919) % 2592000) end,
       case when k % 5 <> 0 then '100.64.0.0'::inet + ((k::bigint * 7919) % 4000000) end
  from bench.plan p, lateral generate_series(1, p.n_users) k;

-- Accounts the bench signs in with (no MFA; password = the shared hash's password):
-- one admin per tenant (the read, mutation and subscription scenarios), and four
-- customers in each of the first 16 tenants after the big one (the login storm).
insert into users (tenant_id, username, email, password_hash, role, is_active, is_verified)
select p.tenant_id, 'bench-admin', 'bench-admin@' || p.slug || '.example', (select hash from bench.params),
       'admin', true, true
  from bench.plan p;
insert into users (tenant_id, username, email, password_hash, role, is_active, is_verified)
select p.tenant_id, 'bench-storm-' || s, 'bench-storm-' || s || '@' || p.slug || '.example',
       (select hash from bench.params), 'customer', true, true
  from bench.plan p, generate_series(1, 4) s
 where p.idx between 1 and 16;

-- Secondary indexes of the big tables: saved, then dropped (rebuilt by finish.sql).
-- Indexes that back a constraint stay, and so does the audit chain's
-- (tenant_id, chain_seq) index, which the chain trigger reads for every row.
create table bench.saved_indexes as
-- (A partitioned table's index reads "ON ONLY parent"; rebuilt that way it would cover no
-- partition, so it is rebuilt on the whole table.)
select c.relname::text as table_name, i.relname::text as index_name,
       replace(pg_get_indexdef(i.oid), ' ON ONLY ', ' ON ') as definition
  from pg_index x
  join pg_class i on i.oid = x.indexrelid
  join pg_class c on c.oid = x.indrelid
  join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public'
   and c.relname in ('security_events', 'threat_events', 'security_incidents', 'threat_intelligence',
                     'audit_log', 'trusted_devices')
   and not exists (select 1 from pg_constraint k where k.conindid = i.oid)
   and i.relname <> 'idx_audit_log_tenant';

do $$
declare
    r record;
begin
    for r in select index_name from bench.saved_indexes loop
        execute format('drop index %I', r.index_name);
    end loop;
end
$$;
