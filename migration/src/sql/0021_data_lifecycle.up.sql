-- Data lifecycle (README "Data lifecycle"): the two logs that grow without bound,
-- security_events and audit_log, become range-partitioned by "timestamp", one partition
-- per calendar month (UTC). Retention drops whole expired partitions: that is the only
-- way rows ever leave either table (DELETE, TRUNCATE and UPDATE are refused for every
-- role, the owner included; the one narrow exception is the erasure of personal data).
--
-- The audit chain survives both:
--   * retention: before a partition of audit_log is dropped, each tenant's last dropped
--     row becomes that tenant's anchor (ultracore_lifecycle.audit_chain_anchors); the
--     verifier starts from the anchor instead of the genesis hash;
--   * erasure: the personal fields of a row (ip_address, user_agent, old_values,
--     new_values) enter the row hash only through salted digests. Erasing a row stores
--     those digests, forgets the salt and replaces the fields, so the chain still
--     verifies while the personal data, and any way to confirm a guess of it, is gone.
-- Rows written before this migration hashed their personal fields directly (encoding
-- v1). The migration checks every v1 chain link by link, refuses to continue if one is
-- broken, and reseals the chains under encoding v2, recording each tenant's old v1 head
-- in ultracore_lifecycle.data_lifecycle_log so that a head exported earlier can still be
-- matched to it.

-- Bookkeeping the gateway never touches: only the owner (and the chain role below) can
-- even name this schema. Partitions live in their own schema so that `public` keeps
-- exactly the tables of the product.
create schema ultracore_lifecycle;
revoke all on schema ultracore_lifecycle from public;
create schema ultracore_partitions;
revoke all on schema ultracore_partitions from public;

-- Every lifecycle operation (reseal, partition created or dropped, user erased), with who
-- ran it. Append-only like the audit log.
create table ultracore_lifecycle.data_lifecycle_log (
    entry_id     uuid primary key default ultracore_uuid_v7(),
    happened_at  timestamptz not null default clock_timestamp(),
    performed_by text not null default session_user,
    operation    varchar(40) not null,
    table_name   text,
    partition_name text,
    tenant_id    uuid,
    details      jsonb not null default '{}'::jsonb,
    constraint data_lifecycle_log_operation_valid check (operation in
        ('chain_resealed', 'partition_created', 'partition_dropped', 'user_erased'))
);

-- The last link of each tenant's chain. The chain trigger reads and advances it under a
-- row lock, which serialises one tenant's appends (other tenants are not blocked) and
-- keeps the chain going even after retention has dropped every row a tenant had.
create table ultracore_lifecycle.audit_chain_heads (
    tenant_id   uuid primary key references public.tenants (tenant_id),
    chain_seq   bigint not null,
    row_hash    bytea not null,
    "timestamp" timestamptz not null,
    constraint audit_chain_heads_seq_nonneg check (chain_seq >= 0),
    constraint audit_chain_heads_hash_length check (octet_length(row_hash) = 32)
);

-- Where a tenant's chain starts once retention has dropped its oldest rows: the last
-- dropped row's position and hash.
create table ultracore_lifecycle.audit_chain_anchors (
    tenant_id   uuid primary key references public.tenants (tenant_id),
    chain_seq   bigint not null,
    row_hash    bytea not null,
    anchored_at timestamptz not null default clock_timestamp(),
    constraint audit_chain_anchors_seq_positive check (chain_seq >= 1),
    constraint audit_chain_anchors_hash_length check (octet_length(row_hash) = 32)
);

create function ultracore_refuse_change() returns trigger
language plpgsql as $$
begin
    raise exception '% is append-only: % is refused', tg_table_name, tg_op
        using errcode = 'insufficient_privilege',
              hint = 'rows leave only when retention drops an expired partition (ultracore lifecycle run)';
end
$$;
create trigger data_lifecycle_log_append_only before update or delete on ultracore_lifecycle.data_lifecycle_log
    for each row execute function ultracore_refuse_change();
create trigger data_lifecycle_log_no_truncate before truncate on ultracore_lifecycle.data_lifecycle_log
    for each statement execute function ultracore_refuse_change();

-- The role that owns the chain trigger and the stamping function: it can read and advance
-- chain heads and nothing else.
do $$
begin
    if not exists (select 1 from pg_roles where rolname = 'ultracore_audit_chain') then
        create role ultracore_audit_chain nologin nosuperuser nobypassrls nocreatedb nocreaterole noinherit;
    end if;
end
$$;
grant usage on schema ultracore_lifecycle to ultracore_audit_chain;
grant usage on schema public to ultracore_audit_chain;
grant select, insert, update on ultracore_lifecycle.audit_chain_heads to ultracore_audit_chain;

------------------------------------------------------------------------------------------
-- security_events, partitioned
------------------------------------------------------------------------------------------
alter table security_events rename to security_events_unpartitioned;

-- The same columns and checks as 0004. The primary key must contain the partition key,
-- so it is (event_id, "timestamp"); event ids are UUIDv7 and still unique in practice,
-- and every lookup by id names the tenant (RLS) and the id.
create table security_events (
    event_id           uuid not null default ultracore_uuid_v7(),
    tenant_id          uuid not null references tenants (tenant_id),
    user_id            uuid,
    event_type         varchar(100) not null,
    event_category     varchar(50)  not null,
    severity           varchar(20)  not null default 'low',
    ip_address         inet,
    device_fingerprint varchar(255),
    user_agent         text,
    geolocation        jsonb,
    description        text,
    metadata           jsonb not null default '{}'::jsonb,
    risk_score         numeric(5,2),
    fraud_score        numeric(5,2),
    anomaly_score      numeric(5,2),
    action_taken       varchar(50),
    "timestamp"        timestamptz not null default now(),
    constraint security_events_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id) on delete set null (user_id),
    constraint security_events_category_valid check (event_category in
        ('authentication', 'authorization', 'account', 'session', 'threat', 'incident', 'rate_limit')),
    constraint security_events_severity_valid check (severity in ('low', 'medium', 'high', 'critical')),
    constraint security_events_action_valid check (action_taken in ('allow', 'deny', 'challenge', 'block', 'lock')),
    constraint security_events_risk_score_range check (risk_score between 0 and 100),
    constraint security_events_fraud_score_range check (fraud_score between 0 and 1),
    constraint security_events_anomaly_score_range check (anomaly_score between 0 and 1),
    constraint security_events_geolocation_object check (geolocation is null or jsonb_typeof(geolocation) = 'object'),
    constraint security_events_metadata_object check (jsonb_typeof(metadata) = 'object')
) partition by range ("timestamp");

------------------------------------------------------------------------------------------
-- audit_log, partitioned, hash encoding v2
------------------------------------------------------------------------------------------
alter table audit_log rename to audit_log_unpartitioned;

create table audit_log (
    audit_id    uuid not null default ultracore_uuid_v7(),
    tenant_id   uuid not null references tenants (tenant_id),
    user_id     uuid,
    action      varchar(255) not null,
    entity_type varchar(100) not null,
    entity_id   uuid,
    old_values  jsonb,
    new_values  jsonb,
    ip_address  inet,
    user_agent  text,
    -- Stamped by the database (audit_chain_stamp and the chain trigger): never earlier
    -- than the statement, never later than now, never earlier than the tenant's previous
    -- entry. Monotonic per tenant, so a time partition always holds a contiguous stretch
    -- of each tenant's chain and retention can cut the chain cleanly.
    "timestamp" timestamptz not null,
    chain_seq   bigint not null,
    prev_hash   bytea  not null,
    row_hash    bytea  not null,
    -- 32 random bytes mixed into the digests of the personal fields; forgotten on erasure.
    pii_salt    bytea,
    -- Set on erasure only: the digests the row hash was computed with.
    pii_digests jsonb,
    erased_at   timestamptz,
    constraint audit_log_user_fkey foreign key (tenant_id, user_id)
        references users (tenant_id, user_id),
    constraint audit_log_chain_seq_positive check (chain_seq >= 1),
    constraint audit_log_hash_lengths check (octet_length(prev_hash) = 32 and octet_length(row_hash) = 32),
    constraint audit_log_pii_state check (
        (erased_at is null and pii_digests is null and octet_length(pii_salt) = 32)
        or (erased_at is not null and pii_digests is not null and pii_salt is null))
) partition by range ("timestamp");

-- The digest of one personal field: salted, named, length-prefixed.
create function audit_pii_digest(salt bytea, field text, value text) returns text
language sql immutable parallel safe as $$
    select encode(sha256(salt || convert_to(field || '=' || audit_chain_field(value), 'UTF8')), 'hex')
$$;

-- The digests a row's hash covers: recomputed from the fields while the row holds its
-- salt, the stored ones once it has been erased.
create function audit_log_pii_digests(r audit_log) returns jsonb
language sql stable parallel safe as $$
    select coalesce(r.pii_digests, jsonb_build_object(
        'ip_address', audit_pii_digest(r.pii_salt, 'ip_address', r.ip_address::text),
        'user_agent', audit_pii_digest(r.pii_salt, 'user_agent', r.user_agent),
        'old_values', audit_pii_digest(r.pii_salt, 'old_values', r.old_values::text),
        'new_values', audit_pii_digest(r.pii_salt, 'new_values', r.new_values::text)))
$$;

-- Encoding v2: the same fixed order and session-independent formats as v1 (0008), with
-- the four personal fields replaced by their digests. A missing digest (no salt and no
-- stored digest) encodes as NULL and so can never match the stored hash.
create function audit_log_canonical(r audit_log) returns text
language sql stable parallel safe as $$
    select 'ultracore.audit.v2;'
        || audit_chain_field(r.audit_id::text)
        || audit_chain_field(r.tenant_id::text)
        || audit_chain_field(r.chain_seq::text)
        || audit_chain_field(r.user_id::text)
        || audit_chain_field(r.action)
        || audit_chain_field(r.entity_type)
        || audit_chain_field(r.entity_id::text)
        || audit_chain_field(d->>'old_values')
        || audit_chain_field(d->>'new_values')
        || audit_chain_field(d->>'ip_address')
        || audit_chain_field(d->>'user_agent')
        || audit_chain_field(to_char(r."timestamp" at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
      from (select audit_log_pii_digests(r) as d) digests
$$;

create function audit_log_row_hash(r audit_log) returns bytea
language sql stable parallel safe as $$
    select sha256(r.prev_hash || convert_to(audit_log_canonical(r), 'UTF8'))
$$;

------------------------------------------------------------------------------------------
-- Partitions
------------------------------------------------------------------------------------------
-- Creates the monthly partitions of both logs that cover [from_ts, to_ts] (whole UTC
-- months), skipping those that exist. Run by the migration, by `ultracore lifecycle run`
-- (which keeps months ahead ready) and by loaders of historical data. A DEFAULT partition
-- catches rows no month covers, so an insert never fails for want of a partition; a month
-- whose rows already sit in the default partition cannot be created (PostgreSQL refuses)
-- and the error says so.
create function ultracore_ensure_partitions(from_ts timestamptz, to_ts timestamptz)
returns setof text
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    month_start timestamptz;
    last_month  timestamptz;
    parent      text;
    part        text;
begin
    if from_ts is null or to_ts is null or to_ts < from_ts then
        raise exception 'ultracore_ensure_partitions needs from_ts <= to_ts'
            using errcode = 'invalid_parameter_value';
    end if;
    month_start := date_trunc('month', from_ts at time zone 'UTC') at time zone 'UTC';
    last_month := date_trunc('month', to_ts at time zone 'UTC') at time zone 'UTC';
    while month_start <= last_month loop
        foreach parent in array array['security_events', 'audit_log'] loop
            part := parent || '_p' || to_char(month_start at time zone 'UTC', 'YYYY_MM');
            if to_regclass('ultracore_partitions.' || part) is null then
                begin
                    execute format('create table ultracore_partitions.%I partition of public.%I '
                                   'for values from (%L) to (%L)',
                                   part, parent, month_start, month_start + interval '1 month');
                exception when check_violation then
                    raise exception 'cannot create partition % of %: the default partition already holds rows of that month',
                                    part, parent
                        using errcode = 'check_violation',
                              hint = 'create partitions before loading historical rows';
                end;
                perform ultracore_prepare_partition(parent, part);
                insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
                values ('partition_created', parent, part,
                        jsonb_build_object('from', month_start, 'to', month_start + interval '1 month'));
                return next part;
            end if;
        end loop;
        month_start := month_start + interval '1 month';
    end loop;
end
$$;

-- What every partition needs besides its bounds. Row triggers and indexes of the parent
-- are cloned by PostgreSQL; TRUNCATE triggers are not, so a partition truncated by name
-- is refused here. security_events partitions are vacuumed every 10,000 inserts (0017's
-- reasoning: index-only scans for the dashboards need recent pages all-visible).
create function ultracore_prepare_partition(parent text, part text) returns void
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
begin
    execute format('create trigger %I before truncate on ultracore_partitions.%I '
                   'for each statement execute function public.ultracore_refuse_change()',
                   parent || '_no_truncate', part);
    if parent = 'security_events' then
        execute format('alter table ultracore_partitions.%I set (autovacuum_vacuum_insert_threshold = 10000, '
                       'autovacuum_vacuum_insert_scale_factor = 0)', part);
    end if;
end
$$;

create table ultracore_partitions.security_events_default partition of security_events default;
select ultracore_prepare_partition('security_events', 'security_events_default');
create table ultracore_partitions.audit_log_default partition of audit_log default;
select ultracore_prepare_partition('audit_log', 'audit_log_default');

-- Months of the existing rows, this month and the next three.
select count(*) from ultracore_ensure_partitions(
    least(now(),
          (select min("timestamp") from security_events_unpartitioned),
          (select min("timestamp") from audit_log_unpartitioned)),
    now() + interval '3 months');

------------------------------------------------------------------------------------------
-- Copy security_events
------------------------------------------------------------------------------------------
insert into security_events (event_id, tenant_id, user_id, event_type, event_category, severity, ip_address,
                             device_fingerprint, user_agent, geolocation, description, metadata, risk_score,
                             fraud_score, anomaly_score, action_taken, "timestamp")
select event_id, tenant_id, user_id, event_type, event_category, severity, ip_address,
       device_fingerprint, user_agent, geolocation, description, metadata, risk_score,
       fraud_score, anomaly_score, action_taken, "timestamp"
  from security_events_unpartitioned;
drop table security_events_unpartitioned;

alter table security_events add constraint security_events_pkey primary key (event_id, "timestamp");
-- 0004's indexes, with 0017's INCLUDE columns on idx_security_events_tenant.
create index idx_security_events_tenant on security_events (tenant_id, "timestamp" desc, event_id desc)
    include (severity, event_category, event_type);
create index idx_security_events_user on security_events (user_id) where user_id is not null;
create index idx_security_events_type on security_events (event_type);
create index idx_security_events_category on security_events (tenant_id, event_category, "timestamp" desc, event_id desc);
create index idx_security_events_severity on security_events (severity);
create index idx_security_events_timestamp on security_events using brin ("timestamp");
create index idx_security_events_ip on security_events (tenant_id, ip_address);
create index idx_security_events_tenant_type on security_events (tenant_id, event_type, "timestamp" desc, event_id desc);
create index idx_security_events_user_timestamp on security_events (tenant_id, user_id, "timestamp" desc, event_id desc);
create index idx_security_events_severity_timestamp on security_events (tenant_id, severity, "timestamp" desc, event_id desc);
create trigger feed_security_events after insert on security_events
    for each row execute function feed_record_security_event();

-- Rows leave only with their partition. UPDATE is refused too, except by an erasure
-- (ultracore_erase_user), which may only blank personal fields.
create function security_events_guard_change() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and current_setting('ultracore.erasure', true) = 'on'
       and (new.event_id, new.tenant_id, new.user_id, new.event_type, new.event_category, new.severity,
            new.risk_score, new.fraud_score, new.anomaly_score, new.action_taken, new."timestamp")
           is not distinct from
           (old.event_id, old.tenant_id, old.user_id, old.event_type, old.event_category, old.severity,
            old.risk_score, old.fraud_score, old.anomaly_score, old.action_taken, old."timestamp") then
        return new;
    end if;
    raise exception 'security_events is append-only: % is refused', tg_op
        using errcode = 'insufficient_privilege',
              hint = 'rows leave only when retention drops an expired partition (ultracore lifecycle run)';
end
$$;
create trigger security_events_guard_change before update or delete on security_events
    for each row execute function security_events_guard_change();
create trigger security_events_no_truncate before truncate on security_events
    for each statement execute function ultracore_refuse_change();

alter table security_events enable row level security;
alter table security_events force row level security;
create policy tenant_isolation on security_events
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
grant select, insert on security_events to ultracore_app;

------------------------------------------------------------------------------------------
-- Copy audit_log: check each v1 chain, then reseal it under v2
------------------------------------------------------------------------------------------
do $$
declare
    old_row     audit_log_unpartitioned;
    new_row     audit_log;
    cur_tenant  uuid;
    expect_seq  bigint;
    expect_prev bytea;
    new_prev    bytea;
    v1_head     bytea;
    v1_seq      bigint;
begin
    for old_row in select * from audit_log_unpartitioned order by tenant_id, chain_seq loop
        if cur_tenant is distinct from old_row.tenant_id then
            if cur_tenant is not null then
                insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, tenant_id, details)
                values ('chain_resealed', 'audit_log', cur_tenant,
                        jsonb_build_object('v1_head_seq', v1_seq, 'v1_head_hash', encode(v1_head, 'hex'),
                                           'v2_head_hash', encode(new_prev, 'hex'), 'migration', '0021'));
            end if;
            cur_tenant := old_row.tenant_id;
            expect_seq := 1;
            expect_prev := audit_chain_genesis(cur_tenant);
            new_prev := expect_prev;
        end if;
        if old_row.chain_seq <> expect_seq or old_row.prev_hash <> expect_prev
           or old_row.row_hash <> audit_log_row_hash(old_row) then
            raise exception 'the audit chain of tenant % is broken at chain_seq %; migration 0021 reseals intact chains only',
                            cur_tenant, old_row.chain_seq
                using hint = 'run `ultracore audit verify --tenant <slug>` to see the break';
        end if;
        new_row := null;
        new_row.audit_id := old_row.audit_id;
        new_row.tenant_id := old_row.tenant_id;
        new_row.user_id := old_row.user_id;
        new_row.action := old_row.action;
        new_row.entity_type := old_row.entity_type;
        new_row.entity_id := old_row.entity_id;
        new_row.old_values := old_row.old_values;
        new_row.new_values := old_row.new_values;
        new_row.ip_address := old_row.ip_address;
        new_row.user_agent := old_row.user_agent;
        new_row."timestamp" := old_row."timestamp";
        new_row.chain_seq := old_row.chain_seq;
        new_row.prev_hash := new_prev;
        new_row.pii_salt := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
        new_row.row_hash := audit_log_row_hash(new_row);
        insert into audit_log select new_row.*;
        expect_seq := expect_seq + 1;
        expect_prev := old_row.row_hash;
        v1_head := old_row.row_hash;
        v1_seq := old_row.chain_seq;
        new_prev := new_row.row_hash;
    end loop;
    if cur_tenant is not null then
        insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, tenant_id, details)
        values ('chain_resealed', 'audit_log', cur_tenant,
                jsonb_build_object('v1_head_seq', v1_seq, 'v1_head_hash', encode(v1_head, 'hex'),
                                   'v2_head_hash', encode(new_prev, 'hex'), 'migration', '0021'));
    end if;
end
$$;

insert into ultracore_lifecycle.audit_chain_heads (tenant_id, chain_seq, row_hash, "timestamp")
select distinct on (tenant_id) tenant_id, chain_seq, row_hash, "timestamp"
  from audit_log order by tenant_id, chain_seq desc;

drop function audit_log_row_hash(audit_log_unpartitioned);
drop function audit_log_canonical(audit_log_unpartitioned);
drop table audit_log_unpartitioned;
drop function audit_log_chain_append();
drop function audit_log_refuse_change();

alter table audit_log add constraint audit_log_pkey primary key (audit_id, "timestamp");
-- The position index cannot be UNIQUE on a partitioned table without the partition key;
-- one position per tenant is kept by the chain head instead (each append advances it
-- under a row lock), and the verifier names any duplicate or gap.
create index idx_audit_log_tenant on audit_log (tenant_id, chain_seq);
create index idx_audit_log_user on audit_log (user_id) where user_id is not null;
create index idx_audit_log_action on audit_log (tenant_id, action, "timestamp" desc);
create index idx_audit_log_entity_type on audit_log (entity_type);
create index idx_audit_log_entity_id on audit_log (entity_id) where entity_id is not null;
create index idx_audit_log_timestamp on audit_log using brin ("timestamp");
create index idx_audit_log_tenant_timestamp on audit_log (tenant_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_user_timestamp on audit_log (tenant_id, user_id, "timestamp" desc, audit_id desc);
create index idx_audit_log_entity on audit_log (tenant_id, entity_type, entity_id);

-- Locks the chain head of `tenant` until commit (creating it at the genesis when the
-- tenant has none) and returns it. Every append takes this lock first, which serialises
-- one tenant's appends; other tenants are not blocked. SECURITY DEFINER: the gateway's
-- role cannot reach the bookkeeping schema, only this function.
create function audit_chain_lock_head(tenant uuid)
returns table (chain_seq bigint, row_hash bytea, "timestamp" timestamptz)
language plpgsql volatile security definer
set search_path = pg_catalog, pg_temp as $$
begin
    if tenant is null then
        return;
    end if;
    return query select h.chain_seq, h.row_hash, h."timestamp"
                   from ultracore_lifecycle.audit_chain_heads h where h.tenant_id = tenant for update;
    if not found then
        insert into ultracore_lifecycle.audit_chain_heads as h (tenant_id, chain_seq, row_hash, "timestamp")
        values (tenant, 0, public.audit_chain_genesis(tenant), '-infinity')
        on conflict (tenant_id) do nothing;
        return query select h.chain_seq, h.row_hash, h."timestamp"
                       from ultracore_lifecycle.audit_chain_heads h where h.tenant_id = tenant for update;
    end if;
end
$$;
alter function audit_chain_lock_head(uuid) owner to ultracore_audit_chain;

-- The default of "timestamp": inside a tenant transaction it takes the tenant's chain
-- lock *before* PostgreSQL routes the row to a partition, and returns a time no earlier
-- than the tenant's recorded head. Stamping only after routing (in the trigger) could
-- move a row across a month boundary, which PostgreSQL refuses.
create function audit_chain_stamp() returns timestamptz
language sql volatile
set search_path = pg_catalog, public, pg_temp as $$
    select coalesce((select greatest(clock_timestamp(), h."timestamp")
                       from audit_chain_lock_head(nullif(current_setting('app.tenant_id', true), '')::uuid) h),
                    clock_timestamp())
$$;
alter table audit_log alter column "timestamp" set default audit_chain_stamp();

-- BEFORE INSERT: place the row at the end of its tenant's chain. The chain's last row is
-- read from the log itself (this transaction's own earlier rows included), and only from
-- the partitions since the recorded head's time; the head alone continues a chain whose
-- rows retention has dropped.
create function audit_log_chain_append() returns trigger
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    head record;
    last record;
begin
    -- The last row must be read after waiting for the lock, with a fresh snapshot: only
    -- READ COMMITTED takes one per statement (see 0008).
    if current_setting('transaction_isolation') <> 'read committed' then
        raise exception 'audit_log rows must be written in a READ COMMITTED transaction'
            using errcode = 'invalid_transaction_state';
    end if;
    select * into head from audit_chain_lock_head(new.tenant_id);
    select a.chain_seq, a.row_hash, a."timestamp" into last
      from audit_log a
     where a.tenant_id = new.tenant_id and a."timestamp" >= head."timestamp"
     order by a.chain_seq desc
     limit 1;
    if not found or last.chain_seq < head.chain_seq then
        last := head;
    end if;

    -- The database stamps the time: a client can neither back-date nor future-date an
    -- entry, and a tenant's entries never go back in time.
    new."timestamp" := greatest(least(coalesce(new."timestamp", clock_timestamp()), clock_timestamp()),
                                statement_timestamp(), last."timestamp");
    new.chain_seq := last.chain_seq + 1;
    new.prev_hash := last.row_hash;
    new.pii_salt := uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid());
    new.pii_digests := null;
    new.erased_at := null;
    new.row_hash := audit_log_row_hash(new);
    return new;
end
$$;
create trigger audit_log_chain_append before insert on audit_log
    for each row execute function audit_log_chain_append();

-- AFTER each INSERT statement: advance the recorded heads, once per tenant. (Once per
-- statement rather than per row: a bulk load of a million rows in one statement would
-- otherwise leave a million versions of one head row inside its own transaction.)
create function audit_log_advance_heads() returns trigger
language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
begin
    insert into ultracore_lifecycle.audit_chain_heads as h (tenant_id, chain_seq, row_hash, "timestamp")
    select distinct on (n.tenant_id) n.tenant_id, n.chain_seq, n.row_hash, n."timestamp"
      from new_rows n
     order by n.tenant_id, n.chain_seq desc
    on conflict (tenant_id) do update
        set chain_seq = excluded.chain_seq, row_hash = excluded.row_hash, "timestamp" = excluded."timestamp"
        where excluded.chain_seq > h.chain_seq;
    return null;
end
$$;
alter function audit_log_advance_heads() owner to ultracore_audit_chain;
create trigger audit_log_advance_heads after insert on audit_log
    referencing new table as new_rows
    for each statement execute function audit_log_advance_heads();

-- UPDATE and DELETE are refused for everyone. The one exception is erasure, and the
-- database itself checks that an erasure can only blank personal fields: everything the
-- chain covers stays, and the digests it stores must be the ones the row hash was
-- computed with, so an erased row still verifies and nothing else can be changed.
create function audit_log_guard_change() returns trigger
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
begin
    if tg_op = 'UPDATE' and current_setting('ultracore.erasure', true) = 'on'
       and old.erased_at is null and new.erased_at is not null and new.pii_salt is null
       and (new.audit_id, new.tenant_id, new.chain_seq, new.user_id, new.action, new.entity_type,
            new.entity_id, new."timestamp", new.prev_hash, new.row_hash)
           is not distinct from
           (old.audit_id, old.tenant_id, old.chain_seq, old.user_id, old.action, old.entity_type,
            old.entity_id, old."timestamp", old.prev_hash, old.row_hash)
       and new.pii_digests = audit_log_pii_digests(old) then
        return new;
    end if;
    raise exception 'audit_log is append-only: % is refused', tg_op
        using errcode = 'insufficient_privilege';
end
$$;
create trigger audit_log_refuse_update_delete before update or delete on audit_log
    for each row execute function audit_log_guard_change();
create trigger audit_log_refuse_truncate before truncate on audit_log
    for each statement execute function ultracore_refuse_change();

alter table audit_log enable row level security;
alter table audit_log force row level security;
create policy tenant_isolation on audit_log
    using (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid))
    with check (tenant_id = (select nullif(current_setting('app.tenant_id', true), '')::uuid));
grant select, insert on audit_log to ultracore_app;

-- Where the current tenant's chain starts (its anchor, if retention has cut it) and where
-- it ends (its recorded head), for the verifier, which may run as the gateway's role: that
-- role cannot read the bookkeeping schema, and learns only its own tenant's two links.
create function audit_chain_bounds(tenant uuid)
returns table (anchor_seq bigint, anchor_hash bytea, head_seq bigint)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
    select (select a.chain_seq from ultracore_lifecycle.audit_chain_anchors a where a.tenant_id = tenant),
           (select a.row_hash from ultracore_lifecycle.audit_chain_anchors a where a.tenant_id = tenant),
           (select h.chain_seq from ultracore_lifecycle.audit_chain_heads h where h.tenant_id = tenant)
     where tenant = nullif(current_setting('app.tenant_id', true), '')::uuid
$$;
grant select on ultracore_lifecycle.audit_chain_anchors to ultracore_audit_chain;
alter function audit_chain_bounds(uuid) owner to ultracore_audit_chain;

-- Walks a tenant's chain from its anchor (or the genesis) and returns the first broken
-- row, or one row with problem NULL when the chain is intact. The chain must end at the
-- recorded head (a deleted tail is named even without an exported head), and, given an
-- exported head, must still reach it unchanged.
create or replace function audit_chain_verify(tenant uuid, exported_head_seq bigint default null,
                                              exported_head_hash bytea default null)
returns table (problem text, broken_audit_id uuid, broken_seq bigint,
               rows_checked bigint, head_seq bigint, head_audit_id uuid, head_hash bytea)
language plpgsql stable
set search_path = pg_catalog, public, pg_temp as $$
declare
    r audit_log;
    bounds record;
    expected_seq  bigint := 1;
    expected_prev bytea := audit_chain_genesis(tenant);
    checked bigint := 0;
    last_id uuid;
begin
    select * into bounds from audit_chain_bounds(tenant);
    if bounds.anchor_seq is not null then
        expected_seq := bounds.anchor_seq + 1;
        expected_prev := bounds.anchor_hash;
    end if;
    for r in select * from audit_log a where a.tenant_id = tenant order by a.chain_seq loop
        if r.chain_seq <> expected_seq then
            return query select format('chain_seq is %s where %s was expected: rows before it were deleted or reordered',
                                       r.chain_seq, expected_seq),
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif r.prev_hash <> expected_prev then
            return query select 'prev_hash does not match the previous row: rows were deleted, inserted or reordered'::text,
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif r.row_hash <> audit_log_row_hash(r) then
            return query select 'row_hash does not match the row: its contents were changed'::text,
                                r.audit_id, r.chain_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        end if;
        checked := checked + 1;
        expected_seq := r.chain_seq + 1;
        expected_prev := r.row_hash;
        last_id := r.audit_id;
    end loop;

    if bounds.head_seq > expected_seq - 1 then
        return query select format('the chain ends at chain_seq %s but its recorded head is at %s: the tail was deleted',
                                   expected_seq - 1, bounds.head_seq),
                            null::uuid, expected_seq, checked, expected_seq - 1, last_id, expected_prev;
        return;
    end if;

    if exported_head_seq is not null then
        if exported_head_seq > expected_seq - 1 then
            return query select format('the chain ends at chain_seq %s but the exported head is at %s: the tail was deleted',
                                       expected_seq - 1, exported_head_seq),
                                null::uuid, expected_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        elsif exported_head_hash is not null and not exists (
                select 1 from audit_log a
                 where a.tenant_id = tenant and a.chain_seq = exported_head_seq
                   and a.row_hash = exported_head_hash)
              and not (bounds.anchor_seq is not distinct from exported_head_seq
                       and bounds.anchor_hash is not distinct from exported_head_hash) then
            -- (An exported head that retention has since dropped is still matched by the
            -- anchor when it was the last dropped row; an older one is beyond proof here:
            -- compare it with the archive that `ultracore audit export` wrote.)
            if exported_head_seq < bounds.anchor_seq then
                return query select null::text, null::uuid, null::bigint, checked, expected_seq - 1, last_id, expected_prev;
                return;
            end if;
            return query select 'the row at the exported head has another hash: the chain was rewritten'::text,
                                (select a.audit_id from audit_log a
                                  where a.tenant_id = tenant and a.chain_seq = exported_head_seq),
                                exported_head_seq, checked, expected_seq - 1, last_id, expected_prev;
            return;
        end if;
    end if;

    return query select null::text, null::uuid, null::bigint, checked, expected_seq - 1, last_id, expected_prev;
end
$$;

------------------------------------------------------------------------------------------
-- Retention: dropping expired partitions, the only deletion path
------------------------------------------------------------------------------------------
-- Drops the monthly partitions of `parent` ('security_events' or 'audit_log') that end at
-- or before `older_than`, oldest first, and returns what it dropped (or, with dry_run,
-- what it would drop). Owner only. Each drop is recorded three times: in
-- data_lifecycle_log, in the audit chain of every tenant that had rows in the partition
-- (action 'retention.partition_dropped', with the row count), and, for audit_log, as the
-- new anchor of each such tenant's chain.
create function ultracore_drop_expired_partitions(parent text, older_than timestamptz,
                                                  dry_run boolean default false)
returns table (partition_name text, range_from timestamptz, range_to timestamptz, rows_dropped bigint)
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    part        record;
    stat        record;
    caller_tenant text := current_setting('app.tenant_id', true);
    last_hash   bytea;
    anchor_seq  bigint;
    total       bigint;
    older_in_default boolean;
    -- What this call has dropped so far (or, in a dry run, would have): the checks of a
    -- later partition must see the chain as it will be by then.
    passed      oid[] := '{}';
    planned_anchors jsonb := '{}';
begin
    if parent not in ('security_events', 'audit_log') then
        raise exception 'only security_events and audit_log are partitioned, not %', parent
            using errcode = 'invalid_parameter_value';
    end if;
    for part in
        select c.oid, c.relname::text as name,
               to_date(substring(c.relname from '_p(\d{4}_\d{2})$'), 'YYYY_MM')::timestamp at time zone 'UTC' as lower_bound
          from pg_inherits i
          join pg_class c on c.oid = i.inhrelid
          join pg_namespace n on n.oid = c.relnamespace
         where i.inhparent = ('public.' || parent)::regclass
           and n.nspname = 'ultracore_partitions'
           and c.relname ~ '_p\d{4}_\d{2}$'
         order by 3
    loop
        exit when part.lower_bound + interval '1 month' > older_than;
        execute format('select count(*) from ultracore_partitions.%I', part.name) into total;
        partition_name := part.name;
        range_from := part.lower_bound;
        range_to := part.lower_bound + interval '1 month';
        rows_dropped := total;

        if parent = 'audit_log' then
            -- The partition must hold the oldest stretch of every chain it touches, so that
            -- the chain left behind starts right after the new anchor.
            select exists (select 1 from ultracore_partitions.audit_log_default d where d."timestamp" < range_to)
              into older_in_default;
            if older_in_default then
                raise exception 'cannot drop %: the default partition holds audit rows older than %', part.name, range_to
                    using hint = 'those rows were written while no monthly partition covered them; keep them until they can be archived';
            end if;
            for stat in execute format(
                    'select tenant_id, min(chain_seq) as first_seq, max(chain_seq) as last_seq '
                    '  from ultracore_partitions.%I group by tenant_id', part.name) loop
                select a.chain_seq into anchor_seq
                  from ultracore_lifecycle.audit_chain_anchors a where a.tenant_id = stat.tenant_id;
                anchor_seq := coalesce((planned_anchors->>stat.tenant_id::text)::bigint, anchor_seq);
                if stat.first_seq <> coalesce(anchor_seq, 0) + 1 then
                    raise exception 'cannot drop %: it does not start the remaining audit chain of tenant % (first position %, anchor %)',
                                    part.name, stat.tenant_id, stat.first_seq, coalesce(anchor_seq, 0);
                end if;
                perform set_config('app.tenant_id', stat.tenant_id::text, true);
                if exists (select 1 from audit_log a
                            where a.tenant_id = stat.tenant_id and a.chain_seq <= stat.last_seq
                              and a.tableoid <> all(passed || part.oid)) then
                    raise exception 'cannot drop %: tenant % has older audit rows in another partition', part.name, stat.tenant_id;
                end if;
                planned_anchors := planned_anchors || jsonb_build_object(stat.tenant_id::text, stat.last_seq);
                if not dry_run then
                    execute format('select row_hash from ultracore_partitions.%I where tenant_id = $1 and chain_seq = $2',
                                   part.name) into last_hash using stat.tenant_id, stat.last_seq;
                    insert into ultracore_lifecycle.audit_chain_anchors (tenant_id, chain_seq, row_hash)
                    values (stat.tenant_id, stat.last_seq, last_hash)
                    on conflict (tenant_id) do update
                        set chain_seq = excluded.chain_seq, row_hash = excluded.row_hash, anchored_at = clock_timestamp();
                end if;
            end loop;
        end if;

        if not dry_run then
            create temporary table if not exists ultracore_dropped_counts (tenant_id uuid, rows_dropped bigint)
                on commit drop;
            truncate ultracore_dropped_counts;
            execute format('insert into ultracore_dropped_counts select tenant_id, count(*) '
                           '  from ultracore_partitions.%I group by tenant_id', part.name);
            execute format('drop table ultracore_partitions.%I', part.name);
            insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, partition_name, details)
            values ('partition_dropped', parent, part.name,
                    jsonb_build_object('from', range_from, 'to', range_to, 'rows', total, 'older_than', older_than));
            for stat in select * from ultracore_dropped_counts loop
                perform set_config('app.tenant_id', stat.tenant_id::text, true);
                insert into audit_log (tenant_id, action, entity_type, new_values)
                values (stat.tenant_id, 'retention.partition_dropped', parent,
                        jsonb_build_object('partition', part.name, 'from', range_from, 'to', range_to,
                                           'rows', stat.rows_dropped));
            end loop;
        end if;
        passed := passed || part.oid;
        return next;
    end loop;
    perform set_config('app.tenant_id', coalesce(caller_tenant, ''), true);
end
$$;
revoke all on function ultracore_drop_expired_partitions(text, timestamptz, boolean) from public;
revoke all on function ultracore_ensure_partitions(timestamptz, timestamptz) from public;
revoke all on function ultracore_prepare_partition(text, text) from public;

------------------------------------------------------------------------------------------
-- Erasure of a user's personal data
------------------------------------------------------------------------------------------
-- Replaces every occurrence of any needle (case-insensitive, literal, and only where it
-- stands alone: 'customer' is not found inside 'customer2') by '[erased]'.
create function ultracore_scrub_text(value text, needles text[]) returns text
language plpgsql immutable as $$
declare
    needle text;
begin
    if value is null then
        return null;
    end if;
    foreach needle in array coalesce(needles, '{}') loop
        value := regexp_replace(value,
                                '(^|[^[:alnum:]_])' || regexp_replace(needle, '([.*+?^${}()|\[\]\\])', '\\\1', 'g')
                                    || '(?=$|[^[:alnum:]_])',
                                '\1[erased]', 'gi');
    end loop;
    return value;
end
$$;

-- The same inside JSON; a needle that can only be matched by breaking the document (it
-- contains JSON syntax) leaves a document that says it was erased rather than a broken one.
create function ultracore_scrub_json(value jsonb, needles text[]) returns jsonb
language plpgsql immutable as $$
begin
    if value is null then
        return null;
    end if;
    return ultracore_scrub_text(value::text, needles)::jsonb;
exception when invalid_text_representation then
    return jsonb_build_object('erased', true);
end
$$;

-- Short-lived per-address counters (0018) hold client addresses: only their owning role
-- can reach them, so erasure asks it to forget a user's addresses.
create function ultracore_forget_addresses(addresses inet[]) returns bigint
language sql volatile security definer
set search_path = pg_catalog, pg_temp as $$
    with gone as (delete from ultracore_private.address_windows w where w.ip_address = any(addresses) returning 1)
    select count(*) from gone
$$;
alter function ultracore_forget_addresses(inet[]) owner to ultracore_address_limiter;
revoke all on function ultracore_forget_addresses(inet[]) from public;
grant execute on function ultracore_forget_addresses(inet[]) to current_user;

alter table users add column erased_at timestamptz;

-- Pseudonymises one user of the current tenant (app.tenant_id) for a privacy request:
-- the account keeps its id (every foreign key and every audit entry still points at it),
-- loses its names, email, phone, addresses, devices and credentials, and can never sign
-- in again. Their rows elsewhere lose the same identifiers; other people's rows lose only
-- the user's username and email where they are quoted. The audit rows about or by the
-- user are erased field by field (see audit_log_guard_change), so the chain verifies.
-- Every statement names the tenant itself: the owner may be a superuser, whom row-level
-- security does not bind. Returns how many rows of each table were changed. Owner only; recorded in the tenant's
-- audit chain ('user.erased') and in data_lifecycle_log, without personal data.
create function ultracore_erase_user(target uuid) returns jsonb
language plpgsql
set search_path = pg_catalog, public, pg_temp as $$
declare
    tenant    uuid := nullif(current_setting('app.tenant_id', true), '')::uuid;
    account   users;
    addresses inet[];
    needles   text[];
    quoted    text[];
    patterns  text[];
    n         bigint;
    counts    jsonb := '{}'::jsonb;
    pseudonym text := 'erased-' || replace(target::text, '-', '');
begin
    if tenant is null then
        raise exception 'ultracore_erase_user runs inside a tenant transaction (app.tenant_id)'
            using errcode = 'invalid_transaction_state';
    end if;
    select * into account from users u where u.user_id = target and u.tenant_id = tenant for update;
    if not found then
        raise exception 'no user % in this tenant', target using errcode = 'no_data_found';
    end if;

    select coalesce(array_agg(distinct ip), '{}') into addresses from (
        select account.last_login_ip as ip
        union all select ip_address from refresh_tokens where tenant_id = tenant and user_id = target
        union all select last_ip_address from trusted_devices where tenant_id = tenant and user_id = target
        union all select ip_address from security_events where tenant_id = tenant and user_id = target
        union all select ip_address from audit_log where tenant_id = tenant and user_id = target
        union all select ip_address from rate_limit_entries where tenant_id = tenant and user_id = target) s
     where ip is not null;
    quoted := array_remove(array[account.username, account.email], null);
    select array_agg(distinct v) into needles from unnest(
        quoted || array[account.first_name, account.last_name, account.phone_number]
        || (select coalesce(array_agg(host(a)), '{}') from unnest(addresses) a)
        || (select coalesce(array_agg(distinct f), '{}') from (
                select device_fingerprint as f from refresh_tokens where tenant_id = tenant and user_id = target
                union all select device_fingerprint from trusted_devices where tenant_id = tenant and user_id = target
                union all select device_fingerprint from security_events where tenant_id = tenant and user_id = target) fp
             where f is not null)
        -- Their own rows only: user agents are shared by many people.
        || (select coalesce(array_agg(distinct ua), '{}') from (
                select user_agent as ua from refresh_tokens where tenant_id = tenant and user_id = target
                union all select user_agent from security_events where tenant_id = tenant and user_id = target
                union all select user_agent from audit_log where tenant_id = tenant and user_id = target) agents
             where ua is not null)) v
     where v is not null and length(v) >= 2 and v <> pseudonym;
    needles := coalesce(needles, '{}');
    -- Longest first, so an email is replaced whole before its local part.
    select coalesce(array_agg(v order by length(v) desc), '{}') into needles from unnest(needles) v;
    select coalesce(array_agg('%' || replace(replace(replace(q, '\', '\\'), '%', '\%'), '_', '\_') || '%'), '{}')
      into patterns from unnest(quoted) q;

    perform set_config('ultracore.erasure', 'on', true);

    update users set username = pseudonym,
                     email = pseudonym || '@erased.invalid',
                     first_name = null, last_name = null, phone_number = null,
                     last_login_ip = null, mfa_enabled = false, mfa_secret = null, mfa_secret_key_id = null,
                     is_active = false, is_verified = false,
                     -- A well-formed Argon2id string that no password can match.
                     password_hash = '$argon2id$v=19$m=19456,t=2,p=1$'
                         || rtrim(encode(uuid_send(gen_random_uuid()), 'base64'), '=') || '$'
                         || rtrim(encode(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()), 'base64'), '='),
                     erased_at = clock_timestamp()
     where tenant_id = tenant and user_id = target;

    update refresh_tokens set revoked_at = coalesce(revoked_at, clock_timestamp()),
                              ip_address = null, user_agent = null, device_fingerprint = null
     where tenant_id = tenant and user_id = target;
    get diagnostics n = row_count; counts := counts || jsonb_build_object('refresh_tokens', n);
    delete from trusted_devices where tenant_id = tenant and user_id = target;
    get diagnostics n = row_count; counts := counts || jsonb_build_object('trusted_devices', n);
    delete from mfa_backup_codes where tenant_id = tenant and user_id = target;
    get diagnostics n = row_count; counts := counts || jsonb_build_object('mfa_backup_codes', n);
    delete from account_tokens where tenant_id = tenant and user_id = target;
    get diagnostics n = row_count; counts := counts || jsonb_build_object('account_tokens', n);
    delete from rate_limit_entries where tenant_id = tenant and (user_id = target or ip_address = any(addresses));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('rate_limit_entries', n);
    counts := counts || jsonb_build_object('address_windows', ultracore_forget_addresses(addresses));

    update notification_outbox
       set recipient = pseudonym || '@erased.invalid',
           subject = ultracore_scrub_text(subject, needles),
           body = '[erased]',
           status = case when status = 'pending' then 'failed' else status end,
           last_error = case when status = 'pending' then 'recipient erased' else last_error end
     where tenant_id = tenant and (user_id = target or lower(recipient) = lower(account.email));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('notification_outbox', n);

    update security_events
       set ip_address = null, user_agent = null, device_fingerprint = null, geolocation = null,
           description = ultracore_scrub_text(description, needles),
           metadata = ultracore_scrub_json(metadata, needles)
     where tenant_id = tenant and user_id = target;
    get diagnostics n = row_count; counts := counts || jsonb_build_object('security_events', n);
    update security_events
       set description = ultracore_scrub_text(description, quoted),
           metadata = ultracore_scrub_json(metadata, quoted)
     where tenant_id = tenant and user_id is distinct from target
       and (description ilike any(patterns) or metadata::text ilike any(patterns));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('security_events_quoting', n);

    update threat_events
       set description = ultracore_scrub_text(description, case when target = any(affected_user_ids) then needles else quoted end),
           indicators = (select coalesce(array_agg(ultracore_scrub_text(i, case when target = any(affected_user_ids)
                                                                                then needles else quoted end)
                                                   order by o), '{}')
                           from unnest(indicators) with ordinality x(i, o))
     where tenant_id = tenant
       and (target = any(affected_user_ids)
            or description ilike any(patterns)
            or array_to_string(indicators, ' ') ilike any(patterns));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('threat_events', n);

    update security_incidents
       set title = ultracore_scrub_text(title, quoted),
           description = ultracore_scrub_text(description, quoted)
     where tenant_id = tenant and (title ilike any(patterns) or description ilike any(patterns));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('security_incidents', n);

    -- Audit rows by or about the user: the digests the chain covers are kept, the salt
    -- and the fields go.
    update audit_log a
       set pii_digests = audit_log_pii_digests(a),
           pii_salt = null,
           erased_at = clock_timestamp(),
           -- Another actor's address and agent in a row that only quotes the user stay.
           ip_address = case when a.user_id = target then null else a.ip_address end,
           user_agent = case when a.user_id = target then null else a.user_agent end,
           old_values = ultracore_scrub_json(a.old_values, needles),
           new_values = ultracore_scrub_json(a.new_values, needles)
     where a.tenant_id = tenant and a.erased_at is null
       and (a.user_id = target or (a.entity_type = 'user' and a.entity_id = target)
            or a.old_values::text ilike any(patterns) or a.new_values::text ilike any(patterns));
    get diagnostics n = row_count; counts := counts || jsonb_build_object('audit_log', n);

    perform set_config('ultracore.erasure', 'off', true);

    insert into audit_log (tenant_id, action, entity_type, entity_id, new_values)
    values (tenant, 'user.erased', 'user', target, jsonb_build_object('rows', counts));
    insert into ultracore_lifecycle.data_lifecycle_log (operation, table_name, tenant_id, details)
    values ('user_erased', 'users', tenant, jsonb_build_object('user_id', target, 'rows', counts));
    return counts;
end
$$;
revoke all on function ultracore_erase_user(uuid) from public;
